// WidePart: the wide half of a Wide & Deep model (issue 16;
// SparseEmbeddingSpec.wide_table): each example's final logit is the deep
// layers' output plus the sum of the weights of its wide features. A weight
// is a one-float row of the wide table on the servers; for each batch the
// caller binds the rows it pulled (the batch's distinct wide ids, as
// worker/sparse_batch.h makes them), each example's `slots` wide slots (the
// row each reads, as a float, or -1 for none), and a buffer Backward fills
// whole with each row's gradient. Not thread-safe, as every layer.
#ifndef TESSERA_MODELS_WIDE_PART_H_
#define TESSERA_MODELS_WIDE_PART_H_

#include <cstdint>

namespace tessera {

class WidePart {
 public:
  // REQUIRES: slots >= 1.
  explicit WidePart(int64_t slots) : slots_(slots) {}

  int64_t slots() const { return slots_; }

  // The next pass's rows[n_rows] and row_grads[n_rows] (null when it only
  // infers), and slot_rows[batch * slots]. All borrowed until the pass ends.
  void BindRows(const float* rows, float* row_grads, int64_t n_rows, const float* slot_rows);

  // logits[e] = deep[e] + the wide weights of example e, added in slot order
  // after the deep output. A slot outside the bound rows reads nothing.
  void AddTo(const float* deep, int64_t batch, float* logits) const;
  // Fills row_grads whole: each row's sum of dlogits over the slots reading
  // it (in example order). No-op when no row_grads were bound.
  void Backward(const float* dlogits, int64_t batch) const;

 private:
  // The row slot value v reads, or -1 for none.
  int64_t RowOf(float v) const;

  const int64_t slots_;
  const float* rows_ = nullptr;       // [n_rows_], borrowed
  float* row_grads_ = nullptr;        // [n_rows_], borrowed; null when not training
  const float* slot_rows_ = nullptr;  // [batch, slots_], borrowed
  int64_t n_rows_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_MODELS_WIDE_PART_H_
