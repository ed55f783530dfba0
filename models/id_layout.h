// Which values of a model's input examples are ids into its first layer's
// table, and which row of that table each id reads: the one description the
// model's sparse machinery (Model::SparseRowsOf, touched_runs) and input
// checks (Model::ValidateInputValues) share, for an Embedding (every value
// an id into one table) and a ColumnEmbedding (numeric values first, then
// one id per categorical column, each column its own table, the tables laid
// one after another in one tensor), and a SparseLinear (an example is
// (index, value) pairs: the indexes are ids into one table, the values
// weights; a padding pair has index -1).
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
  // An example is `pairs` (index, value) pairs, back to back: each index an
  // id into one table of `rows` rows, or -1 (a padding pair, which reads no
  // row); each value any finite number.
  static IdLayout Pairs(int64_t pairs, int64_t rows);

  int64_t features() const { return features_; }  // values per example
  int64_t numeric() const { return numeric_; }    // of them, not ids (first); 0 for Pairs
  int64_t total_rows() const { return offsets_.back(); }
  // Each table's first row in the whole table, then total_rows().
  const std::vector<int64_t>& offsets() const { return offsets_; }

  // The row of the whole table that value `i` of an example (i >= numeric())
  // reads when it holds `value`; -1 when value is not an id of its table
  // (EmbeddingId: the nearest integer, in [0, rows)), or when value `i` is
  // not an id (a pair's value).
  int64_t RowOf(int64_t i, float value) const;
  // The sorted distinct rows a batch x[batch, features()] reads (invalid ids left out).
  std::vector<int64_t> RowsOf(const float* x, int64_t batch) const;
  // Checks n values of examples laid out back to back: each finite, and
  // each id an id of its table. InvalidArgument naming the first bad one.
  Status Validate(const float* values, int64_t n) const;

 private:
  enum class Kind { kShared, kColumns, kPairs };
  IdLayout(Kind kind, int64_t features, int64_t numeric, std::vector<int64_t> offsets)
      : kind_(kind), features_(features), numeric_(numeric), offsets_(std::move(offsets)) {}
  int64_t ColumnOf(int64_t i) const { return kind_ == Kind::kColumns ? i - numeric_ : 0; }
  // Value i of an example is an id (not a numeric feature, nor a pair's value).
  bool IsId(int64_t i) const { return kind_ == Kind::kPairs ? i % 2 == 0 : i >= numeric_; }
  // The message for value `v` at place i, which is not an id of its table.
  Status BadId(int64_t i, float v) const;

  Kind kind_;
  int64_t features_, numeric_;
  std::vector<int64_t> offsets_;  // each table's first row, then the total
};

}  // namespace tessera

#endif  // TESSERA_MODELS_ID_LAYOUT_H_
