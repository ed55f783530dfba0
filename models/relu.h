// ReLU: y = max(x, 0), elementwise.
#ifndef TESSERA_MODELS_RELU_H_
#define TESSERA_MODELS_RELU_H_

#include "models/layer.h"

namespace tessera {

class Relu : public Layer {
 public:
  explicit Relu(int64_t features) : features_(features) {}
  std::string type() const override { return "relu"; }
  int64_t in_features() const override { return features_; }
  int64_t out_features() const override { return features_; }
  void Forward(const float* x, int64_t batch, float* y) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  int64_t features_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_RELU_H_
