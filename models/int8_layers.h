// Int8 inference layers: Conv2d and Linear computing in int8 on oneDNN's
// int8 primitives (VNNI instructions where the CPU has them), for models that
// `tessera export --quantize int8` wrote. The spec's Int8Spec says how the
// float input is quantized; the weights are integers in [-127, 127] stored as
// floats in the model's flat buffer, with a scale per output channel in the
// tensor "weight_scale"; the output is float (docs/FORMATS.md, "int8 models").
//
// Forward only, evaluation mode: Backward must never be called (training
// refuses int8 layers, ValidateJobSpec). The weights are converted to int8
// once, on the first Forward after Bind: set the parameters before the first
// pass and do not change them afterwards.
#ifndef TESSERA_MODELS_INT8_LAYERS_H_
#define TESSERA_MODELS_INT8_LAYERS_H_

#include <map>
#include <memory>

#include "models/conv2d.h"
#include "models/layer.h"

namespace tessera {

class Int8Conv2d : public Layer {
 public:
  Int8Conv2d(const ConvGeometry& g, const proto::Int8Spec& int8, const ConvFusion& fusion = {});
  ~Int8Conv2d() override;

  std::string type() const override { return "conv2d"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;  // oneDNN objects for one batch size
  Primitives& For(int64_t batch);

  ConvGeometry g_;
  float input_scale_;
  bool input_unsigned_;
  ConvFusion fusion_;
  const float* params_ = nullptr;  // weight, bias, weight_scale
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

class Int8Linear : public Layer {
 public:
  Int8Linear(const Shape& in_shape, int64_t out_features, bool bias, const proto::Int8Spec& int8);
  ~Int8Linear() override;

  std::string type() const override { return "linear"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

 private:
  struct Primitives;
  Primitives& For(int64_t batch);

  int64_t in_, out_;
  bool has_bias_;
  float input_scale_;
  bool input_unsigned_;
  const float* params_ = nullptr;
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;
};

// Checks an Int8Spec: input_scale finite and > 0.
Status ValidateInt8Spec(const proto::Int8Spec& int8);

}  // namespace tessera

#endif  // TESSERA_MODELS_INT8_LAYERS_H_
