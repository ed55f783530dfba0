// Conv2d: 2-D cross-correlation of [C, H, W] into [out_channels, H', W'],
// weight [out_channels, C, k, k] (PyTorch's layout), computed with oneDNN.
#ifndef TESSERA_MODELS_CONV2D_H_
#define TESSERA_MODELS_CONV2D_H_

#include <map>
#include <memory>

#include "models/layer.h"

namespace tessera {

struct ConvGeometry {
  int64_t in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, kernel = 0, stride = 1, padding = 0;
  bool bias = true;
  int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
};

// The geometry `spec` describes for inputs of shape [C, H, W] (unchecked:
// CreateLayer checks it).
ConvGeometry ConvGeometryOf(const proto::Conv2dSpec& spec, const Shape& in_shape);

// What an inference convolution may compute after the convolution in the
// same pass (Model::PrepareForInference fuses a ReLU and a MaxPool2d that
// follow it): the ReLU is free as a oneDNN post-op, and pooling in the
// convolution's own blocked layout before the one reorder back to NCHW moves
// a quarter of the data.
struct ConvFusion {
  bool relu = false;
  int64_t pool_kernel = 0;  // 0: no pooling
  int64_t pool_stride = 0;
};

// [C, H', W'] of the convolution, pooled when `fusion` pools.
Shape FusedConvOutShape(const ConvGeometry& g, const ConvFusion& fusion);

class Conv2d : public Layer {
 public:
  explicit Conv2d(const ConvGeometry& g);
  ~Conv2d() override;

  std::string type() const override { return "conv2d"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;  // oneDNN objects for one batch size
  Primitives& For(int64_t batch);

  ConvGeometry g_;
  const float* weight_ = nullptr;
  const float* bias_ = nullptr;
  float* weight_grad_ = nullptr;
  float* bias_grad_ = nullptr;
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_CONV2D_H_
