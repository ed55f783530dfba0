#include "models/batch_norm.h"

#include <cmath>
#include <cstring>

namespace tessera {
namespace {

// Sums over one channel's plane of one example: eight running partial sums,
// so the compiler keeps them in vector registers (a single accumulator
// would serialize every add), then one double per channel across planes.
constexpr int kLanes = 8;

float Sum(const float* p, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += p[i + j];
  }
  float s = 0;
  for (; i < n; ++i) s += p[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Sum of (p - mean)^2.
float SquaredDeviations(const float* p, int64_t n, float mean) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float d = p[i + j] - mean;
      acc[j] += d * d;
    }
  }
  float s = 0;
  for (; i < n; ++i) s += (p[i] - mean) * (p[i] - mean);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// Sum of dy and of dy * (x - mean).
void GradientSums(const float* x, const float* dy, int64_t n, float mean, float* sum_dy, float* sum_dy_dev) {
  float a[kLanes] = {}, b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      a[j] += dy[i + j];
      b[j] += dy[i + j] * (x[i + j] - mean);
    }
  }
  float s = 0, t = 0;
  for (; i < n; ++i) {
    s += dy[i];
    t += dy[i] * (x[i] - mean);
  }
  for (int j = 0; j < kLanes; ++j) {
    s += a[j];
    t += b[j];
  }
  *sum_dy = s;
  *sum_dy_dev = t;
}

}  // namespace

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

void BatchNorm::Forward(const float* x, int64_t batch, float* y, const Pass& pass) {
  if (batch == 0) return;
  const float* scale = params_;
  const float* shift = params_ + channels_;
  const int64_t planes = batch * channels_;  // plane (n, c) starts at ((n * C) + c) * spatial
  const float* mean = params_ + 2 * channels_;
  const float* variance = params_ + 3 * channels_;
  if (pass.training) {
    // The batch's statistics, two passes (the mean first, then the squared
    // deviations from it: no cancellation as in E[x^2] - E[x]^2).
    const double count = static_cast<double>(batch * spatial_);
    std::vector<double> sums(channels_, 0.0);
    for (int64_t p = 0; p < planes; ++p) sums[p % channels_] += Sum(x + p * spatial_, spatial_);
    for (int64_t c = 0; c < channels_; ++c) mean_[c] = static_cast<float>(sums[c] / count);
    std::fill(sums.begin(), sums.end(), 0.0);
    for (int64_t p = 0; p < planes; ++p) {
      sums[p % channels_] += SquaredDeviations(x + p * spatial_, spatial_, mean_[p % channels_]);
    }
    for (int64_t c = 0; c < channels_; ++c) variance_[c] = static_cast<float>(sums[c] / count);  // biased
    mean = mean_.data();
    variance = variance_.data();
  }
  // y = x * a + b per channel: a = scale / sqrt(var + eps), b = shift - mean * a.
  std::vector<float> a(channels_), b(channels_);
  for (int64_t c = 0; c < channels_; ++c) {
    a[c] = scale[c] / std::sqrt(variance[c] + epsilon_);
    b[c] = shift[c] - mean[c] * a[c];
  }
  for (int64_t p = 0; p < planes; ++p) {
    const float ac = a[p % channels_], bc = b[p % channels_];
    const float* in = x + p * spatial_;
    float* out = y + p * spatial_;
    for (int64_t i = 0; i < spatial_; ++i) out[i] = in[i] * ac + bc;
  }
}

void BatchNorm::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  float* running_grad = grads_ + 2 * channels_;
  if (batch == 0) {
    std::memset(grads_, 0, 4 * channels_ * sizeof(float));
    return;
  }
  const float* scale = params_;
  const int64_t planes = batch * channels_;
  std::vector<double> sum_dy(channels_, 0.0), sum_dy_dev(channels_, 0.0);
  for (int64_t p = 0; p < planes; ++p) {
    float s, t;
    GradientSums(x + p * spatial_, dy + p * spatial_, spatial_, mean_[p % channels_], &s, &t);
    sum_dy[p % channels_] += s;
    sum_dy_dev[p % channels_] += t;
  }
  // With xhat = (x - mean) * inv_std and M examples per channel:
  //   dshift = sum dy, dscale = inv_std * sum dy (x - mean),
  //   dx = scale * inv_std * (dy - sum dy / M - xhat * inv_std * sum dy (x - mean) / M),
  // which is k1 * dy + k2 * x + k3 per channel.
  const double count = static_cast<double>(batch * spatial_);
  std::vector<float> k1(channels_), k2(channels_), k3(channels_);
  for (int64_t c = 0; c < channels_; ++c) {
    const double inv_std = 1.0 / std::sqrt(static_cast<double>(variance_[c]) + epsilon_);
    grads_[c] = static_cast<float>(sum_dy_dev[c] * inv_std);
    grads_[channels_ + c] = static_cast<float>(sum_dy[c]);
    const double g = scale[c] * inv_std;
    const double slope = -g * inv_std * inv_std * sum_dy_dev[c] / count;
    k1[c] = static_cast<float>(g);
    k2[c] = static_cast<float>(slope);
    k3[c] = static_cast<float>(-g * sum_dy[c] / count - slope * mean_[c]);
  }
  if (dx != nullptr) {
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t c = p % channels_;
      const float c1 = k1[c], c2 = k2[c], c3 = k3[c];
      const float* in = x + p * spatial_;
      const float* d = dy + p * spatial_;
      float* out = dx + p * spatial_;
      for (int64_t i = 0; i < spatial_; ++i) out[i] = c1 * d[i] + c2 * in[i] + c3;
    }
  }
  // The running statistics' new values, times the batch (the server divides
  // the sum over workers by their examples). PyTorch keeps the unbiased variance.
  const double unbias = count > 1 ? count / (count - 1) : 1.0;
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
