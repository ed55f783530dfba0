#include "models/int8_layers.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

namespace {

memory::data_type InputType(bool input_unsigned) {
  return input_unsigned ? memory::data_type::u8 : memory::data_type::s8;
}

// The float weights (integers in [-127, 127] as an export writes them) as
// int8; anything else is rounded and clamped, never wrapped.
std::vector<int8_t> WeightsAsInt8(const float* w, int64_t n) {
  std::vector<int8_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(std::clamp(w[i], -127.0f, 127.0f));
    out[i] = static_cast<int8_t>(std::isnan(v) ? 0.0f : v);
  }
  return out;
}

// oneDNN 2.x applies the output scale to the int32 sum *including* the bias
// (dst = scale * (acc + bias)), so a float bias b must be handed over
// divided by that scale.
std::vector<float> ScaledBias(const float* bias, const std::vector<float>& scales) {
  std::vector<float> out(scales.size(), 0.0f);
  if (bias == nullptr) return out;
  for (size_t o = 0; o < scales.size(); ++o) out[o] = bias[o] / scales[o];
  return out;
}

// input_scale * weight_scale[o]: what turns an int32 sum back into a float.
std::vector<float> OutputScales(float input_scale, const float* weight_scale, int64_t n) {
  std::vector<float> out(n);
  for (int64_t o = 0; o < n; ++o) out[o] = input_scale * weight_scale[o];
  return out;
}

// A reorder that quantizes float x into `to`: q = saturate(round(x / scale)).
dnnl::reorder QuantizingReorder(const memory::desc& from, const memory::desc& to, float scale) {
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {1.0f / scale});
  return dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), from, Engine(), to, attr));
}

// The float weights as int8 in the layout a primitive wants (the reorder
// adds whatever compensation the kernel needs for int8 inputs); `plain`
// describes them as the layer stores them.
memory Int8Weights(const float* w, const memory::desc& plain, const memory::desc& want) {
  std::vector<int8_t> weights = WeightsAsInt8(w, static_cast<int64_t>(plain.get_size()));
  memory from(plain, Engine(), weights.data());
  memory to(want, Engine());
  dnnl::reorder(from, to).execute(Stream(), from, to);
  Stream().wait();
  return to;
}

// The bias as the primitive takes it (ScaledBias), in its own memory.
memory BiasMemory(const float* bias, const std::vector<float>& scales, const memory::desc& desc) {
  const std::vector<float> scaled = ScaledBias(bias, scales);
  memory out(desc, Engine());
  std::copy(scaled.begin(), scaled.end(), static_cast<float*>(out.get_data_handle()));
  return out;
}

[[noreturn]] void NoBackward(const char* layer) {
  LOG(FATAL) << "int8 " << layer << " has no backward pass: int8 layers are for inference only";
  std::abort();
}

}  // namespace

Status ValidateInt8Spec(const proto::Int8Spec& int8) {
  // A normal float: 1 / scale must be finite too.
  if (!std::isnormal(int8.input_scale()) || int8.input_scale() < 0) {
    return InvalidArgumentError("int8.input_scale must be a finite number > 0, got " +
                                std::to_string(int8.input_scale()));
  }
  return OkStatus();
}

// ---- Int8Conv2d ----

struct Int8Conv2d::Primitives {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  dnnl::reorder quantize;
  memory::desc src_plain, dst_plain;
  // The quantized input: plain NCHW first (a fast reorder), then in the
  // primitive's layout when it wants another (NHWC, usually): quantizing and
  // transposing in one reorder is several times slower than the two.
  dnnl::reorder to_layout;
  memory quantized_plain, src, weights, bias, dst;
  // Fused max pooling, on the convolution's output in its own layout.
  dnnl::pooling_forward pool;
  memory conv_out;
};



Int8Conv2d::Int8Conv2d(const ConvGeometry& g, const proto::Int8Spec& int8, const ConvFusion& fusion)
    : Layer({g.in_channels, g.height, g.width}, FusedConvOutShape(g, fusion)),
      g_(g),
      input_scale_(int8.input_scale()),
      input_unsigned_(int8.input_unsigned()),
      fusion_(fusion) {}

