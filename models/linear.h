// Linear: y = x W^T + b with W of shape [out, in] (PyTorch's layout). Any
// input shape; each example is used as a flat vector. The three products run
// on oneDNN's matmul (AVX-512 kernels; about 2x OpenBLAS's AVX2 ones on this
// CPU for fmnist's layer sizes at batch 64).
#ifndef TESSERA_MODELS_LINEAR_H_
#define TESSERA_MODELS_LINEAR_H_

#include <map>
#include <memory>

#include "models/layer.h"

namespace tessera {

class Linear : public Layer {
 public:
  Linear(const Shape& in_shape, int64_t out_features, bool bias);
  ~Linear() override;

  std::string type() const override { return "linear"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;  // oneDNN matmuls for one batch size
  Primitives& For(int64_t batch);

  int64_t in_, out_;
  bool has_bias_;
  const float* weight_ = nullptr;  // [out, in], borrowed
  const float* bias_ = nullptr;    // [out], borrowed; null without bias
  float* weight_grad_ = nullptr;
  float* bias_grad_ = nullptr;
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_LINEAR_H_
