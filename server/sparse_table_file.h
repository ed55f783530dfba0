// A sparse table's rows in a checkpoint (issue 16): one file per table in
// each server's part, `server-R/sparse-T.rows` (T the table's index in
// model.sparse_table), written beside the part's RocksDB and listed with its
// SHA-256 among the part's files like every other. docs/FORMATS.md,
// "Sparse table files", is the contract:
//
//   "TSPT", uint32 version (1)
//   uint32 name bytes, the table's name
//   int32 dim, int32 state floats per row, int32 optimizer type (SparseOptimizerSpec.Type)
//   int64 step: the cut's (the table's version)
//   uint32 bytes, the server's admission sightings (AdmissionFilter::Serialize; 0: none)
//   uint64 count, then count rows: uint64 id (strictly increasing), int64 last
//     update's step, float32 values[dim] then state[state floats]
//
// all little-endian. Reading checks every length against the file's size and
// the ids' order before it hands out a row, so a bad file is DataLoss naming
// it, never a crash or a partial table.
#ifndef TESSERA_SERVER_SPARSE_TABLE_FILE_H_
#define TESSERA_SERVER_SPARSE_TABLE_FILE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/wire.pb.h"

namespace tessera {

// Visits rows: (id, values then state, the step of the row's last update).
using SparseRowVisitor = std::function<Status(uint64_t id, const float* row, int64_t last_step)>;

// A table's rows on one server at a cut.
struct SparseTableSnapshot {
  int table = 0;  // index in model.sparse_table
  std::string name;
  int dim = 0;
  int state_floats = 0;
  int optimizer_type = 0;
  int64_t step = 0;
  std::string admission;  // AdmissionFilter::Serialize(), or empty
  // Calls its visitor for every row in increasing id order (e.g. a
  // SparseRowSnapshot's ForEachRow), on the writer's thread.
  std::function<Status(const SparseRowVisitor&)> for_each_row;
};

// The file name of table `table` in a part: "sparse-T.rows".
std::string SparseTableFileName(int table);

// Writes `snapshot` to `path` (a new file), its rows streamed (memory holds
// one), synced; returns the rows written. Unavailable on an I/O error (disk
// full included); InvalidArgument when the rows do not come in increasing id
// order.
StatusOr<int64_t> WriteSparseTableFile(const std::string& path, const SparseTableSnapshot& snapshot);

// The header of a table file, and each row in order through `visit`
// (id, values and state, last step), stopping at the first error visit
// returns. The rows are read a block at a time (memory holds a block, not
// the table). DataLoss naming `path` for a file that is not whole and
// well-formed (checked before the first row is visited: sizes; while
// reading: the ids' order); NotFound when there is none.
struct SparseTableFileHeader {
  std::string name;
  int dim = 0, state_floats = 0, optimizer_type = 0;
  int64_t step = 0;
  std::string admission;
  uint64_t count = 0;
};
StatusOr<SparseTableFileHeader> ReadSparseTableFile(const std::string& path, const SparseRowVisitor& visit);

// The rows of table `table` in the checkpoint part directory `part_dir` (a
// `server-R` directory) as of that cut, chain applied, in increasing id
// order. Readers of a checkpoint's tables (tessera export) call only this,
// never the file itself, so that how a part stores its rows may change.
// Errors as ReadSparseTableFile's.
StatusOr<SparseTableFileHeader> ReadCheckpointSparseTable(const std::string& part_dir, int table,
                                                          const SparseRowVisitor& visit);

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_TABLE_FILE_H_
