// The phases of a job as a state machine: training epochs, their
// continuations over the positions lost workers left, and evaluations. Events
// come in (the job starts, a phase may begin, a worker reports its part or is
// lost, the servers say how far a lost worker's pushes reached); what to do
// comes out as Actions (START_PHASE for the workers, metrics lines, the phase
// after an epoch). No sockets and no clock: times come with the events, so
// phase_runner_test.cc drives it directly.
//
// The job's phase is one Stage:
//
//   kForming ─Proceed─> kWaiting ──Begin──> kRunning ──(part ends)──┐
//                          ^                                        │
//                          ├──── a continuation, the next epoch <───┤
//                          └── Proceed ── kHeld <── an epoch ended ─┤
//                                                                   └─> kDone (last evaluation)
//   Stop (any stage) ──> kStopping: a running part is still summed, nothing follows it.
//
// Evaluations: without a validation split, each (every epoch with
// eval_every_epoch, else after the last) evaluates the test set, and the
// last one ends the job. With one, each evaluates the validation set and
// feeds the best epoch and the early-stopping rule (early_stopping.h); after
// the last epoch's, or once the rule says stop, one evaluation of the test
// set ends the job, on the last parameters.
//
// A part: every live worker gets START_PHASE and reports PHASE_DONE; the
// reports are summed in rank order so the figures are the same in every run.
// A worker lost inside a training part hands its positions back from the
// step its pushes reached every server (ReachReported, ChangeAcknowledged);
// the part ends when every participant has reported or handed back, and a
// continuation part over the handed-back positions follows.
//
// Not thread-safe.
#ifndef TESSERA_SCHEDULER_PHASE_RUNNER_H_
#define TESSERA_SCHEDULER_PHASE_RUNNER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/early_stopping.h"
#include "scheduler/job_metrics.h"
#include "scheduler/epoch_loss_ledger.h"
#include "scheduler/job_shape.h"
#include "scheduler/lease_book.h"
#include "scheduler/next_phase.h"

namespace tessera {

class PhaseRunner {
 public:
  enum class Stage {
    kForming,   // nodes register; no phase yet
    kWaiting,   // next() begins once the servers know every live worker and one is there
    kRunning,   // a part of a phase runs
    kHeld,      // a training epoch ended; the caller Proceeds (a checkpoint may be taken first)
    kStopping,  // a stop came: a running part is still summed, nothing follows
    kDone,      // the last evaluation ended
  };

  struct Actions {
    std::optional<proto::Phase> start;     // send START_PHASE with this to every worker
    std::vector<JsonObject> lines;         // for metrics.jsonl
    std::optional<NextPhase> epoch_ended;  // a training epoch ended (kHeld); this comes after it
    std::optional<int64_t> new_best_step;  // a validation found a new best epoch, which ended at this step
  };

  // `shape` and `results` must outlive this; results gets the workers' reports,
  // each epoch's time and loss, and the evaluations' figures.
  PhaseRunner(const proto::JobSpec& spec, const JobShape* shape, JobResults* results);

  // Resumed: training's global step starts at `step` (else at 0), and the
  // job is in epoch `epoch` until its first phase begins. `loss_before_cut`:
  // a checkpoint cut inside an epoch kept each worker rank's loss sums over
  // that epoch's steps before the cut; the resumed epoch's workers go on
  // from them, so its train_loss covers the whole epoch (empty: none kept,
  // or the cut was at an epoch's end).
  void ResumeAt(int64_t step, int epoch, std::vector<LossSums> loss_before_cut = {}) {
    global_step_ = step;
    epoch_ = epoch;
    resumed_loss_ = std::move(loss_before_cut);
  }
  // Resumed: the best epoch and early-stopping state an earlier run of the
  // job recorded (ReadJobHistory).
  void RestoreBest(const BestSoFar& best);

  // Events.
  // Goes on with `next`: the job's first phase (kForming -> kWaiting), or
  // the one after an epoch (kHeld -> kWaiting). Ignored when stopping.
  void Proceed(const NextPhase& next);
  // kWaiting -> kRunning: the next phase begins over the workers `live`.
  Actions Begin(const std::vector<int>& live, Clock::TimePoint now);
  // Worker `rank` finished its part. A report for another part or a second
  // one is dropped (logged).
  StatusOr<Actions> PhaseDone(int rank, const proto::PhaseDone& done, int live_workers, Clock::TimePoint now);
  // Worker `rank` is lost. True when it had a part running: in an evaluation
  // its test shards go back at once; in training call WaitForReach with the
  // membership change that tells the servers.
  bool WorkerLost(int rank);
  void WaitForReach(int rank, int64_t change_seq);
  // A server says how far the pushes of a worker that left in change `seq` reached.
  void ReachReported(int64_t seq, const proto::RankReach& reach);
  // Every server has change `seq`: the workers lost in it hand their positions back.
  void ChangeAcknowledged(int64_t seq);
  // Ends the running part when every participant has reported or was lost
  // (with its hand-back known). Call after WorkerLost and ChangeAcknowledged.
  StatusOr<Actions> FinishPartIfComplete(int live_workers, Clock::TimePoint now);
  // A stop came: no phase begins any more.
  void Stop() { stage_ = Stage::kStopping; }
  // Worker `rank`'s PROGRESS in the running training phase: its steps' losses
  // go into losses().
  void Progress(int rank, const proto::Progress& progress) { losses_.Report(rank, progress); }

  // The next lease for worker `rank` in the running phase.
  proto::Lease Lease(int rank) { return leases_.Next(rank); }

