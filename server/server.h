// The parameter server role: registers with the scheduler, receives the
// cluster map (its key ranges), then serves workers' PUSH and PULL requests
// on its own ROUTER socket until the scheduler says SHUTDOWN.
//
// Single-threaded event loop; Run() blocks.
#ifndef TESSERA_SERVER_SERVER_H_
#define TESSERA_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/heartbeat.h"
#include "core/status.h"
#include "core/drop_log.h"
#include "core/transport.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "server/slice_store.h"
#include "server/sparse_tables.h"

namespace tessera {

struct ServerOptions {
  // Scheduler address, "HOST:PORT". Required.
  std::string scheduler;
  // The cluster's secret, sent in REGISTER (the scheduler's --cluster_token_file). Default none.
  std::string cluster_token;
  // With CURVE: the scheduler's public key, to connect to it, and this
  // server's own, which workers get in the cluster map. Default none.
  std::string scheduler_public_key;
  std::string curve_public_key;
  // Where sparse tables with a memory budget keep the rows beyond it (the
  // server's own disk). Default: a new directory under $TMPDIR, removed at
  // exit.
  std::string spill_dir;
  // Address to bind and advertise to workers. Default 127.0.0.1.
  std::string host = "127.0.0.1";
  // Port to bind; 0 lets the OS pick. Default 0.
  int port = 0;
  // Give up when the scheduler has not sent the cluster map by then. Default 120 s.
  int register_timeout_s = 120;
  // Holds each checkpoint part this long after its files are written, before
  // the server reports it, so a test can catch a checkpoint being written.
  // `tessera server` sets it from its hidden flag
  // --test-checkpoint-write-delay-ms (tests only). Default 0.
  std::chrono::milliseconds checkpoint_report_delay{0};
  // After this many rows spilled, a table's spill writes fail as on a full
  // disk, so a test can fill a disk it does not have. `tessera server` sets
  // it from its hidden flag --test-spill-writes-before-full (tests only).
  // Default -1: never.
  int64_t test_spill_writes_before_full = -1;
};

// A checkpoint part's sparse table files (Server's, and its writes').
struct CheckpointTableFiles {
  bool ok = false;                                     // every one was written
  std::map<std::string, proto::FileChecksum> by_path;  // each file's, by its path
};

class Server {
 public:
  // *transport and *stop must outlive this. Setting *stop ends Run().
  Server(Transport* transport, ServerOptions options, const std::atomic<bool>* stop)
      : transport_(transport), options_(std::move(options)), stop_(stop) {}

  // OK after a SHUTDOWN without reason. Unavailable when the scheduler cannot
  // be reached, Aborted on a SHUTDOWN with a reason or a stop request.
  Status Run();

 private:
  // Sends REGISTER; the cluster map is due within register_timeout_s.
  Status Register();
  // ROLLBACK: finishes checkpoint writes, drops the cluster's state and registers again.
  Status RollBack(const std::string& reason);
  Status HandleScheduler(Message m);
  void HandleWorker(Message m);
  struct Waiting;
  // PARAMS for a request whose slices have reached its version.
  void ReplyParams(const Waiting& w);
  void ReplyError(const std::string& peer, const std::string& message);
  // SPARSE_PUSH and SPARSE_PULL (server/sparse_tables.h).
  void HandleSparse(Message m);
  // Sends a sparse table's reply to a worker, from this server.
  void SendToWorker(const std::string& peer, proto::Header header, std::vector<OutFrame> frames);
  void AnswerWaiting();
  // MEMBERSHIP: the workers taking part change; answers MEMBERSHIP_ACK.
  Status ChangeMembership(const proto::Membership& membership);
  // Loads the slices from the checkpoint the cluster map names.
  Status RestoreFrom(const proto::Restore& restore);
  // Arms a cut for a CHECKPOINT request (or refuses it).
  void StartCheckpoint(const proto::Checkpoint& request);
  // Once the armed cut is complete: starts its write in the background and
  // tells the scheduler the snapshot is taken.
  void MaybeStartWrite();
  // Sends CHECKPOINT_DONE for every background write that has finished
  // (with `wait`, waits for all of them first).
  Status FinishWrites(bool wait);

  Transport* transport_;
  ServerOptions options_;
  const std::atomic<bool>* stop_;
  std::string scheduler_endpoint_;
  std::unique_ptr<HeartbeatSender> heartbeat_;  // from the cluster map on
  std::unique_ptr<Socket> scheduler_;
  std::unique_ptr<Socket> workers_;
  int rank_ = -1;
  uint64_t job_id_ = 0;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<KvShard> shard_;
  // This server's rows of the job's sparse tables (none: empty).
  std::unique_ptr<SparseTables> tables_;
  bool asp_ = false;  // the job's consistency is ASP
  int64_t staleness_ = 0;  // SSP's bound (JobSpec.staleness); 0 otherwise
  // A failure that ends Run(): a sparse table's row store could not read or
  // write its rows (the step would be half applied).
  Status fatal_ = OkStatus();
  // Spare buffers being made on another thread for the steps after a
  // snapshot (KvShard::MakeSpares), when the job checkpoints.
  std::future<KvShard::Spares> spares_;
  // Requests waiting for slices to reach a version: pushes that want the
  // parameters after their step, and PULLs for a version not reached yet.
  struct Waiting {
    std::string peer;
    std::vector<int> slices;  // empty: all
    int64_t version = 0;
    // A sparse PULL: per slice, the runs (relative to it) to answer with;
    // empty: the whole slices.
    std::vector<std::vector<KeyRange>> runs;
  };
  std::vector<Waiting> waiting_;
  // The armed cut's request, until its snapshot is complete.
  std::optional<proto::Checkpoint> armed_;
  // Checkpoint parts being written in the background.
  struct PendingWrite {
    int64_t step = 0;
    std::string dir_name;  // relative to the checkpoint directory
    std::chrono::steady_clock::time_point start;
    std::future<StatusOr<StoreWriteResult>> result;
  };
  std::vector<PendingWrite> writes_;
  // The sparse table files of the newest part this server wrote or is
  // writing: the next part's incremental files link their chain to them.
  struct PreviousTableFiles {
    std::string part_dir;  // empty: none (the next part's files are full)
    std::shared_future<CheckpointTableFiles> written;
  };
  PreviousTableFiles previous_table_files_;
  int sparse_full_every_ = 1;  // checkpoint.sparse_full_every
  bool shutdown_ = false;
  std::string shutdown_reason_;
  std::chrono::steady_clock::time_point map_deadline_;
  bool rolled_back_ = false;  // since a ROLLBACK: requests without a shard are dropped
  // The lines of dropped messages: junk from anyone must not fill the disk.
  DropLog drops_{SystemClock()};
};

}  // namespace tessera

#endif  // TESSERA_SERVER_SERVER_H_
