// The rows of one sparse table on one server (issue 16): 64-bit ids to rows
// of `dim` values followed by their optimizer state, created when an id is
// first updated (a pull makes none), with values drawn from (seed, table, id) alone — so a row
// starts the same whichever server holds it and whenever it is first seen —
// and kept in memory up to a byte budget. Beyond the budget, the rows used
// least recently (CLOCK: a second chance for a row used since the hand last
// passed) go to the server's own RocksDB, which is a cache of this run, not
// a checkpoint (no write-ahead log, deleted on open), and come back when
// touched again. Rows travel as their exact float bits, so a table of any
// size trains to the same bits under any budget. As Monolith does, a table
// may admit an id only at its Nth update (AdmissionFilter) and drop rows
// not updated for T steps (ExpireRows).
//
// Example (a server's step over the rows a push touched):
//   ASSIGN_OR_RETURN(auto store, SparseRowStore::Open(options));
//   for (uint64_t id : touched) {
//     ASSIGN_OR_RETURN(float* row, store->Row(id, step));  // values, then state
//     if (row == nullptr) continue;                        // not admitted yet
//     optimizer.ApplyRow(step, lr, row, grad_of(id), row + dim, dim);
//   }
//
// Not thread-safe: one thread (a server's step) at a time. Owns its RocksDB.
#ifndef TESSERA_SERVER_SPARSE_ROW_STORE_H_
#define TESSERA_SERVER_SPARSE_ROW_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/sparse_table_spec.h"
#include "core/status.h"
#include "server/admission_filter.h"

namespace rocksdb {
class DB;
class Snapshot;
}  // namespace rocksdb

namespace tessera {

struct SparseRowStoreOptions {
  // Values per row. Required, in [1, 65536].
  int dim = 0;
  // Optimizer state floats after the values (SparseOptimizer::
  // state_per_value() * dim); they start at 0 unless init_state is set.
  int state_floats = 0;
  // A new row's values: uniform in +-init_bound from a generator seeded by
  // (seed, table, id). Default 0: zeros.
  uint64_t seed = 0;
  uint64_t table = 0;
  float init_bound = 0;
  // Fills a new row's state_floats (e.g. SparseOptimizer::InitState); empty:
  // zeros.
  std::function<void(float* state)> init_state;
  // Bytes of rows held in memory (each row counts its floats plus
  // kRowOverheadBytes); 0 (the default): no limit, nothing goes to disk.
  // With a limit, at least one row must fit.
  int64_t memory_budget_bytes = 0;
  // The directory of the RocksDB for rows beyond the budget; required with a
  // budget. Whatever it holds is deleted when the store opens.
  std::string spill_dir;
  // Admission: an id gets its row only at the admit_after-th step that
  // updates it (Row); before that, Row returns nullptr (the step's gradient
  // for it is dropped) and ReadRow a row of zeros. Default 1: every id at
  // once. Sightings are counted by an AdmissionFilter of
  // 2^admission_log2_width counters a row (default 2^20: 8 MiB), never
  // below the truth, so an id may be admitted early, never late.
  uint32_t admit_after = 1;
  int admission_log2_width = 20;
  // Expiry: ExpireRows(step) drops the rows whose last update (Row's step)
  // is more than this many steps before `step`; an id seen again starts
  // afresh. Default 0: rows never expire.
  int64_t expire_after_steps = 0;
  // Tests only: after this many rows written to the spill database, every
  // further write fails as on a full disk (ResourceExhausted), so that a
  // test can fill a disk it does not have. Default -1: never.
  int64_t test_spill_writes_before_full = -1;
};

// What the store has done, for summary.json and the benchmarks.
struct SparseRowStoreCounts {
  int64_t rows = 0;            // rows held now (created less expired)
  int64_t rows_created = 0;    // rows made for ids (again after expiring), restored ones included
  int64_t rows_restored = 0;   // of them, put back from a checkpoint (PutRow)
  int64_t rows_expired = 0;    // rows dropped by ExpireRows
  int64_t sightings_filtered = 0;  // Row calls for ids not yet admitted
  int64_t rows_in_memory = 0;  // rows in memory now (the ids indexed)
  int64_t evictions = 0;       // rows moved out of memory
  int64_t spill_writes = 0;    // of them, written (changed since they were last read back or made)
  int64_t reloads = 0;         // rows read back from disk
};

// Every row of a store at one moment (SparseRowStore::Snapshot), read later
// while the store goes on changing: the rows that were in memory are copied
// (at most the budget's bytes), the rest are read from the spill database
// through a RocksDB snapshot of that moment. Read from one thread at a time;
// holds the database open until it goes.
class SparseRowSnapshot {
 public:
  ~SparseRowSnapshot();
  SparseRowSnapshot(const SparseRowSnapshot&) = delete;
  SparseRowSnapshot& operator=(const SparseRowSnapshot&) = delete;

