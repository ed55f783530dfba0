// Dropout (inverted, as PyTorch): in training each value is zeroed with
// probability p and the rest scaled by 1/(1-p); in evaluation, the identity.
// The mask is drawn from the pass's seed, so a step repeats bitwise.
#ifndef TESSERA_MODELS_DROPOUT_H_
#define TESSERA_MODELS_DROPOUT_H_

#include <vector>

#include "models/layer.h"

namespace tessera {

class Dropout : public Layer {
 public:
  Dropout(const Shape& shape, float p) : Layer(shape, shape), p_(p) {}
  std::string type() const override { return "dropout"; }
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  float p_;
  // The last training pass's multiplier per value: 0 or 1/(1-p).
  std::vector<float> scale_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_DROPOUT_H_
