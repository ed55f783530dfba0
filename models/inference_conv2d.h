// InferenceConv2d: a float Conv2d for inference only, with the ReLU and max
// pooling after it fused into the same pass (ConvFusion), the way an int8
// convolution runs (models/int8_layers.h). Model::PrepareForInference puts
// it in place of a Conv2d; training never sees it.
//
// The weights are reordered into the primitive's layout once, on the first
// Forward after Bind: set the parameters before the first pass and do not
// change them afterwards.
#ifndef TESSERA_MODELS_INFERENCE_CONV2D_H_
#define TESSERA_MODELS_INFERENCE_CONV2D_H_

#include <map>
#include <memory>

#include "models/conv2d.h"
#include "models/layer.h"

namespace tessera {

class InferenceConv2d : public Layer {
 public:
  InferenceConv2d(const ConvGeometry& g, const ConvFusion& fusion);
  ~InferenceConv2d() override;

  std::string type() const override { return "conv2d"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;
  Primitives& For(int64_t batch);

  ConvGeometry g_;
  ConvFusion fusion_;
  const float* params_ = nullptr;  // weight, then bias
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_INFERENCE_CONV2D_H_