  int row_floats() const { return row_floats_; }
  // Calls visit(id, row, last_step) for every row, in increasing id order;
  // stops at the first error (visit's, or DataLoss / Unavailable reading
  // the spill database).
  Status ForEachRow(const std::function<Status(uint64_t id, const float* row, int64_t last_step)>& visit) const;

 private:
  friend class SparseRowStore;
  SparseRowSnapshot() = default;

  int row_floats_ = 0;
  std::vector<uint64_t> ids_;  // the rows in memory, sorted
  std::vector<int64_t> last_steps_;
  std::vector<float> rows_;
  std::shared_ptr<rocksdb::DB> spill_;  // null without a budget
  const rocksdb::Snapshot* spill_snapshot_ = nullptr;
  std::string spill_dir_;
};

class SparseRowStore {
 public:
  // What the budget counts per row besides its floats: the index entry and
  // the slot's bookkeeping, about what they take.
  static constexpr int64_t kRowOverheadBytes = kSparseRowOverheadBytes;

  // InvalidArgument for bad options (a budget without spill_dir, or too
  // small for one row); Unavailable when the spill database cannot be made.
  static StatusOr<std::unique_ptr<SparseRowStore>> Open(SparseRowStoreOptions options);
  ~SparseRowStore();
  SparseRowStore(const SparseRowStore&) = delete;
  SparseRowStore& operator=(const SparseRowStore&) = delete;

  // The row of `id`, to change at job step `step`: dim values then
  // state_floats of state; created when new (nullptr while the id is not
  // admitted: admit_after), read back from disk when it was moved there
  // (which may move another row out). Valid until the next call of Row,
  // ReadRow or ExpireRows. DataLoss for a spilled row that does not read
  // back whole; Unavailable (or ResourceExhausted, disk full) when a row
  // cannot be moved to disk.
  StatusOr<float*> Row(uint64_t id, int64_t step);

  // Row, to read only (a pull): it never makes a row. An id without one
  // reads as the row it would start from (its values from (seed, table,
  // id), its state as new), or as zeros while admission has not admitted
  // it; a row read back from disk and only read is not written again when
  // it leaves memory.
  StatusOr<const float*> ReadRow(uint64_t id);

  // Drops every row, in memory or on disk, whose last update was more than
  // expire_after_steps before `step` (none when that is 0); returns how
  // many. Reads the whole spill database: call it when a checkpoint does.
  // The ids dropped are kept for TakeExpiredIds.
  StatusOr<int64_t> ExpireRows(int64_t step);
  // The ids ExpireRows dropped since the last call, increasing (an
  // incremental checkpoint's tombstones).
  std::vector<uint64_t> TakeExpiredIds();

  // The largest step Row was given (or a restored row's): a row updated or
  // made from now on gets a last step at or after it (an incremental
  // checkpoint's rows are those at or after the previous cut's).
  int64_t latest_step() const { return latest_step_; }

  // The sightings counted (to checkpoint with the rows); nullptr without
  // admission.
  const AdmissionFilter* admission() const { return admission_.get(); }

