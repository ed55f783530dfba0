// A sparse table's rows in a checkpoint (issue 16): one file per table in
// each server's part, `server-R/sparse-T.rows` (T the table's index in
// model.sparse_table), written beside the part's RocksDB and listed with its
// SHA-256 among the part's files like every other. docs/FORMATS.md,
// "Sparse table files", is the contract:
//
//   "TSPT", uint32 version (2)
//   uint32 name bytes, the table's name
//   int32 dim, int32 state floats per row, int32 optimizer type (SparseOptimizerSpec.Type)
//   int64 step: the cut's; int64 latest step: of any row's update at the cut
//   uint32 kind (0 full, 1 incremental), uint32 chain length (full: 1; else the base's + 1)
//   int64 base step; uint32 bytes, the base's file name; uint32 bytes, the
//     base's checkpoint directory (all three empty / 0 in a full file)
//   uint32 bytes, the server's admission sightings (AdmissionFilter::Serialize; 0: none)
//   uint64 count, then count tombstones: uint64 id (strictly increasing)
//   uint64 count, then count rows: uint64 id (strictly increasing), int64 last
//     update's step, float32 values[dim] then state[state floats]
//
// all little-endian. A full file holds every row of the server's part of the
// table. An incremental one holds the rows changed (or made) since its base,
// the cut before it on the same server, and a tombstone for each row dropped
// (expired) since then; its base lies beside it in the same part directory,
// hard-linked there as `sparse-T.step-S.rows` (S the base's step) with the
// rest of the chain down to a full file, so that deleting an older
// checkpoint never breaks a newer one. Reading checks every length against
// the file's size and the ids' order before it hands out a row, so a bad
// file is DataLoss naming it, never a crash or a partial table.
#ifndef TESSERA_SERVER_SPARSE_TABLE_FILE_H_
#define TESSERA_SERVER_SPARSE_TABLE_FILE_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
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
  // The largest step any row had been updated at when the rows were taken
  // (SparseRowStore::latest_step): a row updated or made after them has a
  // last_step at or after it.
  int64_t latest_step = 0;
  std::string admission;  // AdmissionFilter::Serialize(), or empty
  // The ids whose rows expired since the previous snapshot, increasing (an
  // incremental file's tombstones).
  std::vector<uint64_t> expired;
  // An incremental file cannot be made from this snapshot (the one before it
  // was never written, so its tombstones are lost).
  bool must_be_full = false;
  // Calls its visitor for every row in increasing id order (e.g. a
  // SparseRowSnapshot's ForEachRow), on the writer's thread.
  std::function<Status(const SparseRowVisitor&)> for_each_row;
};

// What an incremental file is written against: its base's header fields.
struct SparseTableFileBase {
  int64_t step = 0;     // the base's cut
  int64_t latest_step = 0;  // rows last updated at or after it are written
  uint32_t chain_length = 1;
  std::string file;        // SparseChainFileName(table, step)
  std::string checkpoint;  // the base's checkpoint directory's name, for people
};

// The file name of table `table` in a part: "sparse-T.rows".
std::string SparseTableFileName(int table);
// The name of an older file of the chain, of the cut at `step`, in a part:
// "sparse-T.step-S.rows".
std::string SparseChainFileName(int table, int64_t step);

// Writes `snapshot` to `path` (a new file), its rows streamed (memory holds
// one), synced; returns the rows written. Without `base` a full file; with
// one an incremental file of the rows whose last_step >= base->latest_step and
// the snapshot's expired ids as tombstones. Unavailable on an I/O error
// (disk full included); InvalidArgument when the rows do not come in
// increasing id order.
StatusOr<int64_t> WriteSparseTableFile(const std::string& path, const SparseTableSnapshot& snapshot,
                                       const SparseTableFileBase* base = nullptr);

