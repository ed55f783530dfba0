#include "models/inference_conv2d.h"

#include <glog/logging.h>

#include <cstdlib>

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

struct InferenceConv2d::Primitives {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  dnnl::pooling_forward pool;  // when fused
  memory::desc src_plain, dst_plain;
  memory src, weights, conv_out, dst;
};

InferenceConv2d::InferenceConv2d(const ConvGeometry& g, const ConvFusion& fusion)
    : Layer({g.in_channels, g.height, g.width}, FusedConvOutShape(g, fusion)), g_(g), fusion_(fusion) {}

InferenceConv2d::~InferenceConv2d() = default;

std::vector<ParamShape> InferenceConv2d::param_shapes() const { return Conv2d(g_).param_shapes(); }

void InferenceConv2d::Bind(const float* params, float* /*grads*/) {
  params_ = params;
  primitives_.clear();  // the weights are read again on the next pass
}

InferenceConv2d::Primitives& InferenceConv2d::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  const auto [src, conv_dst, w, b, strides, pad] = ConvDimsOf(g_, batch);
  const Shape out = out_shape();
  p->src_plain = Plain(src);
  p->dst_plain = Plain({batch, out[0], out[1], out[2]});
  auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, memory::format_tag::any); };
  const memory::desc bias = Plain(b);
  const auto algo = dnnl::algorithm::convolution_direct;
  const auto prop = dnnl::prop_kind::forward_inference;
  auto desc = g_.bias ? dnnl::convolution_forward::desc(prop, algo, any(src), any(w), bias, any(conv_dst), strides, pad, pad)
                      : dnnl::convolution_forward::desc(prop, algo, any(src), any(w), any(conv_dst), strides, pad, pad);
  dnnl::primitive_attr attr;
  if (fusion_.relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  p->pd = dnnl::convolution_forward::primitive_desc(desc, attr, Engine());
  p->conv = dnnl::convolution_forward(p->pd);
  memory::desc dst_desc = p->pd.dst_desc();
  if (fusion_.pool_kernel > 0) {
    const memory::dims kernel = {fusion_.pool_kernel, fusion_.pool_kernel};
    const memory::dims pool_strides = {fusion_.pool_stride, fusion_.pool_stride};
    const memory::dims no_pad = {0, 0};
    dnnl::pooling_forward::desc pool_desc(prop, dnnl::algorithm::pooling_max, p->pd.dst_desc(),
                                          any(p->dst_plain.dims()), pool_strides, kernel, no_pad, no_pad);
    dnnl::pooling_forward::primitive_desc pool_pd(pool_desc, Engine());
    p->pool = dnnl::pooling_forward(pool_pd);
    p->conv_out = memory(p->pd.dst_desc(), Engine());
    dst_desc = pool_pd.dst_desc();
  }
  p->dst = memory(dst_desc, Engine());
  // The weights, once, in the primitive's layout.
  memory plain_weights = Wrap(Plain(w), params_);
  p->weights = memory(p->pd.weights_desc(), Engine());
  dnnl::reorder(plain_weights, p->weights).execute(Stream(), plain_weights, p->weights);
  Stream().wait();
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void InferenceConv2d::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  memory src = InLayout(Wrap(p.src_plain, x), p.pd.src_desc(), &p.src);
  memory y_user = Wrap(p.dst_plain, y);
  const bool pooled = fusion_.pool_kernel > 0;
  memory dst = OutputFor(y_user, p.dst.get_desc(), &p.dst);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, pooled ? p.conv_out : dst}};
  if (g_.bias) {
    const int64_t wsize = g_.out_channels * g_.in_channels * g_.kernel * g_.kernel;
    args[DNNL_ARG_BIAS] = Wrap(Plain({g_.out_channels}), params_ + wsize);
  }
  p.conv.execute(Stream(), args);
  if (pooled) p.pool.execute(Stream(), {{DNNL_ARG_SRC, p.conv_out}, {DNNL_ARG_DST, dst}});
  CopyOut(dst, y_user);
  Stream().wait();
}

void InferenceConv2d::Backward(const float*, const float*, const float*, int64_t, float*) {
  LOG(FATAL) << "InferenceConv2d has no backward pass: Model::PrepareForInference made the model inference-only";
  std::abort();
}

}  // namespace tessera