  // Calls visit(id, row, last_step) for every row, in memory or on disk,
  // once each, in no particular order (last_step: the step of its last
  // update); stops at the first error visit returns (or a read error:
  // DataLoss, Unavailable). The rows must not change meanwhile.
  using RowVisitor = std::function<Status(uint64_t id, const float* row, int64_t last_step)>;
  Status ForEachRow(const RowVisitor& visit) const;

  // Every row as it is now, to write out on another thread while training
  // goes on (a checkpoint). Copies the rows in memory only.
  std::shared_ptr<const SparseRowSnapshot> Snapshot() const;

  // Restoring a checkpoint: the row of `id` becomes row[row_floats()], last
  // updated at `last_step`, as if it had always been here (counted as made,
  // no sighting counted). InvalidArgument when `id` has a row in memory
  // (one moved to disk is not looked for).
  Status PutRow(uint64_t id, const float* row, int64_t last_step);
  // Restoring a checkpoint: the sightings counted so far. InvalidArgument
  // without admission or for a filter of another width.
  Status RestoreAdmission(AdmissionFilter filter);

  SparseRowStoreCounts counts() const {
    SparseRowStoreCounts counts = counts_;
    counts.rows_in_memory = static_cast<int64_t>(slot_of_.size());
    return counts;
  }
  int row_floats() const { return row_floats_; }

 private:
  SparseRowStore(SparseRowStoreOptions options, int64_t capacity);
  Status OpenSpill();
  void InitRow(uint64_t id, float* row) const;
  // The slot of `id` in memory, read back when needed; made when `sighting`
  // admits it (or admission is off). -1 when the id has no row.
  StatusOr<int64_t> SlotOf(uint64_t id, bool sighting);
  bool Expired(int64_t last_step, int64_t now) const;
  // A slot for a row coming into memory: a free one, or the CLOCK's victim
  // moved to disk first.
  StatusOr<int64_t> TakeSlot();
  Status Evict(int64_t slot);
  // The row of a spilled id read into `row` (row_floats_ floats, then its
  // last update's step); false when disk has none.
  StatusOr<bool> ReadBack(uint64_t id, std::vector<float>* row, int64_t* last_step) const;
  Status DropSlot(int64_t slot);
  float* SlotRow(int64_t slot) { return arena_[slot / kSlotsPerChunk].data() + (slot % kSlotsPerChunk) * row_floats_; }
  const float* SlotRow(int64_t slot) const {
    return arena_[slot / kSlotsPerChunk].data() + (slot % kSlotsPerChunk) * row_floats_;
  }

  static constexpr int64_t kSlotsPerChunk = 4096;

  SparseRowStoreOptions options_;
  int row_floats_ = 0;
  int64_t capacity_ = 0;  // slots the budget allows; 0: no limit
  // Rows in memory live in slots of chunks (so slots never move as the
  // table grows); slot_id_[s] is the id in slot s.
  std::vector<std::vector<float>> arena_;
  std::vector<uint64_t> slot_id_;
  std::vector<bool> used_since_hand_;  // CLOCK's reference bits
  std::vector<bool> changed_;          // not on disk as it is in memory
  std::vector<int64_t> last_step_;     // the step of the row's last update
  std::vector<int64_t> free_slots_;    // slots of expired rows
  std::vector<float> zeros_;           // what ReadRow gives for an id not admitted
  std::vector<float> new_row_;         // what ReadRow gives for an id without a row (no admission)
  std::vector<float> read_buffer_;     // a spilled row read back, before it has a slot
  int64_t latest_step_ = 0;            // the largest step Row was given
  std::vector<uint64_t> expired_ids_;  // dropped since TakeExpiredIds
  std::unique_ptr<AdmissionFilter> admission_;
  int64_t hand_ = 0;
  std::unordered_map<uint64_t, int64_t> slot_of_;  // the ids in memory
  std::shared_ptr<rocksdb::DB> spill_;  // shared with snapshots being written
  SparseRowStoreCounts counts_;
};

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_ROW_STORE_H_
