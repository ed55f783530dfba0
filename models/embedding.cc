#include "models/embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tessera {

int64_t EmbeddingId(float value, int64_t num_embeddings) {
  if (!std::isfinite(value)) return -1;
  const float rounded = std::nearbyint(value);
  if (rounded < 0.0f || rounded >= static_cast<float>(num_embeddings)) return -1;
  return static_cast<int64_t>(rounded);
}

std::vector<int64_t> DistinctEmbeddingIds(const float* values, int64_t n, int64_t num_embeddings) {
  std::vector<int64_t> ids;
  if (num_embeddings <= 4 * n) {
    // Many values over few rows (a batch of images of byte ids): mark the
    // rows seen, O(n + rows), rather than sort every value.
    std::vector<uint8_t> seen(num_embeddings, 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = EmbeddingId(values[i], num_embeddings);
      if (id >= 0) seen[id] = 1;
    }
    for (int64_t id = 0; id < num_embeddings; ++id) {
      if (seen[id]) ids.push_back(id);
    }
    return ids;
  }
  ids.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = EmbeddingId(values[i], num_embeddings);
    if (id >= 0) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

namespace {

Shape WithDim(Shape shape, int64_t dim) {
  shape.push_back(dim);
  return shape;
}

}  // namespace

Embedding::Embedding(const Shape& in_shape, int64_t num_embeddings, int64_t dim)
    : Layer(in_shape, WithDim(in_shape, dim)), rows_(num_embeddings), dim_(dim) {}

std::vector<ParamShape> Embedding::param_shapes() const {
  // Uniform in +-sqrt(3) has variance 1, as PyTorch's N(0, 1) initialization.
  return {{"weight", {rows_, dim_}, std::sqrt(3.0f)}};
}

void Embedding::Bind(const float* params, float* grads) {
  if (grads != weight_grad_) whole_dirty_ = true;  // a buffer this layer has not tracked
  weight_ = params;
  weight_grad_ = grads;
}

void Embedding::Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) {
  const int64_t n = batch * in_features();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = EmbeddingId(x[i], rows_);
    float* out = y + i * dim_;
    if (id < 0) {
      std::memset(out, 0, dim_ * sizeof(float));
    } else {
      std::memcpy(out, weight_ + id * dim_, dim_ * sizeof(float));
    }
  }
}

void Embedding::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  const int64_t n = batch * in_features();
  if (whole_dirty_) {
    std::memset(weight_grad_, 0, rows_ * dim_ * sizeof(float));
    whole_dirty_ = false;
  } else {
    for (int64_t row : dirty_rows_) std::memset(weight_grad_ + row * dim_, 0, dim_ * sizeof(float));
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = EmbeddingId(x[i], rows_);
    if (id < 0) continue;
    float* g = weight_grad_ + id * dim_;
    const float* d = dy + i * dim_;
    for (int64_t k = 0; k < dim_; ++k) g[k] += d[k];
  }
  dirty_rows_ = DistinctEmbeddingIds(x, n, rows_);
  if (dx != nullptr) std::memset(dx, 0, n * sizeof(float));
}

}  // namespace tessera
