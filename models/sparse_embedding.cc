#include "models/sparse_embedding.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/sparse_table_spec.h"

namespace tessera {

SparseEmbedding::SparseEmbedding(int64_t numeric, int64_t fields, int64_t values_per_field, int64_t dim,
                                 proto::SparseEmbeddingSpec::Combiner combiner)
    : Layer(Shape{numeric + fields * values_per_field}, Shape{numeric + fields * dim}),
      numeric_(numeric),
      fields_(fields),
      values_per_field_(values_per_field),
      dim_(dim),
      mean_(combiner == proto::SparseEmbeddingSpec::MEAN) {}

void SparseEmbedding::BindRows(const float* rows, float* row_grads, int64_t n_rows) {
  rows_ = rows;
  row_grads_ = row_grads;
  n_rows_ = n_rows;
}

int64_t SparseEmbedding::RowOf(float v) const {
  // Written so that NaN reads no row.
  if (!(v >= 0.0f && v < static_cast<float>(n_rows_)) || v != std::floor(v)) return -1;
  return static_cast<int64_t>(v);
}

Status SparseEmbedding::ValidateInput(const float* values, int64_t n) const {
  const int64_t features = in_features();
  for (int64_t i = 0; i < n; ++i) {
    const float v = values[i];
    const int64_t place = i % features;
    const std::string where = "example " + std::to_string(i / features) + ", value " + std::to_string(place);
    if (place < numeric_) {
      if (std::isfinite(v)) continue;
      return InvalidArgumentError(where + ": a numeric feature, " + std::to_string(v) + ", is not finite");
    }
    if (v != -1.0f && RowOf(v) < 0) {
      return InvalidArgumentError(where + ": an id slot holds " + std::to_string(v) +
                                  ", expected -1 (no id) or a row of the batch in [0, " + std::to_string(n_rows_) +
                                  ")");
    }
  }
  return OkStatus();
}

void SparseEmbedding::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  const size_t row_bytes = dim_ * sizeof(float);
  for (int64_t e = 0; e < batch; ++e) {
    const float* in = x + e * in_features();
    float* out = y + e * out_features();
    std::memcpy(out, in, numeric_ * sizeof(float));
    for (int64_t f = 0; f < fields_; ++f) {
      const float* slots = in + numeric_ + f * values_per_field_;
      float* bag = out + numeric_ + f * dim_;
      int64_t count = 0;
      for (int64_t v = 0; v < values_per_field_; ++v) {
        const int64_t row = RowOf(slots[v]);
        if (row < 0) continue;
        const float* values = rows_ + row * dim_;
        // The first row is copied, not added to zeros, so a bag of one id
        // is its row bit for bit (-0.0 included).
        if (count == 0) {
          std::memcpy(bag, values, row_bytes);
        } else {
          for (int64_t k = 0; k < dim_; ++k) bag[k] += values[k];
        }
        ++count;
      }
      if (count == 0) {
        std::memset(bag, 0, row_bytes);
      } else if (mean_) {
        const float divisor = static_cast<float>(count);
        for (int64_t k = 0; k < dim_; ++k) bag[k] /= divisor;
      }
    }
  }
}

void SparseEmbedding::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  if (row_grads_ != nullptr) std::memset(row_grads_, 0, n_rows_ * dim_ * sizeof(float));
  for (int64_t e = 0; e < batch; ++e) {
    const float* in = x + e * in_features();
    const float* d = dy + e * out_features();
    if (dx != nullptr) {
      float* dx_example = dx + e * in_features();
      std::memcpy(dx_example, d, numeric_ * sizeof(float));
      std::memset(dx_example + numeric_, 0, fields_ * values_per_field_ * sizeof(float));
    }
    if (row_grads_ == nullptr) continue;
    for (int64_t f = 0; f < fields_; ++f) {
      const float* slots = in + numeric_ + f * values_per_field_;
      const float* d_bag = d + numeric_ + f * dim_;
      int64_t count = 0;
      for (int64_t v = 0; v < values_per_field_; ++v) count += RowOf(slots[v]) >= 0 ? 1 : 0;
      const float divisor = mean_ ? static_cast<float>(count) : 1.0f;
      for (int64_t v = 0; v < values_per_field_; ++v) {
        const int64_t row = RowOf(slots[v]);
        if (row < 0) continue;
        float* g = row_grads_ + row * dim_;
        if (mean_) {
          for (int64_t k = 0; k < dim_; ++k) g[k] += d_bag[k] / divisor;
        } else {
          for (int64_t k = 0; k < dim_; ++k) g[k] += d_bag[k];
        }
      }
    }
  }
}

StatusOr<std::unique_ptr<Layer>> CreateSparseEmbedding(const proto::ModelSpec& model,
                                                       const proto::SparseEmbeddingSpec& spec, const Shape& in_shape) {
  const proto::SparseTableSpec* table = FindSparseTable(model, spec.table());
  if (table == nullptr) {
    return InvalidArgumentError("sparse_embedding.table '" + spec.table() + "' is no model.sparse_table's name");
  }
  if (table->dim() < 1 || spec.fields() < 1 || spec.values_per_field() < 1) {
    return InvalidArgumentError("sparse_embedding needs fields, values_per_field and its table's dim >= 1, got " +
                                std::to_string(spec.fields()) + ", " + std::to_string(spec.values_per_field()) +
                                " and " + std::to_string(table->dim()));
  }
  const int64_t slots = int64_t{spec.fields()} * spec.values_per_field();
  if (in_shape.size() != 1 || in_shape[0] < slots) {
    return InvalidArgumentError("sparse_embedding of " + std::to_string(spec.fields()) + " fields of " +
                                std::to_string(spec.values_per_field()) + " ids needs examples of [numeric + " +
                                std::to_string(slots) + "] values, got " + ShapeText(in_shape));
  }
  return std::unique_ptr<Layer>(
      new SparseEmbedding(in_shape[0] - slots, spec.fields(), spec.values_per_field(), table->dim(), spec.combiner()));
}

}  // namespace tessera
