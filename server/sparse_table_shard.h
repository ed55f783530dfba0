// SparseTableShard: the rows of one sparse table (model.sparse_table, issue
// 16) that one server holds — the ids ServerOfId gives it — and how pushes
// become optimizer steps of them. No sockets here, so the aggregation rules
// are testable on their own; the server's SPARSE_PUSH and SPARSE_PULL come
// here.
//
// A push is one worker's gradient rows for one step: the distinct ids it
// touched that live on this server, strictly increasing, and a row of `dim`
// floats per id, summed over `examples` examples. Work is proportional to
// the rows pushed, never to the table.
//
// BSP: the table's pushes for its current version are held until every
// taking-part worker's has come (an empty push counts), then, id by id in
// increasing order, the rows of the ranks that touched the id are summed in
// rank order (never arrival order: runs are bitwise reproducible), scaled
// by 1 / (the step's examples) — as KvShard does a dense slice — and the row
// is stepped once by the table's SparseOptimizer. Rows no push touched keep
// their values and state exactly. SSP with staleness s: the same steps, but
// the pushes of the s steps after the version are held too (a window of
// s + 1 steps), and each step is applied, in order, once it is complete and
// the steps before it are; s = 0 is BSP. ASP: each push is stepped on
// arrival.
//
// The rows live in a SparseRowStore (memory up to a budget, then the
// server's own RocksDB), created on first touch from (seed, table, id).
//
// Not thread-safe: the server's event-loop thread owns it.
#ifndef TESSERA_SERVER_SPARSE_TABLE_SHARD_H_
#define TESSERA_SERVER_SPARSE_TABLE_SHARD_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/job.pb.h"
#include "server/sparse_optimizer.h"
#include "server/sparse_table_file.h"
#include "server/sparse_row_store.h"

namespace tessera {

struct SparseTableShardOptions {
  proto::SparseTableSpec spec;
  int table = 0;        // index in model.sparse_table (mixed into the ids' hash and init)
  uint64_t seed = 0;    // the job's
  int server_rank = 0;  // this server, of `servers`
  int servers = 1;
  proto::Consistency consistency = proto::BSP;
  int workers = 1;
  // SSP's bound s (JobSpec.staleness); 0 for BSP and ASP.
  int staleness = 0;
  // Where the rows beyond spec.memory_budget_mb go (a directory this table
  // alone uses); required with a budget.
  std::string spill_dir;
  // The table's version at the start (a resumed job's step).
  int64_t first_version = 0;
  // Tests only: SparseRowStoreOptions::test_spill_writes_before_full.
  int64_t test_spill_writes_before_full = -1;
};

// The optimizer a SparseOptimizerSpec names. InvalidArgument for a
// hyperparameter out of range.
StatusOr<std::unique_ptr<SparseOptimizer>> CreateSparseOptimizer(const proto::SparseOptimizerSpec& spec);

class SparseTableShard {
 public:
  // InvalidArgument for a bad spec; Unavailable when the spill database
  // cannot be made.
  static StatusOr<std::unique_ptr<SparseTableShard>> Create(const SparseTableShardOptions& options);

  int dim() const { return options_.spec.dim(); }
  const std::string& name() const { return options_.spec.name(); }
  // Steps applied (BSP: the global step the table has reached).
  int64_t version() const { return version_; }

  // Worker `rank`'s push for `step`: `ids` (strictly increasing, each one
  // this server holds) and grads[ids.size() * dim]. Returns true when a step
  // was applied (BSP: this was the last taking-part rank's push; ASP:
  // always). It applies at most the one step at version(): under SSP the
  // held steps after it may be complete too, and ApplyNextStep applies them
  // one by one (a checkpoint cut is captured between steps). InvalidArgument,
  // nothing changed, for a rank out of range or not taking part, ids out of
  // order or of another server, a grads size that does not match, a
  // non-finite gradient, under BSP a step other than version() (SSP: outside
  // version() .. version() + staleness) or a second push of one rank for one
  // step. Errors of the row store (DataLoss, Unavailable) leave the step half
  // applied: the server must stop.
  StatusOr<bool> AddPush(int rank, int64_t step, int64_t examples, std::span<const uint64_t> ids,
                         std::span<const float> grads);

