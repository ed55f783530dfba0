#include "models/id_layout.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "models/embedding.h"

namespace tessera {

IdLayout IdLayout::Shared(int64_t features, int64_t rows) { return IdLayout(Kind::kShared, features, 0, {0, rows}); }

IdLayout IdLayout::Pairs(int64_t pairs, int64_t rows) { return IdLayout(Kind::kPairs, 2 * pairs, 0, {0, rows}); }

IdLayout IdLayout::Columns(int64_t numeric, std::vector<int64_t> rows) {
  std::vector<int64_t> offsets = {0};
  for (int64_t r : rows) offsets.push_back(offsets.back() + r);
  return IdLayout(Kind::kColumns, numeric + static_cast<int64_t>(rows.size()), numeric, std::move(offsets));
}

int64_t IdLayout::RowOf(int64_t i, float value) const {
  if (!IsId(i)) return -1;
  const int64_t c = ColumnOf(i);
  const int64_t id = EmbeddingId(value, offsets_[c + 1] - offsets_[c]);
  return id < 0 ? -1 : offsets_[c] + id;
}

std::vector<int64_t> IdLayout::RowsOf(const float* x, int64_t batch) const {
  // One table: the embedding's own search, which marks rows when there are few.
  if (kind_ == Kind::kShared) return DistinctEmbeddingIds(x, batch * features_, total_rows());
  if (kind_ == Kind::kPairs) {
    // The indexes alone, then the embedding's search (marks rows when there
    // are few, as Fashion-MNIST's 784 pixels; sorts when there are millions).
    std::vector<float> indexes(batch * features_ / 2);
    for (size_t k = 0; k < indexes.size(); ++k) indexes[k] = x[2 * k];
    return DistinctEmbeddingIds(indexes.data(), static_cast<int64_t>(indexes.size()), total_rows());
  }
  std::vector<int64_t> rows;
  rows.reserve(batch * (features_ - numeric_));
  const int64_t step = kind_ == Kind::kPairs ? 2 : 1;  // pairs: only the indexes
  for (int64_t b = 0; b < batch; ++b) {
    const float* example = x + b * features_;
    for (int64_t i = numeric_; i < features_; i += step) {
      const int64_t row = RowOf(i, example[i]);
      if (row >= 0) rows.push_back(row);
    }
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

Status IdLayout::Validate(const float* values, int64_t n) const {
  for (int64_t k = 0; k < n; ++k) {
    const float v = values[k];
    if (!std::isfinite(v)) return InvalidArgumentError("input value " + std::to_string(v) + " is not finite");
    const int64_t i = k % features_;
    if (!IsId(i) || RowOf(i, v) >= 0) continue;
    if (kind_ == Kind::kPairs && v == -1.0f) continue;  // a padding pair
    return BadId(i, v);
  }
  return OkStatus();
}

Status IdLayout::BadId(int64_t i, float v) const {
  const int64_t c = ColumnOf(i);
  const std::string range = "[0, " + std::to_string(offsets_[c + 1] - offsets_[c]) + ")";
  if (kind_ == Kind::kPairs) {
    return InvalidArgumentError("input feature index " + std::to_string(v) + " of pair " + std::to_string(i / 2) +
                                " is neither -1 (padding) nor a feature in " + range +
                                " for the sparse_linear first layer");
  }
  if (kind_ == Kind::kShared) {
    return InvalidArgumentError("input value " + std::to_string(v) + " is not an id in " + range +
                                " for the embedding first layer (data.mean 0 and data.std 1/255 feed the raw "
                                "byte values)");
  }
  return InvalidArgumentError("input value " + std::to_string(v) + " of categorical column " + std::to_string(c) +
                              " is not an id in " + range + " for the column_embedding first layer");
}

}  // namespace tessera
