// MaxPool2d: the maximum over k x k windows (stride s, no padding) of each
// channel of [C, H, W], computed with oneDNN.
#ifndef TESSERA_MODELS_MAX_POOL2D_H_
#define TESSERA_MODELS_MAX_POOL2D_H_

#include <map>
#include <memory>

#include "models/layer.h"

namespace tessera {

class MaxPool2d : public Layer {
 public:
  // REQUIRES: in_shape is [C, H, W] with H, W >= kernel.
  MaxPool2d(const Shape& in_shape, int64_t kernel, int64_t stride);
  ~MaxPool2d() override;

  std::string type() const override { return "max_pool2d"; }
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;
  Primitives& For(int64_t batch);

  int64_t kernel_, stride_;
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_MAX_POOL2D_H_
