// Flatten: [C, H, W] -> [C*H*W]. The bytes do not move; the layer only
// changes the shape the next layer sees.
#ifndef TESSERA_MODELS_FLATTEN_H_
#define TESSERA_MODELS_FLATTEN_H_

#include "models/layer.h"

namespace tessera {

class Flatten : public Layer {
 public:
  explicit Flatten(const Shape& in_shape) : Layer(in_shape, {NumElements(in_shape)}) {}
  std::string type() const override { return "flatten"; }
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_FLATTEN_H_
