// SparseTables: a server's part of every sparse table of the job
// (model.sparse_table; one SparseTableShard each) and the wire side of them:
// SPARSE_PUSH is checked and handed to the table, SPARSE_PULL is answered
// with SPARSE_ROWS once the table has reached the version asked for (held
// until then, as the dense PULL is). docs/PROTOCOL.md, "Sparse tables".
//
// Tables with a memory budget spill rows into a directory of their own
// under the server's spill directory (`tessera server --spill-dir`; local
// mode gives RUN/spill/server-N; made under $TMPDIR when none is given),
// removed when this object goes.
//
// Not thread-safe: the server's event-loop thread owns it.
#ifndef TESSERA_SERVER_SPARSE_TABLES_H_
#define TESSERA_SERVER_SPARSE_TABLES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/status.h"
#include "proto/wire.pb.h"
#include "server/sparse_table_shard.h"

namespace tessera {

class SparseTables {
 public:
  // Sends a reply (SPARSE_ROWS or ERROR) to a worker.
  using Reply = std::function<void(const std::string& peer, const proto::Header& header, std::vector<OutFrame> frames)>;

  // This server's part of each of map.spec().model().sparse_table(), at
  // version `first_version`. `spill_dir`: where budgeted tables spill (empty:
  // a new directory under $TMPDIR). `test_spill_writes_before_full`: tests
  // only (SparseRowStoreOptions'). InvalidArgument for a bad table spec;
  // Unavailable when a spill directory cannot be made.
  static StatusOr<std::unique_ptr<SparseTables>> Create(const proto::ClusterMap& map, int server_rank,
                                                        int64_t first_version, const std::string& spill_dir,
                                                        int64_t test_spill_writes_before_full = -1);
  ~SparseTables();

  bool empty() const { return tables_.empty(); }
  int size() const { return static_cast<int>(tables_.size()); }
  SparseTableShard& table(int i) { return *tables_[i]; }

  // A SPARSE_PUSH (checked by DecodeMessage). Returns whether it completed a
  // step; InvalidArgument for a refused push (the caller answers ERROR);
  // DataLoss or Unavailable when the row store failed (the server stops).
  StatusOr<bool> Push(const Message& m);
  // A SPARSE_PULL: answered at once when the table is at its step, else held.
  // InvalidArgument for a refused pull.
  Status Pull(Message m, const Reply& reply);
  // Answers the held pulls whose table has reached their step.
  Status AnswerWaiting(const Reply& reply);

  // Membership, as KvShard's: returns whether a held step was applied.
  StatusOr<bool> SetActive(const std::vector<int>& ranks);
  Status AdvanceTo(int64_t version);

  // Checkpoints, as KvShard's cuts: ArmCut(step) arms a cut (replacing an
  // armed one; FailedPrecondition when a table is past `step`); each table
  // is captured the moment it reaches `step` (call Capture after every
  // applied step; under ASP every table is captured at once); CutReady once
  // all are; TakeCut hands the snapshots over and disarms (marked
  // must_be_full when an earlier cut's snapshots were dropped unwritten).
  Status ArmCut(int64_t step, bool asp);
  Status Capture();
  bool CutReady() const;
  std::vector<SparseTableSnapshot> TakeCut();

  // Loads every table's rows from the checkpoint `restore` names: each
  // part's chain of each table is read (ReadCheckpointSparseTable), and the rows whose ids this server
  // holds (of `servers` now: the parts may be of another number) are kept.
  // The admission sightings: this server's part's when the checkpoint had as
  // many servers, else the larger count of every part's. DataLoss naming the
  // file for a missing or bad file, or one of another table shape,
  // optimizer or step.
  Status Restore(const proto::Restore& restore);

 private:
  struct Waiting {
    std::string peer;
    int table = 0;
    int64_t step = 0;
    std::vector<uint64_t> ids;
  };
  SparseTables() = default;
  StatusOr<int> TableOf(const proto::Header& h) const;
  Status Answer(const Waiting& w, const Reply& reply);
  // After a step of table t was applied: captures an armed cut, then applies
  // the table's held steps that are complete (SSP), capturing after each.
  Status ApplyHeldSteps(int t);

  std::vector<std::unique_ptr<SparseTableShard>> tables_;
  std::vector<Waiting> waiting_;
  std::optional<int64_t> armed_step_;
  std::vector<std::optional<SparseTableSnapshot>> cut_;  // by table, while armed
  bool lost_tombstones_ = false;  // a cut's snapshots were dropped since the last TakeCut
  int server_rank_ = 0;
  int servers_ = 1;
  std::vector<std::string> spill_dirs_;  // the tables' spill databases, removed when this goes
  std::string made_spill_dir_;           // removed too; empty when the server was given one
  std::string spill_dir_;                // the server's, removed when empty
};

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_TABLES_H_
