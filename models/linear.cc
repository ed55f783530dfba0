#include "models/linear.h"

#include <cmath>
#include <cstring>

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

// Plain row-major buffers throughout; transposes are expressed as strides
// (format tag ba), which the matmul kernels read directly.
struct Linear::Primitives {
  dnnl::matmul forward;         // y[B,out] = x[B,in] * W^T[in,out] + b
  dnnl::matmul weight_grad;     // dW[out,in] = dy^T[out,B] * x[B,in]
  dnnl::matmul input_grad;      // dx[B,in] = dy[B,out] * W[out,in]
  memory::desc x, weight_t, y, bias, dy_t, x_rhs, weight, dw, dy, dx;
};

Linear::Linear(const Shape& in_shape, int64_t out_features, bool bias)
    : Layer(in_shape, {out_features}), in_(NumElements(in_shape)), out_(out_features), has_bias_(bias) {}

Linear::~Linear() = default;

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

Linear::Primitives& Linear::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  p->x = memory::desc({batch, in_}, f32, tag::ab);
  p->weight_t = memory::desc({in_, out_}, f32, tag::ba);  // W [out,in] read as W^T
  p->y = memory::desc({batch, out_}, f32, tag::ab);
  p->bias = memory::desc({1, out_}, f32, tag::ab);
  p->dy_t = memory::desc({out_, batch}, f32, tag::ba);  // dy [B,out] read as dy^T
  p->x_rhs = memory::desc({batch, in_}, f32, tag::ab);
  p->dw = memory::desc({out_, in_}, f32, tag::ab);
  p->dy = memory::desc({batch, out_}, f32, tag::ab);
  p->weight = memory::desc({out_, in_}, f32, tag::ab);
  p->dx = memory::desc({batch, in_}, f32, tag::ab);
  auto forward_desc = has_bias_ ? dnnl::matmul::desc(p->x, p->weight_t, p->bias, p->y)
                                : dnnl::matmul::desc(p->x, p->weight_t, p->y);
  p->forward = dnnl::matmul(dnnl::matmul::primitive_desc(forward_desc, Engine()));
  p->weight_grad = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p->dy_t, p->x_rhs, p->dw), Engine()));
  p->input_grad = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(p->dy, p->weight, p->dx), Engine()));
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void Linear::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, Wrap(p.x, x)}, {DNNL_ARG_WEIGHTS, Wrap(p.weight_t, weight_)}, {DNNL_ARG_DST, Wrap(p.y, y)}};
  if (has_bias_) args[DNNL_ARG_BIAS] = Wrap(p.bias, bias_);
  p.forward.execute(Stream(), args);
  Stream().wait();
}

void Linear::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (batch == 0) {
    std::memset(weight_grad_, 0, out_ * in_ * sizeof(float));
    if (has_bias_) std::memset(bias_grad_, 0, out_ * sizeof(float));
    return;
  }
  Primitives& p = For(batch);
  p.weight_grad.execute(Stream(), {{DNNL_ARG_SRC, Wrap(p.dy_t, dy)},
                                   {DNNL_ARG_WEIGHTS, Wrap(p.x_rhs, x)},
                                   {DNNL_ARG_DST, Wrap(p.dw, weight_grad_)}});
  if (dx != nullptr) {
    p.input_grad.execute(Stream(), {{DNNL_ARG_SRC, Wrap(p.dy, dy)},
                                    {DNNL_ARG_WEIGHTS, Wrap(p.weight, weight_)},
                                    {DNNL_ARG_DST, Wrap(p.dx, dx)}});
  }
  Stream().wait();
  if (has_bias_) {
    std::memset(bias_grad_, 0, out_ * sizeof(float));
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = dy + b * out_;
      for (int64_t o = 0; o < out_; ++o) bias_grad_[o] += row[o];
    }
  }
}

}  // namespace tessera
