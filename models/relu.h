// ReLU: y = max(x, 0), elementwise, any shape.
#ifndef TESSERA_MODELS_RELU_H_
#define TESSERA_MODELS_RELU_H_

#include "models/layer.h"

namespace tessera {

class Relu : public Layer {
 public:
  explicit Relu(const Shape& shape) : Layer(shape, shape) {}
  std::string type() const override { return "relu"; }
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_RELU_H_
