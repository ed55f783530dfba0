#include "models/conv2d.h"

#include <cmath>
#include <cstring>

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

// Primitives choose their own layouts (format_tag::any); the layer reorders
// between them and its plain NCHW buffers. The weights are reordered once per
// Forward (they change every step) and the reordered copy is reused by Backward.
struct Conv2d::Primitives {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  memory::desc src_plain, dst_plain, weight_plain, bias_plain;
  // Scratch memories for layout conversions.
  memory src, weights, dst, diff_dst, diff_src, diff_weights, bwd_src, bwd_weights_in;
  // What the last training Forward converted, for Backward to reuse.
  memory forward_src, forward_weights;
  const float* forward_x = nullptr;
};

ConvGeometry ConvGeometryOf(const proto::Conv2dSpec& spec, const Shape& in_shape) {
  ConvGeometry g;
  g.in_channels = in_shape[0];
  g.height = in_shape[1];
  g.width = in_shape[2];
  g.out_channels = spec.out_channels();
  g.kernel = spec.kernel_size();
  g.stride = spec.stride();
  g.padding = spec.padding();
  g.bias = spec.bias();
  return g;
}

Shape FusedConvOutShape(const ConvGeometry& g, const ConvFusion& fusion) {
  if (fusion.pool_kernel == 0) return {g.out_channels, g.out_height(), g.out_width()};
  return {g.out_channels, (g.out_height() - fusion.pool_kernel) / fusion.pool_stride + 1,
          (g.out_width() - fusion.pool_kernel) / fusion.pool_stride + 1};
}

Conv2d::Conv2d(const ConvGeometry& g)
    : Layer({g.in_channels, g.height, g.width}, {g.out_channels, g.out_height(), g.out_width()}), g_(g) {}

Conv2d::~Conv2d() = default;

std::vector<ParamShape> Conv2d::param_shapes() const {
  // PyTorch's default init: kaiming_uniform(a=sqrt(5)) -> bound 1/sqrt(fan_in), bias the same.
  const float bound = 1.0f / std::sqrt(static_cast<float>(g_.in_channels * g_.kernel * g_.kernel));
  std::vector<ParamShape> shapes = {{"weight", {g_.out_channels, g_.in_channels, g_.kernel, g_.kernel}, bound}};
  if (g_.bias) shapes.push_back({"bias", {g_.out_channels}, bound});
  return shapes;
}

void Conv2d::Bind(const float* params, float* grads) {
  const int64_t wsize = g_.out_channels * g_.in_channels * g_.kernel * g_.kernel;
  weight_ = params;
  weight_grad_ = grads;
  bias_ = g_.bias ? params + wsize : nullptr;
  bias_grad_ = g_.bias ? grads + wsize : nullptr;
}

Conv2d::Primitives& Conv2d::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  const auto [src, dst, w, b, strides, pad] = ConvDimsOf(g_, batch);
  p->src_plain = Plain(src);
  p->dst_plain = Plain(dst);
  p->weight_plain = Plain(w);
  p->bias_plain = Plain(b);
  auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, memory::format_tag::any); };
  const auto algo = dnnl::algorithm::convolution_direct;
  auto fwd_desc = g_.bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, any(src), any(w),
                                                            p->bias_plain, any(dst), strides, pad, pad)
                          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, any(src), any(w),
                                                            any(dst), strides, pad, pad);
  p->fwd_pd = dnnl::convolution_forward::primitive_desc(fwd_desc, Engine());
  dnnl::convolution_backward_data::desc bwd_data_desc(algo, any(src), any(w), any(dst), strides, pad, pad);
  p->bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(bwd_data_desc, Engine(), p->fwd_pd);
  auto bwd_w_desc = g_.bias ? dnnl::convolution_backward_weights::desc(algo, any(src), any(w), p->bias_plain, any(dst),
                                                                       strides, pad, pad)
                            : dnnl::convolution_backward_weights::desc(algo, any(src), any(w), any(dst), strides, pad,
                                                                       pad);
  p->bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(bwd_w_desc, Engine(), p->fwd_pd);
  p->fwd = dnnl::convolution_forward(p->fwd_pd);
  p->bwd_data = dnnl::convolution_backward_data(p->bwd_data_pd);
  p->bwd_weights = dnnl::convolution_backward_weights(p->bwd_weights_pd);
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void Conv2d::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  memory src = InLayout(Wrap(p.src_plain, x), p.fwd_pd.src_desc(), &p.src);
  memory weights = InLayout(Wrap(p.weight_plain, weight_), p.fwd_pd.weights_desc(), &p.weights);
  memory y_user = Wrap(p.dst_plain, y);
  memory dst = OutputFor(y_user, p.fwd_pd.dst_desc(), &p.dst);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (g_.bias) args[DNNL_ARG_BIAS] = Wrap(p.bias_plain, bias_);
  p.fwd.execute(Stream(), args);
  CopyOut(dst, y_user);
  Stream().wait();
  p.forward_src = src;
  p.forward_weights = weights;
  p.forward_x = x;
}

void Conv2d::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (batch == 0) {
    std::memset(weight_grad_, 0, g_.out_channels * g_.in_channels * g_.kernel * g_.kernel * sizeof(float));
    if (g_.bias) std::memset(bias_grad_, 0, g_.out_channels * sizeof(float));
    return;
  }
  Primitives& p = For(batch);
  memory diff_dst_w = InLayout(Wrap(p.dst_plain, dy), p.bwd_weights_pd.diff_dst_desc(), &p.diff_dst);
  // The input and weights as Forward converted them, when the layouts agree.
  memory src = x == p.forward_x && p.forward_src.get_desc() == p.bwd_weights_pd.src_desc()
                   ? p.forward_src
                   : InLayout(Wrap(p.src_plain, x), p.bwd_weights_pd.src_desc(), &p.bwd_src);
  memory dw_user = Wrap(p.weight_plain, weight_grad_);
  memory dw = OutputFor(dw_user, p.bwd_weights_pd.diff_weights_desc(), &p.diff_weights);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst_w}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
  if (g_.bias) args[DNNL_ARG_DIFF_BIAS] = Wrap(p.bias_plain, bias_grad_);
  p.bwd_weights.execute(Stream(), args);
  CopyOut(dw, dw_user);
  if (dx != nullptr) {
    memory diff_dst = p.bwd_data_pd.diff_dst_desc() == diff_dst_w.get_desc()
                          ? diff_dst_w
                          : InLayout(Wrap(p.dst_plain, dy), p.bwd_data_pd.diff_dst_desc(), &p.diff_dst);
    memory weights = p.forward_weights && p.forward_weights.get_desc() == p.bwd_data_pd.weights_desc()
                         ? p.forward_weights
                         : InLayout(Wrap(p.weight_plain, weight_), p.bwd_data_pd.weights_desc(), &p.bwd_weights_in);
    memory dx_user = Wrap(p.src_plain, dx);
    memory diff_src = OutputFor(dx_user, p.bwd_data_pd.diff_src_desc(), &p.diff_src);
    p.bwd_data.execute(Stream(), {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights},
                                  {DNNL_ARG_DIFF_SRC, diff_src}});
    CopyOut(diff_src, dx_user);
  }
  Stream().wait();
}

}  // namespace tessera