Int8Conv2d::~Int8Conv2d() = default;

std::vector<ParamShape> Int8Conv2d::param_shapes() const {
  std::vector<ParamShape> shapes = {{"weight", {g_.out_channels, g_.in_channels, g_.kernel, g_.kernel}}};
  if (g_.bias) shapes.push_back({"bias", {g_.out_channels}});
  shapes.push_back({"weight_scale", {g_.out_channels}, 0, 1.0f});
  return shapes;
}

void Int8Conv2d::Bind(const float* params, float* /*grads*/) {
  params_ = params;
  primitives_.clear();  // the weights are read again on the next pass
}

Int8Conv2d::Primitives& Int8Conv2d::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  using dt = memory::data_type;
  using tag = memory::format_tag;
  const auto [src, dst, w, b, strides, pad] = ConvDimsOf(g_, batch);
  p->src_plain = Plain(src);
  Shape out = out_shape();
  p->dst_plain = Plain({batch, out[0], out[1], out[2]});

  const int64_t wsize = g_.out_channels * g_.in_channels * g_.kernel * g_.kernel;
  const float* bias = g_.bias ? params_ + wsize : nullptr;
  const float* weight_scale = params_ + wsize + (g_.bias ? g_.out_channels : 0);
  const std::vector<float> scales = OutputScales(input_scale_, weight_scale, g_.out_channels);

  const memory::desc bias_md(b, dt::f32, tag::x);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                       memory::desc(src, InputType(input_unsigned_), tag::any),
                                       memory::desc(w, dt::s8, tag::any), bias_md,
                                       memory::desc(dst, dt::f32, tag::any), strides, pad, pad);
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, scales);  // per output channel: dimension 1 of dst
  if (fusion_.relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  p->pd = dnnl::convolution_forward::primitive_desc(desc, attr, Engine());
  if (fusion_.pool_kernel > 0) {
    const memory::dims kernel = {fusion_.pool_kernel, fusion_.pool_kernel};
    const memory::dims pool_strides = {fusion_.pool_stride, fusion_.pool_stride};
    const memory::dims no_pad = {0, 0};
    dnnl::pooling_forward::desc pool_desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                          p->pd.dst_desc(), memory::desc(p->dst_plain.dims(), dt::f32, tag::any),
                                          pool_strides, kernel, no_pad, no_pad);
    dnnl::pooling_forward::primitive_desc pool_pd(pool_desc, Engine());
    p->pool = dnnl::pooling_forward(pool_pd);
    p->conv_out = memory(p->pd.dst_desc(), Engine());
    p->dst = memory(pool_pd.dst_desc(), Engine());
  }
  p->conv = dnnl::convolution_forward(p->pd);
  const memory::desc quantized_plain(src, InputType(input_unsigned_), tag::nchw);
  p->quantize = QuantizingReorder(p->src_plain, quantized_plain, input_scale_);
  p->quantized_plain = memory(quantized_plain, Engine());
  p->src = p->quantized_plain;
  if (p->pd.src_desc() != quantized_plain) {
    p->src = memory(p->pd.src_desc(), Engine());
    p->to_layout = dnnl::reorder(p->quantized_plain, p->src);
  }

  p->weights = Int8Weights(params_, memory::desc(w, dt::s8, tag::oihw), p->pd.weights_desc());
  p->bias = BiasMemory(bias, scales, bias_md);
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void Int8Conv2d::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  memory x_user = Wrap(p.src_plain, x);
  p.quantize.execute(Stream(), x_user, p.quantized_plain);
  if (p.src != p.quantized_plain) p.to_layout.execute(Stream(), p.quantized_plain, p.src);
  memory y_user = Wrap(p.dst_plain, y);
  if (fusion_.pool_kernel > 0) {
    p.conv.execute(Stream(), {{DNNL_ARG_SRC, p.src},
                              {DNNL_ARG_WEIGHTS, p.weights},
                              {DNNL_ARG_BIAS, p.bias},
                              {DNNL_ARG_DST, p.conv_out}});
    memory pooled = OutputFor(y_user, p.dst.get_desc(), &p.dst);
    p.pool.execute(Stream(), {{DNNL_ARG_SRC, p.conv_out}, {DNNL_ARG_DST, pooled}});
    CopyOut(pooled, y_user);
    Stream().wait();
    return;
  }
  memory dst = OutputFor(y_user, p.pd.dst_desc(), &p.dst);
  p.conv.execute(Stream(), {{DNNL_ARG_SRC, p.src},
                            {DNNL_ARG_WEIGHTS, p.weights},
                            {DNNL_ARG_BIAS, p.bias},
                            {DNNL_ARG_DST, dst}});
  CopyOut(dst, y_user);
  Stream().wait();
}

