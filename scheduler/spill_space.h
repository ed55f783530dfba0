// Room on disk for a job's sparse tables (issue 16), checked before
// training: a table with a memory budget keeps the rows beyond it in each
// server's spill database, and a job whose rows cannot fit there would fail
// hours in. The rule (docs/ARCHITECTURE.md, "Sparse tables"):
//
//   rows  = the training files' distinct ids (DistinctCounter's estimate),
//           plus 3 standard errors of it: about the most rows training
//           creates (ids seen only in the test files are read, never made);
//   bytes = rows x SparseRowBytes of the table the sparse_embedding reads,
//           when that table has a memory budget (else nothing spills).
//
// Every row may be on disk at once (a row read back stays in the database
// until it is written again), so the whole table must fit, and a local
// job's servers all spill under RUN/spill, one filesystem. The 48 bytes a
// row counts for bookkeeping stand for its key, step and RocksDB's overhead.
// Functions only: thread-safe.
#ifndef TESSERA_SCHEDULER_SPILL_SPACE_H_
#define TESSERA_SCHEDULER_SPILL_SPACE_H_

#include <cstdint>
#include <string>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

// The bytes the rule above gives for `model` and `distinct_ids` (the
// estimate); 0 when the model's sparse_embedding reads a table without a
// budget, or reads none.
int64_t SpillBytesNeeded(const proto::ModelSpec& model, double distinct_ids);

// The bytes an unprivileged writer may still write on the filesystem of
// `dir`, or of its nearest existing parent. Unavailable when statvfs fails.
StatusOr<int64_t> FreeDiskBytes(const std::string& dir);

// InvalidArgument in one line when SpillBytesNeeded is more than
// `free_bytes` (the free space of `dir`, named in the message with the
// table, the rows, the bytes a row and both totals).
Status CheckSpillSpace(const proto::ModelSpec& model, double distinct_ids, const std::string& dir,
                       int64_t free_bytes);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_SPILL_SPACE_H_
