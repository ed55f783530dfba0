// The scheduler role: the one node that knows the whole job. Its parts live
// in files of their own: the job's shape (job_shape.h), where a resumed job
// starts (resume_point.h), who takes part (membership.h), shard leases
// (lease_book.h), what the servers were told about it
// (membership_changes.h), the phases (phase_runner.h), checkpoints
// (checkpoint_coordinator.h), metrics and the summary (job_metrics.h). This
// class is the event loop that wires them to the socket: each message is an
// event for one of them, and what they ask for goes out as messages. Nodes
// coming and going are handled in scheduler_nodes.cc.
//
// Single-threaded event loop; Run() blocks. Its deadlines follow
// SchedulerOptions::clock, so tests run it in one process with a clock they
// move (scheduler_test.cc).
#ifndef TESSERA_SCHEDULER_SCHEDULER_H_
#define TESSERA_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/drop_log.h"
#include "core/status.h"
#include "core/transport.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/checkpoint_coordinator.h"
#include "scheduler/job_metrics.h"
#include "scheduler/job_shape.h"
#include "scheduler/membership.h"
#include "scheduler/membership_changes.h"
#include "scheduler/next_phase.h"
#include "scheduler/phase_runner.h"
#include "scheduler/resume_point.h"

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
  // The secret a NODE_EXITED must carry (the local launcher's); when empty,
  // every NODE_EXITED is dropped (a hand-started cluster has no launcher).
  std::string launcher_token;
  // The secret every REGISTER must carry (Register.token); when empty, any
  // REGISTER is taken (a hand-started cluster without --cluster_token_file).
  std::string cluster_token;
  // What the deadlines follow (heartbeat, register and checkpoint timeouts,
  // every_seconds cuts, progress lines). Not owned; must outlive the
  // scheduler. Default: the system's steady clock.
  const Clock* clock = SystemClock();
  // The job's plan, PlanJob(spec), when the caller made it: `tessera
  // scheduler` plans once before it binds (a table's every record read) and
  // keeps the plan across rollbacks. Default empty: Run plans the job.
  std::optional<JobShape> shape;
  // How long the caller's planning took, for the log; with `shape` only.
  double planning_seconds = 0;
};

// PlanJob for a scheduler with `options`: a job resumed from a checkpoint
// takes the table vocabularies its run stored (never counted again). The
// errors of PlanJob and ReadTableVocabularies.
StatusOr<JobShape> PlanSchedulerJob(const SchedulerOptions& options);

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
  // OK while the job may go on: Aborted on a stop that outlived its final
  // checkpoint's time, DeadlineExceeded when the job did not form in time,
  // Unavailable when every worker was lost and none joined in time.
  Status CheckDeadlines();
  Status Handle(Message m);
  Status HandlePhaseDone(const Node& node, const proto::PhaseDone& done);
  Status HandleProgress(const Node& node, const proto::Progress& p);
  Status MaybeStartJob();
  Status SendMap(const Node& node);
  // Carries out what the phase runner asks after an event.
  Status Apply(StatusOr<PhaseRunner::Actions> actions);
  // Goes on with `next`, as soon as the servers know every live worker and at
  // least one is there (MaybeBegin).
  Status Proceed(const NextPhase& next);
  Status MaybeBegin();
  // Waiting to begin a BSP training epoch: the schedule offset it wants the
  // servers to have.
  void WantScheduleOffset();
  // Where the job is, for the checkpoint coordinator.
  CheckpointCoordinator::Position Here() const;
  // Carries out what the checkpoint coordinator asks after an event.
  Status Apply(StatusOr<CheckpointCoordinator::Actions> actions);
  Status BeginStop();
  // Resumed within its own run directory: deletes the checkpoints past the
  // resume point and points `latest` at it. Runs when every server has
  // registered (MaybeStartJob), so no write of a rolled-back run is still going.
  Status AbandonLaterCheckpoints();
  // Resumed from a checkpoint of its own run directory (a rollback, a
  // restart, `tessera resume`).
  bool ResumedInOwnRunDir() const;
  Status WriteSummary();
  // The committed checkpoint cut at the end of the best epoch; "" for none.
  std::string BestCheckpoint() const;

  // Nodes coming and going (scheduler_nodes.cc).
  Status HandleRegister(const Message& m);
  Status HandleHeartbeat(const Message& m);
  // Unavailable naming the first server silent for longer than the heartbeat
  // timeout; a silent worker is lost (LoseWorker) and the job goes on.
  Status CheckHeartbeats();
  // NODE_EXITED from the local launcher: the node with that pid is lost now.
  Status HandleNodeExited(const proto::NodeExited& exited);
  // A worker is gone: the servers stop waiting for it, its leases from the
  // position it reached go back to the queue, a standby takes its rank.
  Status LoseWorker(const std::string& peer, const std::string& why);
  // A server is gone: with rollbacks left, tells every other node ROLLBACK
  // and ends this run (Aborted, with rollback_reason_ set); else Unavailable.
  Status LoseServer(const Node& node, const std::string& why);
  // Tells every server which worker ranks take part (a numbered change each
  // server acknowledges).
  Status SendMembership(const std::vector<bool>& active);
  Status HandleMembershipAck(const Node& node, const proto::MembershipAck& ack);
  // Gives free ranks to standby workers (they get the cluster map now and
  // take part from the next phase).
  Status AssignStandby();
  // Sends to every worker (to one); a worker whose connection is gone is lost.
  Status SendToWorkers(const proto::Header& h);
  Status SendToWorker(const std::string& peer, const proto::Header& h);
  // Sends h to every server; one whose connection is gone is lost (LoseServer).
  Status SendToServers(const proto::Header& h);
  void ShutdownAll(const std::string& reason);
  // A header from the scheduler of this job.
  proto::Header Header(proto::Op op) const;

  Transport* transport_;
  SchedulerOptions options_;
  const std::atomic<bool>* stop_;
  std::unique_ptr<Socket> socket_;
  uint64_t job_id_ = 0;
  Clock::TimePoint start_time_;

  JobShape shape_;                     // from Prepare()
  std::optional<ResumePoint> resume_;  // from Prepare(), when resuming
  // Resumed in its own run directory: the last epoch whose validation its
  // metrics.jsonl holds (FirstPhaseOfResume); nullopt otherwise.
  std::optional<int> validated_epochs_;
  JobResults results_;
  int rollbacks_before_ = 0;  // the servers' rollbacks metrics.jsonl holds from earlier runs

  Membership members_;                    // who takes part
  MembershipChanges server_membership_;  // what the servers were told about it
  Clock::TimePoint no_workers_since_;
  PhaseRunner phases_;  // the job's phase: epochs, continuations, evaluations
  CheckpointCoordinator checkpoints_;
  Clock::TimePoint stop_deadline_;  // a stop's final checkpoint must be taken by then

  std::string rollback_reason_;
  EpochProgress progress_;  // the workers' reports inside a training epoch
  MetricsLog metrics_;
  // The lines of dropped messages: junk from anyone must not fill the disk.
  DropLog drops_{options_.clock};
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_SCHEDULER_H_
