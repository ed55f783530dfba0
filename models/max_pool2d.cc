#include "models/max_pool2d.h"

#include <cstring>

namespace tessera {

namespace {

Shape PooledShape(const Shape& in, int64_t kernel, int64_t stride) {
  return {in[0], (in[1] - kernel) / stride + 1, (in[2] - kernel) / stride + 1};
}

}  // namespace

MaxPool2d::MaxPool2d(const Shape& in_shape, int64_t kernel, int64_t stride)
    : Layer(in_shape, PooledShape(in_shape, kernel, stride)), kernel_(kernel), stride_(stride) {}

void MaxPool2d::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  const int64_t planes = batch * in_shape()[0];
  const int64_t width = in_shape()[2], plane = in_shape()[1] * width;
  const int64_t out_h = out_shape()[1], out_w = out_shape()[2];
  argmax_.resize(planes * out_h * out_w);
  int32_t* winner = argmax_.data();
  for (int64_t p = 0; p < planes; ++p, x += plane) {
    for (int64_t i = 0; i < out_h; ++i) {
      for (int64_t j = 0; j < out_w; ++j) {
        // The first maximum wins, as in PyTorch. Selects, not branches: which
        // value wins is data, and a branch on it mispredicts.
        int32_t best = static_cast<int32_t>(i * stride_ * width + j * stride_);
        float best_value = x[best];
        for (int64_t a = 0; a < kernel_; ++a) {
          const int32_t row = static_cast<int32_t>((i * stride_ + a) * width + j * stride_);
          for (int32_t b = 0; b < kernel_; ++b) {
            const float v = x[row + b];
            const bool wins = v > best_value;
            best_value = wins ? v : best_value;
            best = wins ? row + b : best;
          }
        }
        *y++ = best_value;
        *winner++ = best;
      }
    }
  }
}

void MaxPool2d::Backward(const float* /*x*/, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (dx == nullptr) return;
  const int64_t planes = batch * in_shape()[0];
  const int64_t plane = in_shape()[1] * in_shape()[2];
  const int64_t outputs = out_shape()[1] * out_shape()[2];
  std::memset(dx, 0, planes * plane * sizeof(float));
  const int32_t* winner = argmax_.data();
  for (int64_t p = 0; p < planes; ++p, dx += plane) {
    // += : overlapping windows (stride < kernel) may share a winner.
    for (int64_t o = 0; o < outputs; ++o) dx[winner[o]] += dy[o];
    dy += outputs;
    winner += outputs;
  }
}

}  // namespace tessera
