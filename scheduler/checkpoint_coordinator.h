// The checkpoints of a running job, as a state machine without sockets or
// clocks: the scheduler tells it what happened (an epoch ended, the workers
// got further, a stop came, a server took its snapshot or wrote its part,
// time passed), with the time and where the job is, and gets back what to
// do (Actions): ask every server for a cut, let the workers go, go on with
// the next phase, record metrics lines. It writes the manifest itself when
// every part is in (the commit), then `latest`, then prunes.
//
// One checkpoint at a time. An epoch-end cut due while one is still being
// written waits for it (so does the job, at that epoch's end); the final
// cut waits too, while the job goes on with its final evaluation. A cut
// inside an epoch that a server has passed already moves further ahead, and
// keeps the workers' loss sums up to it (EpochLossLedger): it commits, and at
// a stop lets the workers go, only once every worker has reported past it. A
// cut whose snapshots (30 s) or writes (10 min) are overdue is abandoned.
// A failed or abandoned final checkpoint fails the job (error()).
// Not thread-safe: the scheduler's event loop owns it.
#ifndef TESSERA_SCHEDULER_CHECKPOINT_COORDINATOR_H_
#define TESSERA_SCHEDULER_CHECKPOINT_COORDINATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/file_system.h"
#include "core/json.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/epoch_loss_ledger.h"
#include "scheduler/job_shape.h"
#include "scheduler/next_phase.h"

namespace tessera {

class CheckpointCoordinator {
 public:
  // Where the job is, as a cut needs it.
  struct Position {
    int epoch = 0;  // the training epoch running or just ended (0-based)
    int64_t epoch_first_step = 0, epoch_end_step = 0;  // its global steps
    int64_t global_step = 0;      // steps done (at an epoch's end: its last)
    int64_t latest_step = 0;      // the furthest step a worker has reported
    double steps_per_second = 0;  // from the workers' progress reports
    std::string digest;           // params_sha256 the reporting worker gave at global_step ("": none)
  };

  // What the scheduler does after an event, in this order (a committed
  // checkpoint's line is recorded before a request that may fail).
  struct Actions {
    bool release_workers = false;              // the stop's cut is taken: the workers may go
    std::vector<JsonObject> lines;             // for metrics.jsonl
    std::optional<proto::Checkpoint> request;  // send CHECKPOINT with this body to every server
    std::optional<NextPhase> go_on;            // the phase to go on with now
  };

  // `run_dir`: where checkpoints go (none when empty). The checkpoint
  // directories are made, and the manifest and `latest` written, through
  // `*fs` (removing stale directories and pruning old checkpoints do not go
  // through it yet). `*losses`: the running training epoch's loss sums, by
  // step and worker, that a cut inside it records. `*shape`, `*losses` and
  // `*fs` must outlive this.
  CheckpointCoordinator(const proto::JobSpec& spec, const std::string& run_dir, const JobShape* shape,
                        const EpochLossLedger* losses, FileSystem* fs = LocalFileSystem());

  // The job starts (or resumes) at `global_step`: every_seconds counts from `now`.
  void Start(int64_t global_step, Clock::TimePoint now);
  // Whether a checkpoint is due after `epochs_done` epochs.
  bool Due(int epochs_done) const;
  // An epoch ended with a checkpoint due: the job goes on with `next` once
  // its snapshots are taken (at once when it is skipped or deferred past).
  StatusOr<Actions> EpochEnded(int epochs_done, const Position& at, const NextPhase& next, Clock::TimePoint now);
  // Progress inside a BSP training epoch (`can_cut`: none inside an epoch
  // that lost a worker): a cut every N steps or T seconds.
  StatusOr<Actions> Progressed(const Position& at, bool can_cut, Clock::TimePoint now);
  // A stop came: a final cut a little ahead of the workers (`can_cut`), or
  // the one in progress finishes. busy() tells when nothing is left.
  StatusOr<Actions> Stop(const Position& at, bool can_cut, Clock::TimePoint now);
  // CHECKPOINT_SNAPSHOT and CHECKPOINT_DONE from server `server`.
  StatusOr<Actions> Snapshot(int server, const proto::CheckpointDone& ack, const Position& at, Clock::TimePoint now);
  StatusOr<Actions> PartWritten(int server, const proto::CheckpointDone& done, const Position& at,
                                Clock::TimePoint now);
  // The workers reported progress (now in *losses): a cut inside the epoch
  // that waited for their loss sums up to it may let the workers go (at a
  // stop) and commit.
  StatusOr<Actions> WorkersReported(const Position& at, Clock::TimePoint now);
  // Time passed: an overdue checkpoint is abandoned.
  StatusOr<Actions> Tick(const Position& at, Clock::TimePoint now);
  // Worker `rank` was lost inside the training epoch: a cut inside it is
  // given up (once every server has answered, its parts go).
  StatusOr<Actions> WorkerLostInEpoch(int rank, const Position& at, Clock::TimePoint now);

