#include "models/column_embedding.h"

#include <cmath>
#include <cstring>
#include <string>

namespace tessera {

namespace {

// Large enough for any real layer, small enough that products stay far from overflow (as models/layer.cc).
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;
constexpr int64_t kMaxIds = int64_t{1} << 24;  // ids travel as float32

Shape OutShape(const IdLayout& layout, int64_t dim) {
  return {layout.numeric() + (layout.features() - layout.numeric()) * dim};
}

}  // namespace

ColumnEmbedding::ColumnEmbedding(IdLayout layout, int64_t dim)
    : Layer({layout.features()}, OutShape(layout, dim)), layout_(std::move(layout)), dim_(dim) {}

std::vector<ParamShape> ColumnEmbedding::param_shapes() const {
  // Uniform in +-sqrt(3) has variance 1, as Embedding's.
  return {{"weight", {layout_.total_rows(), dim_}, std::sqrt(3.0f)}};
}

void ColumnEmbedding::Bind(const float* params, float* grads) {
  if (grads != weight_grad_) whole_dirty_ = true;  // a buffer this layer has not tracked
  weight_ = params;
  weight_grad_ = grads;
}

void ColumnEmbedding::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  const int64_t in = in_features(), out = out_features(), numeric = layout_.numeric();
  for (int64_t b = 0; b < batch; ++b) {
    const float* example = x + b * in;
    float* y_row = y + b * out;
    std::memcpy(y_row, example, numeric * sizeof(float));
    for (int64_t i = numeric; i < in; ++i) {
      const int64_t row = layout_.RowOf(i, example[i]);
      float* target = y_row + numeric + (i - numeric) * dim_;
      if (row < 0) {
        std::memset(target, 0, dim_ * sizeof(float));
      } else {
        std::memcpy(target, weight_ + row * dim_, dim_ * sizeof(float));
      }
    }
  }
}

void ColumnEmbedding::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  const int64_t in = in_features(), out = out_features(), numeric = layout_.numeric();
  if (whole_dirty_) {
    std::memset(weight_grad_, 0, layout_.total_rows() * dim_ * sizeof(float));
    whole_dirty_ = false;
  } else {
    for (int64_t row : dirty_rows_) std::memset(weight_grad_ + row * dim_, 0, dim_ * sizeof(float));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const float* example = x + b * in;
    const float* dy_row = dy + b * out;
    for (int64_t i = numeric; i < in; ++i) {
      const int64_t row = layout_.RowOf(i, example[i]);
      if (row < 0) continue;
      float* g = weight_grad_ + row * dim_;
      const float* d = dy_row + numeric + (i - numeric) * dim_;
      for (int64_t k = 0; k < dim_; ++k) g[k] += d[k];
    }
    if (dx != nullptr) {
      std::memcpy(dx + b * in, dy_row, numeric * sizeof(float));
      std::memset(dx + b * in + numeric, 0, (in - numeric) * sizeof(float));
    }
  }
  dirty_rows_ = layout_.RowsOf(x, batch);
}

StatusOr<std::unique_ptr<Layer>> CreateColumnEmbedding(const proto::ColumnEmbeddingSpec& spec, const Shape& in_shape,
                                                       const std::vector<int64_t>& rows) {
  if (rows.empty()) {
    return InvalidArgumentError("column_embedding needs a table with categorical columns "
                                "(data.table.categorical_columns), and this data has none");
  }
  const int64_t columns = static_cast<int64_t>(rows.size());
  if (in_shape.size() != 1 || in_shape[0] < columns) {
    return InvalidArgumentError("column_embedding needs [features] inputs holding the " + std::to_string(columns) +
                                " categorical ids, got " + ShapeText(in_shape));
  }
  if (spec.embedding_dim() < 1) {
    return InvalidArgumentError("column_embedding.embedding_dim must be >= 1, got " +
                                std::to_string(spec.embedding_dim()));
  }
  int64_t total = 0;
  for (int64_t r : rows) {
    if (r < 1 || r > kMaxIds) {
      return InvalidArgumentError("column_embedding: a categorical column of " + std::to_string(r) +
                                  " ids, outside [1, 2^24]");
    }
    total += r;
  }
  const int64_t numeric = in_shape[0] - columns;
  if (total * spec.embedding_dim() > kMaxTensorElements ||
      numeric + columns * spec.embedding_dim() > kMaxTensorElements) {
    return InvalidArgumentError("column_embedding of " + std::to_string(total) + " rows of " +
                                std::to_string(spec.embedding_dim()) + " is too large");
  }
  return std::unique_ptr<Layer>(new ColumnEmbedding(IdLayout::Columns(numeric, rows), spec.embedding_dim()));
}

}  // namespace tessera
