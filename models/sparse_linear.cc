#include "models/sparse_linear.h"

#include <cmath>
#include <cstring>
#include <string>

namespace tessera {

namespace {

// As models/layer.cc: large enough for any real layer, far from overflow.
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;
constexpr int64_t kMaxFeatures = int64_t{1} << 24;  // indexes travel as float32

}  // namespace

SparseLinear::SparseLinear(int64_t pairs, int64_t num_features, int64_t out)
    : Layer({pairs, 2}, {out}), layout_(IdLayout::Pairs(pairs, num_features)) {}

std::vector<ParamShape> SparseLinear::param_shapes() const {
  // A Linear over num_features inputs: PyTorch's bound 1/sqrt(in) for both.
  const float bound = 1.0f / std::sqrt(static_cast<float>(num_features()));
  return {{"weight", {num_features(), out_features()}, bound}, {"bias", {out_features()}, bound}};
}

void SparseLinear::Bind(const float* params, float* grads) {
  if (grads != weight_grad_) whole_dirty_ = true;  // a buffer this layer has not tracked
  weight_ = params;
  weight_grad_ = grads;
}

void SparseLinear::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  const int64_t in = in_features(), out = out_features();
  const float* bias = weight_ + num_features() * out;
  for (int64_t b = 0; b < batch; ++b) {
    const float* example = x + b * in;
    float* y_row = y + b * out;
    std::memcpy(y_row, bias, out * sizeof(float));
    for (int64_t i = 0; i < in; i += 2) {
      const int64_t row = layout_.RowOf(i, example[i]);
      if (row < 0) continue;
      const float value = example[i + 1];
      const float* w = weight_ + row * out;
      for (int64_t o = 0; o < out; ++o) y_row[o] += value * w[o];
    }
  }
}

void SparseLinear::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  const int64_t in = in_features(), out = out_features();
  if (whole_dirty_) {
    std::memset(weight_grad_, 0, num_features() * out * sizeof(float));
    whole_dirty_ = false;
  } else {
    for (int64_t row : dirty_rows_) std::memset(weight_grad_ + row * out, 0, out * sizeof(float));
  }
  float* bias_grad = weight_grad_ + num_features() * out;
  std::memset(bias_grad, 0, out * sizeof(float));
  for (int64_t b = 0; b < batch; ++b) {
    const float* example = x + b * in;
    const float* dy_row = dy + b * out;
    for (int64_t o = 0; o < out; ++o) bias_grad[o] += dy_row[o];
    for (int64_t i = 0; i < in; i += 2) {
      const int64_t row = layout_.RowOf(i, example[i]);
      if (row < 0) continue;
      const float value = example[i + 1];
      float* g = weight_grad_ + row * out;
      for (int64_t o = 0; o < out; ++o) g[o] += value * dy_row[o];
    }
  }
  if (dx != nullptr) std::memset(dx, 0, batch * in * sizeof(float));
  dirty_rows_ = layout_.RowsOf(x, batch);
}

StatusOr<std::unique_ptr<Layer>> CreateSparseLinear(const proto::SparseLinearSpec& spec, const Shape& in_shape,
                                                    int64_t num_features) {
  if (num_features < 1) {
    return InvalidArgumentError("sparse_linear needs libsvm data (data.format LIBSVM), whose examples are "
                                "(feature, value) pairs");
  }
  if (in_shape.size() != 2 || in_shape[0] < 1 || in_shape[1] != 2) {
    return InvalidArgumentError("sparse_linear needs [pairs, 2] inputs, got " + ShapeText(in_shape));
  }
  if (spec.out_features() < 1) {
    return InvalidArgumentError("sparse_linear.out_features must be >= 1, got " + std::to_string(spec.out_features()));
  }
  if (num_features > kMaxFeatures) {
    return InvalidArgumentError("sparse_linear over " + std::to_string(num_features) +
                                " features: at most 2^24 (16777216; indexes travel as float32)");
  }
  if (num_features * spec.out_features() > kMaxTensorElements) {
    return InvalidArgumentError("sparse_linear of " + std::to_string(num_features) + " features x " +
                                std::to_string(spec.out_features()) + " outputs is too large (over 2^31 weights)");
  }
  return std::unique_ptr<Layer>(new SparseLinear(in_shape[0], num_features, spec.out_features()));
}

}  // namespace tessera
