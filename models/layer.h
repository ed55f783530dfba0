// The layer interface. A layer maps a batch of row-major feature vectors
// [batch, in_features] to [batch, out_features]. Parameters and gradients
// live in the model's flat buffers (the key space the servers shard); a
// layer only borrows pointers into them through Bind().
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

// One parameter tensor a layer declares, in the order Bind() lays them out.
struct ParamShape {
  std::string name;  // "weight", "bias"
  std::vector<int64_t> shape;
  float init_bound = 0;  // initialized uniform in [-init_bound, init_bound]
};

class Layer {
 public:
  virtual ~Layer() = default;

  virtual std::string type() const = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  virtual std::vector<ParamShape> param_shapes() const { return {}; }

  // Points the layer at its parameters and gradients, laid out back to back
  // in param_shapes() order. Both must outlive the next Forward/Backward.
  virtual void Bind(const float* /*params*/, float* /*grads*/) {}

  // y[batch, out] = f(x[batch, in]).
  virtual void Forward(const float* x, int64_t batch, float* y) = 0;

  // Given x, the y Forward produced and dL/dy, writes this layer's parameter
  // gradients (overwriting) and, when dx is not null, dL/dx.
  virtual void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) = 0;
};

// Builds the layer `spec` describes for inputs of `in_features`.
// InvalidArgument naming the layer for impossible shapes.
StatusOr<std::unique_ptr<Layer>> CreateLayer(const proto::LayerSpec& spec, int64_t in_features);

}  // namespace tessera

#endif  // TESSERA_MODELS_LAYER_H_