  // BSP/SSP: applies the held step at version() when it is complete; returns
  // whether it did. Errors as AddPush's of the row store.
  StatusOr<bool> ApplyNextStep();

  // OK when `ids` are strictly increasing and each one this server's.
  Status CheckIds(std::span<const uint64_t> ids) const;

  // The values of the rows of `ids` (strictly increasing, this server's),
  // ids.size() * dim floats; an id without a row reads as the values it
  // would be created with (not admitted yet: zeros). InvalidArgument for ids
  // out of order or of another server.
  StatusOr<std::vector<float>> ReadRows(std::span<const uint64_t> ids);

  // The worker ranks taking part from now on. Pushes from other ranks are
  // refused; a rank that leaves keeps the push that already arrived. When
  // the held step waited only for ranks that left it is applied now (only
  // that one, as AddPush); returns whether it was. InvalidArgument for a rank outside [0, workers).
  StatusOr<bool> SetActive(const std::vector<int>& ranks);

  // BSP: the version moves up to `version` without a step (steps no push
  // reached). FailedPrecondition while pushes of a step below it are held.
  Status AdvanceTo(int64_t version);

  // Checkpoints. Snapshot: every row (expired ones dropped first), to write
  // on another thread while training goes on, labelled `step` (the cut's:
  // the table's version, or under ASP the cut it is taken for), with the
  // admission sightings. Copies the rows in memory (at most the budget); the
  // rest are read from disk as they were (SparseRowStore::Snapshot). The
  // snapshot carries the store's latest step and the ids expired since the
  // last one (an incremental file's tombstones).
  StatusOr<SparseTableSnapshot> Snapshot(int64_t step);
  // Restoring: one row of a checkpoint's file, kept when this server holds
  // its id (returns whether it did); and the sightings.
  StatusOr<bool> RestoreRow(uint64_t id, const float* row, int64_t last_step);
  Status RestoreAdmission(const std::string& bytes);
  int state_floats() const { return optimizer_->state_per_value() * dim(); }
  int optimizer_type() const { return static_cast<int>(options_.spec.optimizer().type()); }
  int table_index() const { return options_.table; }

  SparseRowStoreCounts counts() const { return store_->counts(); }
  const SparseRowStore& store() const { return *store_; }

 private:
  struct Pending {
    bool in = false;
    int64_t examples = 0;
    std::vector<uint64_t> ids;
    std::vector<float> grads;
  };

  SparseTableShard(SparseTableShardOptions options, std::unique_ptr<SparseOptimizer> optimizer,
                   std::unique_ptr<SparseRowStore> store);
  // The held pushes of `step` by rank. REQUIRES: step in the window.
  std::vector<Pending>& PendingOf(int64_t step) { return window_[step % window_.size()]; }
  const std::vector<Pending>& PendingOf(int64_t step) const { return window_[step % window_.size()]; }
  // The step at version() is held from some rank and from every taking-part one.
  bool Complete() const;
  // Steps every id the held pushes of the step at version() touched, merging them in rank order.
  Status ApplyPending();
  // Steps each row of ids by grads * scale.
  Status ApplyRows(std::span<const uint64_t> ids, std::span<const float> grads, float scale);
  // Steps the row of `id` by grad[dim] * scale (the mean gradient).
  Status StepRow(uint64_t id, const float* grad, float scale);

  SparseTableShardOptions options_;
  std::unique_ptr<SparseOptimizer> optimizer_;
  std::unique_ptr<SparseRowStore> store_;
  int64_t version_ = 0;
  std::vector<bool> active_;
  // BSP/SSP: the pushes held for steps version_ .. version_ + staleness by
  // rank, step t's at window_[t % window_.size()].
  std::vector<std::vector<Pending>> window_;
  std::vector<float> mean_;       // StepRow's mean gradient
};

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_TABLE_SHARD_H_