  // A checkpoint is being taken.
  bool busy() const { return pending_.has_value(); }
  // Why the job's final checkpoint failed; "" when it did not.
  const std::string& error() const { return error_; }
  // Its kind: RESOURCE_EXHAUSTED when a server's disk was full (no restart
  // can fix that), else UNAVAILABLE.
  StatusCode error_code() const { return error_code_; }
  // What a stop left behind ("checkpoint DIR committed"; "" for nothing).
  const std::string& stop_note() const { return stop_note_; }

 private:
  struct Pending {
    int64_t step = 0;
    int epochs_done = 0;           // the cursor: epoch to run next...
    int64_t steps_into_epoch = 0;  // ...and steps of it already done
    // The training epoch the cut was made in (moved cuts stay in it).
    int epoch = 0;
    int64_t epoch_first_step = 0, epoch_end_step = 0;
    std::string name, dir;
    int retries = 0;
    std::string params_sha256;
    int snapshots = 0;
    std::optional<NextPhase> then;  // the phase to go on with once every snapshot is taken
    std::vector<std::optional<proto::CheckpointDone>> parts;  // by server rank
    int parts_done = 0;
    std::string error;
    StatusCode error_code = StatusCode::kUnavailable;  // a server's, with its error
    Clock::TimePoint start;  // of this request (moved cuts restart it)
    // A cut inside an epoch: the workers' loss sums up to it, once every
    // worker has reported past it (none when they can never be known).
    bool loss_settled = false;
    std::optional<std::vector<LossSums>> loss_before_cut;
    bool taken = false;  // every snapshot is in, and so are the loss sums
  };
  // An epoch-end cut due while another is being written.
  struct DeferredEpochCut {
    int epochs_done = 0;
    NextPhase then;
  };

  Status Cut(int64_t step, int cursor_epoch, int64_t steps_into_epoch, const std::optional<NextPhase>& then,
             const Position& at, Clock::TimePoint now, Actions* out);
  Status Request(Clock::TimePoint now, Actions* out);
  // Whether the pending cut has what it needs from the workers: nothing at
  // an epoch's end or once it failed; inside an epoch, their loss sums up to
  // it (taken from *losses_ as soon as every worker has reported past it).
  bool LossSettled();
  // Goes as far as the pending cut allows: once every snapshot is taken and
  // the loss sums are settled, the workers may go at a stop; once every part
  // is written too, it commits.
  Status Advance(const Position& at, Clock::TimePoint now, Actions* out);
  // Steps a cut must lie ahead of the latest reported step, so no server
  // has passed it when the request arrives.
  static int64_t CutLead(const Position& at);
  // The line (logged too) of an every_steps cut due at `due` and not taken.
  JsonObject SkippedLine(int64_t due, const Position& at, const std::string& reason);
  // The metrics line of a checkpoint that failed.
  static JsonObject FailedLine(const Pending& p, const std::string& reason);
  // A checkpoint failed after every server answered: removes its directory
  // and records the line.
  void Discard(const Pending& p, const std::string& reason, Actions* out);
  // Commits the pending checkpoint (every part in), then takes a deferred one.
  Status Commit(const Position& at, Clock::TimePoint now, Actions* out);
  Status CommitPending(Clock::TimePoint now, Actions* out);
  Status TakeDeferred(const Position& at, Clock::TimePoint now, Actions* out);

  const proto::JobSpec spec_;
  const std::string run_dir_;  // absolute
  const JobShape* shape_;
  const EpochLossLedger* losses_;
  FileSystem* const fs_;
  const int servers_;
  std::optional<Pending> pending_;
  std::optional<DeferredEpochCut> deferred_epoch_cut_;
  bool deferred_final_ = false;  // the final cut waits for the one in progress
  bool stopping_ = false;
  std::string error_, stop_note_;
  StatusCode error_code_ = StatusCode::kUnavailable;
  int64_t next_step_cut_ = 0;              // every_steps: the next multiple to cut at
  Clock::TimePoint last_cut_time_;         // every_seconds
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_CHECKPOINT_COORDINATOR_H_
