// A batch's rows of a sparse table (issue 16): the sorted distinct 64-bit
// ids its examples' id slots hold, which is what a worker pulls (a row per
// id, each from the server ServerOfId names) and pushes (a gradient row per
// id), and each slot's row among them, written into the slot's place in x
// as a float for the sparse_embedding layer (models/sparse_embedding.h).
//
// Rows are exact as floats: a batch holds far fewer than 2^24 distinct ids
// (MakeSparseBatch refuses more). A value type; functions only: thread-safe.
#ifndef TESSERA_WORKER_SPARSE_BATCH_H_
#define TESSERA_WORKER_SPARSE_BATCH_H_

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace tessera {

// The most distinct ids of one batch: rows up to 2^24 - 1 are exact floats.
inline constexpr int64_t kMaxSparseBatchRows = int64_t{1} << 24;

struct SparseBatch {
  // Sorted ascending, distinct, never kNoSparseId: row r of the batch is
  // the table's row of ids[r].
  std::vector<uint64_t> ids;
};

// The sparse batch of `batch` examples x[batch, numeric + slots] whose id
// slots hold slot_ids[batch * slots] (ExampleReader::ReadWithIds; the slots
// follow the numeric features in each example). Writes each slot's row into
// its place in x, x[e * (numeric + slots) + numeric + s]: the index of its
// id in the result's ids, as a float, or -1 for kNoSparseId (an empty
// slot). InvalidArgument when slot_ids does not hold batch * slots ids, or
// the batch holds kMaxSparseBatchRows distinct ids or more.
StatusOr<SparseBatch> MakeSparseBatch(const std::vector<uint64_t>& slot_ids, int64_t batch, int64_t numeric,
                                      int64_t slots, float* x);

}  // namespace tessera

#endif  // TESSERA_WORKER_SPARSE_BATCH_H_
