// Embedding: a lookup table. Every input value is an id (rounded to the
// nearest integer) and becomes that row of the [num_embeddings, dim] weight:
// an example of shape S gives S + [dim]. Ids have no gradient.
//
// Backward touches only the rows the batch used: it zeroes the rows the
// previous Backward wrote into the same gradient buffer (the whole table's
// gradient after Bind() gave it a new buffer), then adds dy into the used
// rows. So the gradient is exact everywhere, and a step costs the rows it
// uses, not the table.
#ifndef TESSERA_MODELS_EMBEDDING_H_
#define TESSERA_MODELS_EMBEDDING_H_

#include <cstdint>
#include <vector>

#include "models/layer.h"

namespace tessera {

// The id `value` stands for: the nearest integer, or -1 when that is not in
// [0, num_embeddings) (or value is not finite).
int64_t EmbeddingId(float value, int64_t num_embeddings);

// The sorted distinct ids among n values (invalid ones left out).
std::vector<int64_t> DistinctEmbeddingIds(const float* values, int64_t n, int64_t num_embeddings);

class Embedding : public Layer {
 public:
  Embedding(const Shape& in_shape, int64_t num_embeddings, int64_t dim);

  std::string type() const override { return "embedding"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  // An invalid id (which the worker and serve refuse before a pass) gives a
  // row of zeros and no gradient.
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  // dx, when given, is zero: ids have no gradient.
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

  int64_t num_embeddings() const { return rows_; }
  int64_t dim() const { return dim_; }

 private:
  int64_t rows_, dim_;
  const float* weight_ = nullptr;  // [rows, dim], borrowed
  float* weight_grad_ = nullptr;
  // Rows of weight_grad_ that hold a gradient; all of them when whole_dirty_.
  std::vector<int64_t> dirty_rows_;
  bool whole_dirty_ = true;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_EMBEDDING_H_
