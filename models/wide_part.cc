#include "models/wide_part.h"

#include <cmath>
#include <cstring>

namespace tessera {

void WidePart::BindRows(const float* rows, float* row_grads, int64_t n_rows, const float* slot_rows) {
  rows_ = rows;
  row_grads_ = row_grads;
  n_rows_ = n_rows;
  slot_rows_ = slot_rows;
}

int64_t WidePart::RowOf(float v) const {
  // Written so that NaN reads no row.
  if (!(v >= 0.0f && v < static_cast<float>(n_rows_)) || v != std::floor(v)) return -1;
  return static_cast<int64_t>(v);
}

void WidePart::AddTo(const float* deep, int64_t batch, float* logits) const {
  for (int64_t e = 0; e < batch; ++e) {
    float logit = deep[e];
    for (int64_t s = 0; s < slots_; ++s) {
      const int64_t row = RowOf(slot_rows_[e * slots_ + s]);
      if (row >= 0) logit += rows_[row];
    }
    logits[e] = logit;
  }
}

void WidePart::Backward(const float* dlogits, int64_t batch) const {
  if (row_grads_ == nullptr) return;
  std::memset(row_grads_, 0, n_rows_ * sizeof(float));
  for (int64_t e = 0; e < batch; ++e) {
    for (int64_t s = 0; s < slots_; ++s) {
      const int64_t row = RowOf(slot_rows_[e * slots_ + s]);
      if (row >= 0) row_grads_[row] += dlogits[e];
    }
  }
}

}  // namespace tessera
