// SparseEmbedding: the first layer of a model over a sparse table on the
// servers (SparseEmbeddingSpec, issue 16). An example is `numeric` numeric
// features, then `fields` bags of values_per_field id slots; each slot holds
// the row, among the rows bound for the batch (BindRows), of the id the
// data gave it, as a float, or -1 when it holds no id (the worker writes
// them: worker/sparse_batch.h). The example becomes [numeric + fields * dim]:
// the numeric features as they are, then each bag's SUM or MEAN of its rows
// (an empty bag: zeros), added in slot order.
//
// The table is not among the model's parameters (param_shapes() is empty):
// for each batch the caller binds the rows it pulled, rows[n_rows, dim], and
// a buffer row_grads[n_rows, dim] that Backward fills whole with each row's
// gradient (a row no slot read gets zeros). Its CUDA twin
// (models/cuda/cuda_sparse_embedding.h) is a subclass: the binding and the
// input checks stay on the host. Not thread-safe, as every layer.
#ifndef TESSERA_MODELS_SPARSE_EMBEDDING_H_
#define TESSERA_MODELS_SPARSE_EMBEDDING_H_

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

class SparseEmbedding : public Layer {
 public:
  // REQUIRES: numeric >= 0; fields, values_per_field and dim >= 1.
  SparseEmbedding(int64_t numeric, int64_t fields, int64_t values_per_field, int64_t dim,
                  proto::SparseEmbeddingSpec::Combiner combiner);

  std::string type() const override { return "sparse_embedding"; }

  // The rows of the next Forward/Backward: rows[n_rows, dim] and, for a
  // training pass, row_grads[n_rows, dim] (may be null for inference). Both
  // are borrowed and must outlive that pass.
  void BindRows(const float* rows, float* row_grads, int64_t n_rows);
  int64_t bound_rows() const { return n_rows_; }

  // Checks n values of examples laid out back to back: every numeric value
  // finite, every slot -1 or an integer row in [0, bound_rows()).
  // InvalidArgument naming the first bad value (its example and slot).
  Status ValidateInput(const float* values, int64_t n) const;

  // A slot outside the bound rows (which ValidateInput refuses before a
  // pass) reads nothing, as an empty one.
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  // Writes row_grads whole; dx (when asked) is dy for the numeric features
  // and zero for the id slots.
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

  int64_t numeric() const { return numeric_; }
  int64_t dim() const { return dim_; }
  int64_t fields() const { return fields_; }
  int64_t values_per_field() const { return values_per_field_; }
  bool mean() const { return mean_; }
  // What BindRows bound (the CUDA twin uploads the rows and fills row_grads).
  const float* rows() const { return rows_; }
  float* row_grads() const { return row_grads_; }

 protected:
  // The row slot value v reads, or -1 for none.
  int64_t RowOf(float v) const;

 private:
  const int64_t numeric_, fields_, values_per_field_, dim_;
  const bool mean_;
  const float* rows_ = nullptr;  // [n_rows_, dim_], borrowed
  float* row_grads_ = nullptr;   // the same layout, borrowed; null when not training
  int64_t n_rows_ = 0;
};

// The layer `spec` (layer 0 of `model`) describes for examples of
// `in_shape`: one dimension, numeric + fields * values_per_field values
// (numeric >= 0), its dim that of the model.sparse_table it names.
// InvalidArgument naming the problem: no such table, or another shape.
StatusOr<std::unique_ptr<Layer>> CreateSparseEmbedding(const proto::ModelSpec& model,
                                                       const proto::SparseEmbeddingSpec& spec, const Shape& in_shape);

}  // namespace tessera

#endif  // TESSERA_MODELS_SPARSE_EMBEDDING_H_