struct SparseTableFileHeader {
  std::string name;
  int dim = 0, state_floats = 0, optimizer_type = 0;
  int64_t step = 0, latest_step = 0;
  bool incremental = false;
  uint32_t chain_length = 1;
  int64_t base_step = 0;
  std::string base_file, base_checkpoint;  // empty in a full file
  std::string admission;
  uint64_t tombstones = 0;
  uint64_t count = 0;  // rows (ReadCheckpointSparseTable: the rows visited)
};

// One table file read a row at a time: the header and tombstones when it
// opens (every size checked against the file's), then the rows in order,
// each checked to follow the one before. Not thread-safe; owns the file.
class SparseTableFileReader {
 public:
  // DataLoss naming `path` for a file that is not whole and well-formed;
  // NotFound when there is none; Unavailable when it cannot be opened.
  static StatusOr<std::unique_ptr<SparseTableFileReader>> Open(const std::string& path);
  ~SparseTableFileReader();

  const SparseTableFileHeader& header() const { return header_; }
  const std::vector<uint64_t>& tombstones() const { return tombstones_; }
  // Moves to the next row; false after the last. DataLoss for a short read
  // or an id out of order.
  StatusOr<bool> Next();
  // The current row (after Next returned true).
  uint64_t id() const { return id_; }
  int64_t last_step() const { return last_step_; }
  const float* row() const { return row_; }

 private:
  SparseTableFileReader() = default;
  Status ReadHeader(long file_size);

  std::string path_;
  std::FILE* file_ = nullptr;
  SparseTableFileHeader header_;
  std::vector<uint64_t> tombstones_;
  size_t record_bytes_ = 0;
  std::vector<char> block_;
  size_t in_block_ = 0, next_in_block_ = 0;
  uint64_t read_ = 0;
  uint64_t id_ = 0;
  int64_t last_step_ = 0;
  const float* row_ = nullptr;
  std::vector<float> row_buffer_;  // the current row, aligned
};

// The header of one table file, and each of its rows in order through
// `visit` (tombstones are not applied: see ReadCheckpointSparseTable),
// stopping at the first error visit returns. Memory holds a block of rows,
// not the table. DataLoss naming `path` for a file that is not whole and
// well-formed (sizes checked before the first row is visited; the ids'
// order while reading); NotFound when there is none.
StatusOr<SparseTableFileHeader> ReadSparseTableFile(const std::string& path, const SparseRowVisitor& visit);

// The rows of table `table` in the checkpoint part directory `part_dir` (a
// `server-R` directory) as of that cut, chain applied, in increasing id
// order: for each id the newest file of the chain that has its row or a
// tombstone for it decides. Returns the newest file's header, `count` the
// rows visited. DataLoss naming the file for a missing base (or any file of
// the chain that is bad, or does not match the one after it); NotFound when
// the part has no file of the table. Readers of a checkpoint's tables
// (tessera export, restore) call only this, never a file itself.
StatusOr<SparseTableFileHeader> ReadCheckpointSparseTable(const std::string& part_dir, int table,
                                                          const SparseRowVisitor& visit);

// Every file of the chain of table `table` in `part_dir`, the newest first
// (headers only; each file's sizes checked). DataLoss as above.
StatusOr<std::vector<SparseTableFileHeader>> ReadSparseTableChain(const std::string& part_dir, int table);

// Writes table `snapshot.table`'s file into the new part directory
// `part_dir`: incremental against the same table's file in
// `previous_part_dir` (the part this server wrote at the cut before; empty:
// none) when that file is whole, its chain is shorter than `full_every`, and
// the snapshot allows it; then the previous file and the rest of its chain
// are hard-linked into `part_dir`. Otherwise (or when a link cannot be made)
// a full file. Returns the names now in `part_dir` with, for each linked
// one, the path it was linked from ("" for the file written). Unavailable
// on an I/O error.
struct SparseTableFileWritten {
  std::string name;
  std::string linked_from;
};
StatusOr<std::vector<SparseTableFileWritten>> WriteCheckpointSparseTable(const std::string& part_dir,
                                                                         const SparseTableSnapshot& snapshot,
                                                                         const std::string& previous_part_dir,
                                                                         int full_every);

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_TABLE_FILE_H_
