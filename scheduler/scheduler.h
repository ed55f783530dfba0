// The scheduler role: the one node that knows the whole job. Its parts live
// in files of their own: the job's shape (job_shape.h), where a resumed job
// starts (resume_point.h), who takes part (membership.h), shard leases
// (lease_book.h), checkpoints (checkpoint_coordinator.h), metrics and the
// summary (job_metrics.h). This class wires them to the socket: it sends
// every node the cluster map, runs the phases (training epochs, their
// continuations over lost workers' positions, evaluations) with their
// barriers, and shuts every node down at the end.
//
// Single-threaded event loop; Run() blocks. Its deadlines follow
// SchedulerOptions::clock, so tests run it in one process with a clock they
// move (scheduler_test.cc).
#ifndef TESSERA_SCHEDULER_SCHEDULER_H_
#define TESSERA_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/key_range.h"
#include "core/status.h"
#include "core/transport.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/checkpoint_coordinator.h"
#include "scheduler/job_metrics.h"
#include "scheduler/job_shape.h"
#include "scheduler/lease_book.h"
#include "scheduler/membership.h"
#include "scheduler/next_phase.h"

namespace tessera {

struct SchedulerOptions {
  proto::JobSpec spec;
  // Address to bind. Default 0.0.0.0.
  std::string host = "0.0.0.0";
  // Port to bind; 0 lets the OS pick. Default 7000.
  int port = 7000;
  // When set, the bound port is written here (atomically) once listening.
  std::string port_file;
  // When set, metrics.jsonl and summary.json are written here.
  std::string run_dir;
  // Give up when the cluster is not complete by then. Default 120 s.
  int register_timeout_s = 120;
  // When set, the job continues from this checkpoint directory.
  std::string resume_from;
  // A lost server rolls the job back (Run() returns with rolled_back()) at
  // most this many times; then, or at 0, it ends the job. Default 0.
  int max_rollbacks = 0;
  // Rollbacks before this run (summary.json's server_rollbacks).
  int rollbacks_done = 0;
  // What the deadlines follow (heartbeat, register and checkpoint timeouts,
  // every_seconds cuts, progress lines). Not owned; must outlive the
  // scheduler. Default: the system's steady clock.
  const Clock* clock = SystemClock();
};

class Scheduler {
 public:
  // *transport and *stop must outlive this. Setting *stop aborts the job.
  // With `socket`, the scheduler goes on listening on it (a rollback's next
  // run keeps the address every node knows) instead of binding its own.
  Scheduler(Transport* transport, SchedulerOptions options, const std::atomic<bool>* stop,
            std::unique_ptr<Socket> socket = nullptr);
  ~Scheduler();

  // OK when the job finished and summary.json is written. InvalidArgument /
  // NotFound for a bad spec or data, DeadlineExceeded when nodes did not
  // register in time, Aborted on a stop request. Every registered node is
  // sent SHUTDOWN either way — except after a rollback: a server was lost
  // and rollbacks were left, so every other node (standbys too) was sent
  // ROLLBACK and will register again; Run() returns OK with rolled_back(),
  // and the caller runs the job again from its newest checkpoint on
  // TakeSocket().
  Status Run();
  bool rolled_back() const { return !rollback_reason_.empty(); }
  const std::string& rollback_reason() const { return rollback_reason_; }
  std::unique_ptr<Socket> TakeSocket() { return std::move(socket_); }

 private:
  using Node = Membership::Node;
  Clock::TimePoint Now() const { return options_.clock->Now(); }
  Status Prepare();
  Status Handle(Message m);
  Status HandleRegister(const Message& m);
  Status HandleHeartbeat(const Message& m);
  // Unavailable naming the first server silent for longer than the heartbeat
  // timeout; a silent worker is lost (LoseWorker) and the job goes on.
  Status CheckHeartbeats();
  // A worker is gone: the servers stop waiting for it, its leases from the
  // position it reached go back to the queue, a standby takes its rank.
  Status LoseWorker(const std::string& peer, const std::string& why);
  // A server is gone: with rollbacks left, tells every other node ROLLBACK
  // and ends this run (Aborted, with rollback_reason_ set); else Unavailable.
  Status LoseServer(const Node& node, const std::string& why);
  // Tells every server which worker ranks take part (a membership change,
  // numbered membership_seq_, acknowledged by each server).
  Status SendMembership(const std::vector<bool>& active);
  Status HandleMembershipAck(const Node& node, const proto::MembershipAck& ack);
  // Gives free ranks to standby workers (they get the cluster map now and
  // take part from the next phase).
  Status AssignStandby();
  // Goes on with `next` (a training epoch first re-anchors the learning-rate
  // schedule), as soon as the servers know every live worker and at least one is there.
  Status Proceed(const NextPhase& next);
  Status MaybeRunPendingStart();
  // Starts `next` now.
  Status Begin(const NextPhase& next);
  // When every participant of the phase part has reported or was lost (and
  // its hand-back is known): finishes the part.
  Status MaybeFinishPart();
  Status FinishPart();
  Status FinishTrainingEpoch();
  Status FinishEvaluation();
  Status BeginTraining(int epoch, int64_t skip_steps);
  Status BeginEvaluation(int epoch);
  // Starts phase part `part` over the leases dealt to the live workers.
  Status BeginPart(int part, int64_t first_step, int64_t skip_steps);
  Status HandlePhaseDone(const Node& node, const proto::PhaseDone& done);
  Status HandleProgress(const proto::Progress& p);
  Status MaybeStartJob();
  Status SendMap(const Node& node);
  // Sends to every worker (to one); a worker whose connection is gone is lost.
  Status SendToWorkers(const proto::Header& h);
  Status SendToWorker(const std::string& peer, const proto::Header& h);
  // NODE_EXITED from the local launcher: the node with that pid is lost now.
  Status HandleNodeExited(const proto::NodeExited& exited);
  // Sends h to every server; one whose connection is gone is lost (LoseServer).
  Status SendToServers(const proto::Header& h);
  void ShutdownAll(const std::string& reason);
  // Where the job is, for the checkpoint coordinator.
  CheckpointCoordinator::Position Here() const;
  // Carries out what the checkpoint coordinator asks after an event.
  Status Apply(StatusOr<CheckpointCoordinator::Actions> actions);
  Status BeginStop();
  // Resumed within its own run directory: deletes the checkpoints past the
  // resume point and points `latest` at it. Runs when every server has
  // registered (MaybeStartJob), so no write of a rolled-back run is still going.
  Status AbandonLaterCheckpoints();
  Status WriteSummary();

