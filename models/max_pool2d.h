// MaxPool2d: the maximum over k x k windows (stride s, no padding) of each
// channel of [C, H, W]. Own loops: on this layer oneDNN's kernels, which work
// in blocked layouts, spent most of their time transposing our NCHW buffers
// (bench/model_bench: 5.3 ms forward for fmnist-cnn's first pool at batch 64,
// against about 1 ms for these loops).
#ifndef TESSERA_MODELS_MAX_POOL2D_H_
#define TESSERA_MODELS_MAX_POOL2D_H_

#include <cstdint>
#include <vector>

#include "models/layer.h"

namespace tessera {

class MaxPool2d : public Layer {
 public:
  // REQUIRES: in_shape is [C, H, W] with H, W >= kernel.
  MaxPool2d(const Shape& in_shape, int64_t kernel, int64_t stride);

  std::string type() const override { return "max_pool2d"; }
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  int64_t kernel_, stride_;
  // The last Forward's winner of each output: its index inside the input plane.
  std::vector<int32_t> argmax_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_MAX_POOL2D_H_