void Int8Conv2d::Backward(const float*, const float*, const float*, int64_t, float*) { NoBackward("conv2d"); }

// ---- Int8Linear ----

struct Int8Linear::Primitives {
  dnnl::matmul matmul;
  dnnl::reorder quantize;
  memory::desc x_plain, y_plain;
  memory src, weights, bias;
};

Int8Linear::Int8Linear(const Shape& in_shape, int64_t out_features, bool bias, const proto::Int8Spec& int8)
    : Layer(in_shape, {out_features}),
      in_(NumElements(in_shape)),
      out_(out_features),
      has_bias_(bias),
      input_scale_(int8.input_scale()),
      input_unsigned_(int8.input_unsigned()) {}

Int8Linear::~Int8Linear() = default;

std::vector<ParamShape> Int8Linear::param_shapes() const {
  std::vector<ParamShape> shapes = {{"weight", {out_, in_}}};
  if (has_bias_) shapes.push_back({"bias", {out_}});
  shapes.push_back({"weight_scale", {out_}, 0, 1.0f});
  return shapes;
}

void Int8Linear::Bind(const float* params, float* /*grads*/) {
  params_ = params;
  primitives_.clear();
}

Int8Linear::Primitives& Int8Linear::For(int64_t batch) {
  auto it = primitives_.find(batch);
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  using dt = memory::data_type;
  using tag = memory::format_tag;
  const float* bias = has_bias_ ? params_ + out_ * in_ : nullptr;
  const float* weight_scale = params_ + out_ * in_ + (has_bias_ ? out_ : 0);
  const std::vector<float> scales = OutputScales(input_scale_, weight_scale, out_);

  p->x_plain = memory::desc({batch, in_}, dt::f32, tag::ab);
  p->y_plain = memory::desc({batch, out_}, dt::f32, tag::ab);
  const memory::desc src_md({batch, in_}, InputType(input_unsigned_), tag::ab);
  const memory::desc bias_md({1, out_}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, scales);  // per output feature: dimension 1 of dst
  // W [out, in] is the matmul's [in, out] right side; let oneDNN pick its
  // layout, and fall back to reading W transposed where it cannot.
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(src_md, memory::desc({in_, out_}, dt::s8, tag::any), bias_md, p->y_plain), attr, Engine());
  } catch (const dnnl::error&) {
    pd = dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(src_md, memory::desc({in_, out_}, dt::s8, tag::ba), bias_md, p->y_plain), attr, Engine());
  }
  p->matmul = dnnl::matmul(pd);
  p->quantize = QuantizingReorder(p->x_plain, src_md, input_scale_);
  p->src = memory(src_md, Engine());

  p->weights = Int8Weights(params_, memory::desc({in_, out_}, dt::s8, tag::ba), pd.weights_desc());
  p->bias = BiasMemory(bias, scales, bias_md);
  return *primitives_.emplace(batch, std::move(p)).first->second;
}

void Int8Linear::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  if (batch == 0) return;
  Primitives& p = For(batch);
  memory x_user = Wrap(p.x_plain, x);
  p.quantize.execute(Stream(), x_user, p.src);
  p.matmul.execute(Stream(), {{DNNL_ARG_SRC, p.src},
                              {DNNL_ARG_WEIGHTS, p.weights},
                              {DNNL_ARG_BIAS, p.bias},
                              {DNNL_ARG_DST, Wrap(p.y_plain, y)}});
  Stream().wait();
}

void Int8Linear::Backward(const float*, const float*, const float*, int64_t, float*) { NoBackward("linear"); }

}  // namespace tessera
