// Which values of a model's input examples are ids into its first layer's
// table, and which row of that table each id reads: the one description the
// model's sparse machinery (Model::SparseRowsOf, touched_runs) and input
// checks (Model::ValidateInputValues) share, for an Embedding (every value
// an id into one table) and a ColumnEmbedding (numeric values first, then
// one id per categorical column, each column its own table, the tables laid
// one after another in one tensor).
//
// Issue 16 (64-bit hashed ids, bags of ids over server-side tables) would
// add a layout whose RowOf hashes: callers only see rows of the whole table.
//
// A value type; const methods are safe from several threads.
#ifndef TESSERA_MODELS_ID_LAYOUT_H_
#define TESSERA_MODELS_ID_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace tessera {

class IdLayout {
 public:
  // Every one of `features` values of an example is an id into one table of `rows` rows.
  static IdLayout Shared(int64_t features, int64_t rows);
  // The first `numeric` values of an example are not ids; then one id per
  // column c, into its own table of rows[c] rows, which starts at row
  // rows[0] + ... + rows[c - 1] of the whole table.
  static IdLayout Columns(int64_t numeric, std::vector<int64_t> rows);

  int64_t features() const { return features_; }  // values per example
  int64_t numeric() const { return numeric_; }    // of them, not ids (first)
  int64_t total_rows() const { return offsets_.back(); }
  // Each table's first row in the whole table, then total_rows().
  const std::vector<int64_t>& offsets() const { return offsets_; }

  // The row of the whole table that value `i` of an example (i >= numeric())
  // reads when it holds `value`; -1 when value is not an id of its table
  // (EmbeddingId: the nearest integer, in [0, rows)).
  int64_t RowOf(int64_t i, float value) const;
  // The sorted distinct rows a batch x[batch, features()] reads (invalid ids left out).
  std::vector<int64_t> RowsOf(const float* x, int64_t batch) const;
  // Checks n values of examples laid out back to back: each finite, and
  // each id an id of its table. InvalidArgument naming the first bad one.
  Status Validate(const float* values, int64_t n) const;

 private:
  IdLayout(bool shared, int64_t features, int64_t numeric, std::vector<int64_t> offsets)
      : shared_(shared), features_(features), numeric_(numeric), offsets_(std::move(offsets)) {}
  int64_t ColumnOf(int64_t i) const { return shared_ ? 0 : i - numeric_; }

  bool shared_;
  int64_t features_, numeric_;
  std::vector<int64_t> offsets_;  // each table's first row, then the total
};

}  // namespace tessera

#endif  // TESSERA_MODELS_ID_LAYOUT_H_