  Stage stage() const { return stage_; }
  const NextPhase& next() const { return next_; }
  int epoch() const { return epoch_; }
  // An evaluation runs (of the test or the validation set).
  bool in_test() const { return test_; }
  // The best epoch and the early-stopping rule (with a validation split).
  const EarlyStopping& early_stopping() const { return early_stopping_; }
  // A worker was lost or missing in this epoch: its data plan is not the
  // fixed one of all workers, so no cut inside it (it would not resume).
  bool epoch_disturbed() const { return epoch_disturbed_; }
  // Training's global step: where the last part ended (BSP: its fixed end).
  int64_t global_step() const { return global_step_; }
  int64_t epoch_first_step() const { return first_step_; }
  int64_t epoch_end_step() const { return first_step_ + steps_; }
  Clock::TimePoint phase_start() const { return phase_start_; }
  bool part_running() const { return part_.has_value(); }
  // BSP: every worker of the last training part was lost, so the servers'
  // slices are where their last pushes left them (one step apart at most):
  // each must move up to global_step() before the next part begins
  // (Membership.advance_to_step).
  bool servers_must_advance() const { return servers_must_advance_; }
  // BSP: the running epoch's loss sums by step and worker (for a cut inside it).
  const EpochLossLedger& losses() const { return losses_; }

 private:
  // A worker lost inside a training part whose reach the servers have not all reported yet.
  struct LostWorker {
    int rank = -1;
    int64_t seq = 0;
    int64_t min_step = INT64_MAX, max_step = -1;
  };
  // The running part of a phase.
  struct Part {
    int index = 0;  // 0 for a phase's first pass, then continuations
    int reporter_rank = 0;
    std::vector<bool> participants, lost;                 // by worker rank
    std::vector<std::optional<proto::PhaseDone>> reports;  // by worker rank
  };

  Actions BeginTraining(int epoch, int64_t skip_steps, const std::vector<int>& live, Clock::TimePoint now);
  Actions BeginEvaluation(int epoch, bool validation, const std::vector<int>& live);
  Actions BeginPart(int index, int64_t first_step, int64_t skip_steps, const std::vector<int>& live);
  void HandBack(const LostWorker& lost);
  StatusOr<Actions> FinishPart(Part part, int live_workers, Clock::TimePoint now);
  // Training: the global step after `part`.
  int64_t PartEndStep(const Part& part);
  StatusOr<Actions> FinishTrainingEpoch(int live_workers, Clock::TimePoint now);
  StatusOr<Actions> FinishEvaluation();
  // An evaluation of the validation set ended: the best epoch and early
  // stopping decide what follows.
  Actions FinishValidation();
  // Its metrics.jsonl line: the figures, and the best epoch and early-stopping state after it.
  JsonObject ValidationLine(const EvalFigures& figures, bool improved, bool stop) const;
  // The evaluation's figures: its means and the task's merged metrics (when
  // every report's part of them was usable).
  EvalFigures Figures() const;
  // What follows a training epoch (with a validation split, its evaluation
  // is of the validation set).
  NextPhase AfterEpoch() const;
  // Merges a worker's metrics of the task into classes_, binary_ or
  // regression_ (or drops them all, saying why).
  void MergeTaskMetrics(const proto::PhaseDone& report);
  // The running training epoch's mean loss (its steps before a resume included when known).
  double TrainLoss() const;

  const proto::JobSpec& spec_;
  const JobShape* shape_;
  JobResults* results_;

  Stage stage_ = Stage::kForming;
  NextPhase next_;  // kWaiting: what begins

  // The phase.
  LeaseBook leases_;
  int epoch_ = 0;
  bool test_ = false;        // an evaluation
  bool validation_ = false;  // the evaluation is of the validation set
  bool final_eval_ = false;  // the job's last evaluation (of the test set)
  int parts_ = 0;            // parts begun so far
  Clock::TimePoint phase_start_;
  double loss_ = 0, correct_ = 0;
  int64_t examples_ = 0;
  // An evaluation's counts per (true, predicted) class, merged from the
  // reports; none once a report lacked them or held bad ones.
  std::optional<ClassificationMetrics> classes_;
  // The same of a binary task's (label, probability) pairs and a
  // regression's (target, prediction) pairs.
  std::optional<BinaryMetrics> binary_;
  std::optional<RegressionMetrics> regression_;
  int64_t skipped_ = 0;              // examples done before resuming
  // Resumed inside an epoch: each worker rank's loss sums before the cut,
  // until the first epoch begins (ResumeAt)...
  std::vector<LossSums> resumed_loss_;
  // ...then the running epoch's (empty for one not resumed): its first
  // part's workers go on from them, and the examples of those that reported
  // count in its train_loss.
  std::vector<LossSums> epoch_resumed_loss_;
  int64_t resumed_examples_ = 0;
  EpochLossLedger losses_;  // BSP training: the running epoch's loss sums by step and worker
  bool epoch_disturbed_ = false;
  int64_t epoch_lost_examples_ = 0;  // examples lost workers trained (or passed over) before they were lost
  // Training: the global step, the part's first step, its steps (BSP), and
  // the steps of the epoch done before resuming.
  int64_t global_step_ = 0;
  int64_t first_step_ = 0;
  int64_t steps_ = 0;
  int64_t skip_steps_ = 0;
  int64_t part_worker_steps_ = 0;  // ASP: the steps the part's workers took
  int64_t part_furthest_push_ = -1;  // the highest step a lost worker of the part pushed
  bool servers_must_advance_ = false;

  std::optional<Part> part_;
  std::vector<LostWorker> lost_pending_;
  const bool has_validation_;  // the data has a validation split
  EarlyStopping early_stopping_;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_PHASE_RUNNER_H_