  Transport* transport_;
  SchedulerOptions options_;
  const std::atomic<bool>* stop_;
  std::unique_ptr<Socket> socket_;
  uint64_t job_id_ = 0;
  Clock::TimePoint start_time_;

  JobShape shape_;  // from Prepare()

  Membership members_;  // who takes part
  bool started_ = false;

  // Membership: what the servers were last told takes part (by worker rank),
  // and the changes not yet acknowledged by every server.
  std::vector<bool> server_active_;
  int64_t membership_seq_ = 0;
  struct MembershipChange {
    int64_t seq = 0;
    int acks = 0;
  };
  std::vector<MembershipChange> membership_changes_;
  // The learning-rate schedule's step offset the servers use (the cluster
  // map's, then each re-anchoring), and the one the next training phase
  // wants (BSP: epoch * steps_per_epoch - the step the epoch begins at).
  int64_t steps_per_epoch_ = 0;
  int64_t server_schedule_offset_ = 0;
  int64_t wanted_schedule_offset_ = 0;
  // Workers lost inside a training part whose reach the servers have not all reported yet.
  struct LostWorker {
    int rank = -1;
    int64_t seq = 0;
    int64_t min_step = INT64_MAX, max_step = -1;
  };
  std::vector<LostWorker> lost_pending_;
  std::optional<NextPhase> pending_start_;  // waiting for the servers' acks or for a worker
  Clock::TimePoint no_workers_since_;

  // The current phase.
  LeaseBook leases_;
  int epoch_ = 0;
  bool in_test_ = false;
  int phase_done_count_ = 0;
  std::vector<std::optional<proto::PhaseDone>> phase_reports_;  // by worker rank
  // The phase part: 0 for an epoch's first pass, then continuations over lost workers' positions.
  bool phase_running_ = false;
  int phase_part_ = 0;
  int reporter_rank_ = 0;
  bool phase_final_ = false;
  std::vector<bool> participants_, lost_in_phase_;  // by worker rank
  int64_t part_worker_steps_ = 0;
  // A worker was lost or missing in this epoch: its data plan is not the
  // fixed one of all workers, so no cut inside it (it would not resume).
  bool epoch_disturbed_ = false;
  // Examples lost workers trained (or passed over) before they were lost, this epoch.
  int64_t epoch_lost_examples_ = 0;
  int64_t phase_skipped_ = 0;
  int64_t global_step_ = 0;
  int64_t phase_steps_ = 0;
  int64_t phase_first_step_ = 0;  // global step at the start of the training phase
  int64_t phase_skip_steps_ = 0;  // resumed mid-epoch: steps of this epoch done before
  double phase_loss_ = 0, phase_correct_ = 0;
  int64_t phase_examples_ = 0;
  Clock::TimePoint phase_start_;

  CheckpointCoordinator checkpoints_;
  bool finished_ = false;         // the last phase is done; waiting for a checkpoint to commit
  bool stopping_ = false;         // a stop signal came: final checkpoint, then shutdown
  Clock::TimePoint stop_deadline_;

  // Resuming: where the job starts, and what servers load.
  int start_epoch_ = 0;
  int64_t start_skip_steps_ = 0;
  bool evaluate_only_ = false;  // resumed from the final checkpoint
  std::optional<proto::Restore> restore_;
  int64_t resumed_from_step_ = -1;

  JobResults results_;
  std::string rollback_reason_;

  EpochProgress progress_;  // the workers' reports inside a training epoch
  MetricsLog metrics_;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_SCHEDULER_H_
