// The layer interface. A layer maps a batch of examples, each a row-major
// tensor of in_shape() (e.g. [C, H, W] or [features]), to a batch of
// out_shape() tensors; a batch is stored example after example (NCHW).
// Parameters and gradients live in the model's flat buffers (the key space
// the servers shard); a layer only borrows pointers into them through Bind().
//
// Layers are not thread-safe; one model is used by one thread.
#ifndef TESSERA_MODELS_LAYER_H_
#define TESSERA_MODELS_LAYER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

using Shape = std::vector<int64_t>;  // per-example dimensions

// Elements in one example of `shape`.
int64_t NumElements(const Shape& shape);
// "[1, 28, 28]".
std::string ShapeText(const Shape& shape);

// One parameter tensor a layer declares, in the order Bind() lays them out.
struct ParamShape {
  std::string name;  // "weight", "bias"
  std::vector<int64_t> shape;
  float init_bound = 0;  // initialized to init_value + uniform in [-init_bound, init_bound]
  float init_value = 0;
  // False for values the layer computes itself (BatchNorm's running
  // statistics): Backward writes the new value times the batch size into the
  // gradient slot, and servers keep the example-weighted mean of the pushes.
  bool trainable = true;
};

// What one forward pass is for.
struct Pass {
  bool training = true;
  // Seeds the pass's randomness (dropout masks); the model derives one per layer.
  uint64_t seed = 0;
};

class Layer {
 public:
  Layer(Shape in_shape, Shape out_shape) : in_shape_(std::move(in_shape)), out_shape_(std::move(out_shape)) {}
  virtual ~Layer() = default;

  virtual std::string type() const = 0;
  const Shape& in_shape() const { return in_shape_; }
  const Shape& out_shape() const { return out_shape_; }
  int64_t in_features() const { return NumElements(in_shape_); }
  int64_t out_features() const { return NumElements(out_shape_); }
  virtual std::vector<ParamShape> param_shapes() const { return {}; }

  // Points the layer at its parameters and gradients, laid out back to back
  // in param_shapes() order. Both must outlive the next Forward/Backward.
  virtual void Bind(const float* /*params*/, float* /*grads*/) {}

  // y[batch, out] = f(x[batch, in]). A training pass may keep what Backward
  // needs (dropout's mask, batch norm's statistics).
  virtual void Forward(const float* x, int64_t batch, float* y, const Pass& pass) = 0;

  // After a training Forward on the same x: given x, the y it produced and
  // dL/dy, writes this layer's parameter gradients (overwriting) and, when dx
  // is not null, dL/dx.
  virtual void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) = 0;

 private:
  Shape in_shape_, out_shape_;
};

// Builds the layer `spec` describes for examples of `in_shape`.
// InvalidArgument naming the problem for impossible shapes or settings.
StatusOr<std::unique_ptr<Layer>> CreateLayer(const proto::LayerSpec& spec, const Shape& in_shape);

}  // namespace tessera

#endif  // TESSERA_MODELS_LAYER_H_
