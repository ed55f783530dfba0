// Linear: y = x W^T + b with W of shape [out, in], computed with OpenBLAS
// sgemm. Any input shape; each example is used as a flat vector.
#ifndef TESSERA_MODELS_LINEAR_H_
#define TESSERA_MODELS_LINEAR_H_

#include "models/layer.h"

namespace tessera {

class Linear : public Layer {
 public:
  Linear(const Shape& in_shape, int64_t out_features, bool bias)
      : Layer(in_shape, {out_features}), in_(NumElements(in_shape)), out_(out_features), has_bias_(bias) {}

  std::string type() const override { return "linear"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  int64_t in_, out_;
  bool has_bias_;
  const float* weight_ = nullptr;  // [out, in], borrowed
  const float* bias_ = nullptr;    // [out], borrowed; null without bias
  float* weight_grad_ = nullptr;
  float* bias_grad_ = nullptr;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_LINEAR_H_
