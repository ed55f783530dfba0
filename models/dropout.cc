#include "models/dropout.h"

#include <cstring>

#include "core/random.h"

namespace tessera {

void Dropout::Forward(const float* x, int64_t batch, float* y, const Pass& pass) {
  const int64_t n = batch * in_features();
  if (!pass.training || p_ == 0.0f) {
    std::memcpy(y, x, n * sizeof(float));
    scale_.assign(n, 1.0f);
    return;
  }
  const float keep = 1.0f / (1.0f - p_);
  scale_.resize(n);
  SplitMix64 rng(pass.seed);
  for (int64_t i = 0; i < n; ++i) {
    scale_[i] = rng.NextFloat() < p_ ? 0.0f : keep;
    y[i] = x[i] * scale_[i];
  }
}

void Dropout::Backward(const float* /*x*/, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (dx == nullptr) return;
  const int64_t n = batch * in_features();
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * scale_[i];
}

}  // namespace tessera
