// BatchNorm over the channels of [C, H, W] (BatchNorm2d) or the features of
// [F] (BatchNorm1d), computed with oneDNN. Parameters, in key order: weight
// (scale, init 1), bias (shift, init 0), running_mean (init 0) and
// running_var (init 1); the last two are non-trainable: Backward writes their
// updated values times the batch size into the gradient buffer, and servers
// keep the example-weighted mean over workers (see ParamShape::trainable).
#ifndef TESSERA_MODELS_BATCH_NORM_H_
#define TESSERA_MODELS_BATCH_NORM_H_

#include <map>
#include <memory>
#include <vector>

#include "models/layer.h"

namespace tessera {

class BatchNorm : public Layer {
 public:
  BatchNorm(const Shape& shape, float momentum, float epsilon);
  ~BatchNorm() override;

  std::string type() const override { return "batch_norm"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;
  Primitives& For(int64_t batch, bool training);

  int64_t channels_, spatial_;  // spatial_: H*W, or 1 for features
  float momentum_, epsilon_;
  const float* params_ = nullptr;  // weight, bias, running_mean, running_var
  float* grads_ = nullptr;
  // The last training pass's batch statistics (variance biased, as normalization uses).
  std::vector<float> mean_, variance_;
  std::map<std::pair<int64_t, bool>, std::unique_ptr<Primitives>> primitives_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_BATCH_NORM_H_
