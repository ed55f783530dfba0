// ColumnEmbedding: the first layer of a model over a table with categorical
// columns (ColumnEmbeddingSpec). An example is [numeric + columns] values:
// the numeric features pass through, and each categorical column's id
// becomes its row of that column's table, giving [numeric + columns * dim].
// The tables are one [sum of rows, dim] weight, column c's from row
// rows[0] + ... + rows[c - 1] (IdLayout::Columns), so the model's sparse
// pushes treat it as one embedding table: one tensor, rows it touched.
//
// Backward touches only the rows the batch used, as Embedding does: it
// zeroes the rows the previous Backward wrote into the same gradient buffer
// (the whole table after Bind() gave it a new buffer), then adds dy into the
// used rows. Ids have no gradient; numeric features get dy's (dx passes it).
// Not thread-safe, as every layer.
#ifndef TESSERA_MODELS_COLUMN_EMBEDDING_H_
#define TESSERA_MODELS_COLUMN_EMBEDDING_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "models/id_layout.h"
#include "models/layer.h"

namespace tessera {

class ColumnEmbedding : public Layer {
 public:
  // REQUIRES: layout is IdLayout::Columns; dim >= 1.
  ColumnEmbedding(IdLayout layout, int64_t dim);

  std::string type() const override { return "column_embedding"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  // An invalid id (which the worker refuses before a pass) gives a row of
  // zeros and no gradient.
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

  const IdLayout& layout() const { return layout_; }
  int64_t dim() const { return dim_; }

 private:
  IdLayout layout_;
  int64_t dim_;
  const float* weight_ = nullptr;  // [total rows, dim], borrowed
  float* weight_grad_ = nullptr;
  std::vector<int64_t> dirty_rows_;  // rows of weight_grad_ holding a gradient; all when whole_dirty_
  bool whole_dirty_ = true;
};

// The layer `spec` describes for examples of `in_shape` ([features]) whose
// last rows.size() values are categorical ids, column c's in [0, rows[c]).
// InvalidArgument naming the problem: no categorical columns, a shape that
// is not [features] with at least as many values, a table of no rows or over
// 2^24, embedding_dim < 1, or a weight or output too large.
StatusOr<std::unique_ptr<Layer>> CreateColumnEmbedding(const proto::ColumnEmbeddingSpec& spec, const Shape& in_shape,
                                                       const std::vector<int64_t>& rows);

}  // namespace tessera

#endif  // TESSERA_MODELS_COLUMN_EMBEDDING_H_
