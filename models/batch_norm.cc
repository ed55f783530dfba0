#include "models/batch_norm.h"

#include <cstring>

#include "models/dnnl_util.h"

namespace tessera {

using dnnl::memory;
using namespace dnnl_util;

struct BatchNorm::Primitives {
  dnnl::batch_normalization_forward::primitive_desc fwd_pd;
  dnnl::batch_normalization_forward fwd;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd;  // training only
  dnnl::batch_normalization_backward bwd;
  memory::desc data, channel;
};

BatchNorm::BatchNorm(const Shape& shape, float momentum, float epsilon)
    : Layer(shape, shape),
      channels_(shape[0]),
      spatial_(shape.size() == 3 ? shape[1] * shape[2] : 1),
      momentum_(momentum),
      epsilon_(epsilon),
      mean_(channels_),
      variance_(channels_) {}

BatchNorm::~BatchNorm() = default;

std::vector<ParamShape> BatchNorm::param_shapes() const {
  return {{"weight", {channels_}, 0.0f, 1.0f},
          {"bias", {channels_}, 0.0f, 0.0f},
          {"running_mean", {channels_}, 0.0f, 0.0f, /*trainable=*/false},
          {"running_var", {channels_}, 0.0f, 1.0f, /*trainable=*/false}};
}

void BatchNorm::Bind(const float* params, float* grads) {
  params_ = params;
  grads_ = grads;
}

BatchNorm::Primitives& BatchNorm::For(int64_t batch, bool training) {
  auto it = primitives_.find({batch, training});
  if (it != primitives_.end()) return *it->second;
  auto p = std::make_unique<Primitives>();
  // Features are 1x1 images: the same kernels serve BatchNorm1d.
  const int64_t side = spatial_ == 1 ? 1 : in_shape()[1];
  const int64_t other = spatial_ == 1 ? 1 : in_shape()[2];
  p->data = Plain({batch, channels_, side, other});
  p->channel = Plain({channels_});
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (!training) flags |= dnnl::normalization_flags::use_global_stats;
  const auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  dnnl::batch_normalization_forward::desc fwd_desc(prop, p->data, epsilon_, flags);
  p->fwd_pd = dnnl::batch_normalization_forward::primitive_desc(fwd_desc, Engine());
  p->fwd = dnnl::batch_normalization_forward(p->fwd_pd);
  if (training) {
    dnnl::batch_normalization_backward::desc bwd_desc(dnnl::prop_kind::backward, p->data, p->data, epsilon_, flags);
    p->bwd_pd = dnnl::batch_normalization_backward::primitive_desc(bwd_desc, Engine(), p->fwd_pd);
    p->bwd = dnnl::batch_normalization_backward(p->bwd_pd);
  }
  return *primitives_.emplace(std::make_pair(batch, training), std::move(p)).first->second;
}

void BatchNorm::Forward(const float* x, int64_t batch, float* y, const Pass& pass) {
  if (batch == 0) return;
  Primitives& p = For(batch, pass.training);
  const float* scale = params_;
  const float* shift = params_ + channels_;
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, Wrap(p.data, x)},
                                          {DNNL_ARG_DST, Wrap(p.data, y)},
                                          {DNNL_ARG_SCALE, Wrap(p.channel, scale)},
                                          {DNNL_ARG_SHIFT, Wrap(p.channel, shift)}};
  if (pass.training) {
    args[DNNL_ARG_MEAN] = Wrap(p.channel, mean_.data());
    args[DNNL_ARG_VARIANCE] = Wrap(p.channel, variance_.data());
  } else {
    args[DNNL_ARG_MEAN] = Wrap(p.channel, params_ + 2 * channels_);
    args[DNNL_ARG_VARIANCE] = Wrap(p.channel, params_ + 3 * channels_);
  }
  p.fwd.execute(Stream(), args);
  Stream().wait();
}

void BatchNorm::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  float* running_grad = grads_ + 2 * channels_;
  if (batch == 0) {
    std::memset(grads_, 0, 4 * channels_ * sizeof(float));
    return;
  }
  Primitives& p = For(batch, /*training=*/true);
  // dx is needed for the parameter gradients too; a scratch buffer stands in for a first layer.
  std::vector<float> unused;
  float* diff_src = dx;
  if (diff_src == nullptr) {
    unused.resize(batch * in_features());
    diff_src = unused.data();
  }
  p.bwd.execute(Stream(), {{DNNL_ARG_SRC, Wrap(p.data, x)},
                           {DNNL_ARG_DIFF_DST, Wrap(p.data, dy)},
                           {DNNL_ARG_MEAN, Wrap(p.channel, mean_.data())},
                           {DNNL_ARG_VARIANCE, Wrap(p.channel, variance_.data())},
                           {DNNL_ARG_SCALE, Wrap(p.channel, params_)},
                           // oneDNN 2.6 refuses to run without the shift, though it does not read it.
                           {DNNL_ARG_SHIFT, Wrap(p.channel, params_ + channels_)},
                           {DNNL_ARG_DIFF_SRC, Wrap(p.data, diff_src)},
                           {DNNL_ARG_DIFF_SCALE, Wrap(p.channel, grads_)},
                           {DNNL_ARG_DIFF_SHIFT, Wrap(p.channel, grads_ + channels_)}});
  Stream().wait();
  // The running statistics' new values, times the batch (the server divides
  // the sum over workers by their examples). PyTorch keeps the unbiased variance.
  const double n = static_cast<double>(batch * spatial_);
  const double unbias = n > 1 ? n / (n - 1) : 1.0;
  const float* running_mean = params_ + 2 * channels_;
  const float* running_var = params_ + 3 * channels_;
  for (int64_t c = 0; c < channels_; ++c) {
    const double m = (1.0 - momentum_) * running_mean[c] + momentum_ * static_cast<double>(mean_[c]);
    const double v = (1.0 - momentum_) * running_var[c] + momentum_ * static_cast<double>(variance_[c]) * unbias;
    running_grad[c] = static_cast<float>(m * static_cast<double>(batch));
    running_grad[channels_ + c] = static_cast<float>(v * static_cast<double>(batch));
  }
}

}  // namespace tessera
