#include "models/linear.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

namespace tessera {

std::vector<ParamShape> Linear::param_shapes() const {
  // PyTorch's default: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(in) for W, and b uses the same bound.
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_));
  std::vector<ParamShape> shapes = {{"weight", {out_, in_}, bound}};
  if (has_bias_) shapes.push_back({"bias", {out_}, bound});
  return shapes;
}

void Linear::Bind(const float* params, float* grads) {
  weight_ = params;
  weight_grad_ = grads;
  if (has_bias_) {
    bias_ = params + out_ * in_;
    bias_grad_ = grads + out_ * in_;
  }
}

void Linear::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  float beta = 0.0f;
  if (has_bias_) {
    for (int64_t b = 0; b < batch; ++b) std::memcpy(y + b * out_, bias_, out_ * sizeof(float));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out_, in_, 1.0f, x, in_, weight_, in_, beta, y, out_);
}

void Linear::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (batch == 0) {
    std::memset(weight_grad_, 0, out_ * in_ * sizeof(float));
    if (has_bias_) std::memset(bias_grad_, 0, out_ * sizeof(float));
    return;
  }
  // dW[out, in] = dy^T[out, batch] x[batch, in]
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_, in_, batch, 1.0f, dy, out_, x, in_, 0.0f, weight_grad_, in_);
  if (has_bias_) {
    std::memset(bias_grad_, 0, out_ * sizeof(float));
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = dy + b * out_;
      for (int64_t o = 0; o < out_; ++o) bias_grad_[o] += row[o];
    }
  }
  // dx[batch, in] = dy[batch, out] W[out, in]
  if (dx != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, in_, out_, 1.0f, dy, out_, weight_, in_, 0.0f, dx, in_);
  }
}

}  // namespace tessera
