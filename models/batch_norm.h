// BatchNorm over the channels of [C, H, W] (BatchNorm2d) or the features of
// [F] (BatchNorm1d). Own loops over the NCHW planes: oneDNN's batch norm on
// plain NCHW buffers took 2-3x as long (bench/model_bench, fmnist-cnn-bn's
// first BatchNorm: 3.5 ms forward and 5.6 ms backward at batch 64), and
// these need two passes forward and two backward. Parameters, in key order: weight
// (scale, init 1), bias (shift, init 0), running_mean (init 0) and
// running_var (init 1); the last two are non-trainable: Backward writes their
// updated values times the batch size into the gradient buffer, and servers
// keep the example-weighted mean over workers (see ParamShape::trainable).
#ifndef TESSERA_MODELS_BATCH_NORM_H_
#define TESSERA_MODELS_BATCH_NORM_H_

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
  int64_t channels_, spatial_;  // spatial_: H*W, or 1 for features
  float momentum_, epsilon_;
  const float* params_ = nullptr;  // weight, bias, running_mean, running_var
  float* grads_ = nullptr;
  // The last training pass's batch statistics (variance biased, as normalization uses).
  std::vector<float> mean_, variance_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_BATCH_NORM_H_
