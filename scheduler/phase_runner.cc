#include "scheduler/phase_runner.h"

#include <algorithm>

#include <glog/logging.h>

#include "core/consistency.h"
#include "core/spec.h"

namespace tessera {
namespace {

double Seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

PhaseRunner::PhaseRunner(const proto::JobSpec& spec, const JobShape* shape, JobResults* results)
    : spec_(spec),
      shape_(shape),
      results_(results),
      has_validation_(HasValidationSplit(spec.data())),
      early_stopping_(spec.early_stopping()) {
  if (has_validation_) results_->best_metric = early_stopping_.metric_name();
}

void PhaseRunner::RestoreBest(const BestSoFar& best) {
  early_stopping_.Restore(best);
  if (early_stopping_.has_best()) results_->best = best;
}

void PhaseRunner::Proceed(const NextPhase& next) {
  if (stage_ == Stage::kStopping) return;
  next_ = next;
  stage_ = Stage::kWaiting;
}

PhaseRunner::Actions PhaseRunner::Begin(const std::vector<int>& live, Clock::TimePoint now) {
  switch (next_.kind) {
    case NextPhase::Kind::kTraining:
      return BeginTraining(next_.epoch, next_.skip_steps, live, now);
    case NextPhase::Kind::kEvaluation:
      return BeginEvaluation(next_.epoch, next_.validation, live);
    case NextPhase::Kind::kContinuation:
      leases_.StartContinuation(live);
      return BeginPart(next_.part, global_step_, 0, live);
  }
  LOG(FATAL) << "unknown phase kind";
}

PhaseRunner::Actions PhaseRunner::BeginTraining(int epoch, int64_t skip_steps, const std::vector<int>& live,
                                                Clock::TimePoint now) {
  const int workers = spec_.cluster().workers();
  leases_.StartTraining(epoch, shape_->train_examples, spec_.data().shards_per_worker() * workers, live,
                        IsSynchronous(spec_));
  epoch_ = epoch;
  test_ = validation_ = false;
  loss_ = correct_ = 0;
  examples_ = skipped_ = epoch_lost_examples_ = resumed_examples_ = 0;
  // With a worker missing, the epoch's plan is not the fixed one of all workers.
  epoch_disturbed_ = static_cast<int>(live.size()) != workers;
  phase_start_ = now;
  LOG(INFO) << "epoch " << epoch + 1 << "/" << spec_.epochs() << " starts at step " << global_step_ << " with "
            << live.size() << " of " << workers << " workers";
  // Resumed inside this epoch: each worker goes on from its sums before the cut.
  epoch_resumed_loss_.clear();
  if (skip_steps > 0 && static_cast<int>(resumed_loss_.size()) == workers) epoch_resumed_loss_ = resumed_loss_;
  resumed_loss_.clear();
  std::vector<LossSums> start = epoch_resumed_loss_;
  start.resize(workers);
  if (IsSynchronous(spec_)) {
    losses_.Begin(epoch, global_step_, std::move(start));
  } else {
    losses_.Stop();  // no cut inside an ASP epoch
  }
  Actions actions = BeginPart(0, global_step_ - skip_steps, skip_steps, live);
  for (const LossSums& sums : epoch_resumed_loss_) actions.start->add_resumed_loss_sums(sums.loss_sum);
  return actions;
}

PhaseRunner::Actions PhaseRunner::BeginEvaluation(int epoch, bool validation, const std::vector<int>& live) {
  const int workers = spec_.cluster().workers();
  // Under BSP each worker evaluates fixed shards, so the summed test loss is reproducible.
  leases_.StartTest(epoch, validation ? shape_->validation_examples : shape_->test_examples,
                    std::max(1, workers * spec_.data().shards_per_worker()), live, IsSynchronous(spec_));
  epoch_ = epoch;
  test_ = true;
  validation_ = validation;
  // With a validation split the test set is evaluated once, at the end (after early stopping too).
  final_eval_ = has_validation_ ? !validation : epoch + 1 == spec_.epochs();
  loss_ = correct_ = 0;
  examples_ = 0;
  classes_.reset();
  binary_.reset();
  regression_.reset();
  switch (TaskOfLoss(shape_->task.loss)) {
    case Task::kMultiClass:
      if (shape_->num_classes >= 1) classes_.emplace(shape_->num_classes);
      break;
    case Task::kBinary: binary_.emplace(); break;
    case Task::kRegression: regression_.emplace(); break;
  }
  losses_.Stop();
  return BeginPart(0, global_step_, 0, live);
}

PhaseRunner::Actions PhaseRunner::BeginPart(int index, int64_t first_step, int64_t skip_steps,
                                            const std::vector<int>& live) {
  const int workers = spec_.cluster().workers();
  stage_ = Stage::kRunning;
  parts_ = index + 1;
  Part part;
  part.index = index;
  part.reports.assign(workers, std::nullopt);
  part.participants.assign(workers, false);
  part.lost.assign(workers, false);
  for (int r : live) part.participants[r] = true;
  part.reporter_rank = live.empty() ? 0 : live.front();
  part_worker_steps_ = 0;
  part_furthest_push_ = -1;
  servers_must_advance_ = false;
  proto::Phase phase;
  phase.set_epoch(epoch_);
  phase.set_part(index);
  phase.set_reporter_rank(part.reporter_rank);
  if (test_) {
    phase.set_test(true);
    phase.set_validation(validation_);
    phase.set_final(final_eval_);
  } else {
    steps_ = IsSynchronous(spec_) ? leases_.StepsPerWorker(spec_.batch_size()) : 0;
    skip_steps_ = skip_steps;
    first_step_ = first_step;
    phase.set_steps(steps_);
    phase.set_first_step(first_step_);
    phase.set_skip_steps(skip_steps);
  }
  if (index > 0) {
    losses_.Stop();  // the epoch lost a worker: no cut comes inside it
    const char* what = test_ ? (validation_ ? "validation" : "evaluation") : "epoch";
    LOG(INFO) << what << " " << epoch_ + 1 << ", part " << index + 1 << ": "
              << live.size() << " workers take the positions lost workers left"
              << (test_ || !IsSynchronous(spec_)
                      ? ""
                      : ", " + std::to_string(steps_) + " steps from step " + std::to_string(first_step));
  }
  part_ = std::move(part);
  Actions actions;
  actions.start = std::move(phase);
  return actions;
}

StatusOr<PhaseRunner::Actions> PhaseRunner::PhaseDone(int rank, const proto::PhaseDone& done, int live_workers,
                                                      Clock::TimePoint now) {
  if (!part_.has_value() || done.epoch() != epoch_ || done.test() != test_ || done.validation() != validation_ ||
      done.part() != part_->index || !part_->participants[rank]) {
    LOG(WARNING) << "dropped a PHASE_DONE for another phase from worker " << rank;
    return Actions{};
  }
  if (part_->reports[rank].has_value()) {
    LOG(WARNING) << "dropped a second PHASE_DONE from worker " << rank;
    return Actions{};
  }
  part_->reports[rank] = done;
  return FinishPartIfComplete(live_workers, now);
}

bool PhaseRunner::WorkerLost(int rank) {
  if (!part_.has_value() || !part_->participants[rank] || part_->reports[rank].has_value()) return false;
  part_->lost[rank] = true;
  if (test_) {
    leases_.HandBack(rank, 0, 1);  // its evaluation results are lost with it: all its test shards go back
  } else {
    epoch_disturbed_ = true;
  }
  return true;
}

void PhaseRunner::WaitForReach(int rank, int64_t change_seq) {
  LostWorker lost;
  lost.rank = rank;
  lost.seq = change_seq;
  lost_pending_.push_back(lost);  // the hand-back waits for how far its pushes reached
}

void PhaseRunner::ReachReported(int64_t seq, const proto::RankReach& reach) {
  for (LostWorker& lost : lost_pending_) {
    if (lost.rank != reach.rank() || lost.seq != seq || !reach.has_slices()) continue;
    lost.min_step = std::min(lost.min_step, reach.min_step());
    lost.max_step = std::max(lost.max_step, reach.max_step());
  }
}

void PhaseRunner::ChangeAcknowledged(int64_t seq) {
  std::vector<LostWorker> still;
  for (const LostWorker& lost : lost_pending_) {
    if (lost.seq == seq) {
      HandBack(lost);
    } else {
      still.push_back(lost);
    }
  }
  lost_pending_ = std::move(still);
}

void PhaseRunner::HandBack(const LostWorker& lost) {
  // Its steps of this part: those whose push reached every slice (from the
  // part's first step on); a step that reached only some slices (it died
  // between the parts of one push) is handed back too.
  const int64_t reached = lost.min_step == INT64_MAX ? first_step_ - 1 : lost.min_step;
  const int64_t steps = std::max(skip_steps_, std::max<int64_t>(0, reached - first_step_ + 1));
  const int64_t used = leases_.HandBack(lost.rank, steps, spec_.batch_size());
  epoch_lost_examples_ += used;
  part_worker_steps_ += std::max<int64_t>(0, reached - first_step_ + 1);
  part_furthest_push_ = std::max(part_furthest_push_, lost.max_step);
  LOG(INFO) << "worker " << lost.rank << " had done " << steps << " steps of this phase part (" << used
            << " examples); " << leases_.returned_examples() << " examples go to the workers left";
  if (lost.max_step > reached) {
    LOG(WARNING) << "worker " << lost.rank << " was lost between the parts of its push for step " << reached + 1
                 << ": the slices that got it applied it, the others did not; its examples are trained again";
  }
}

StatusOr<PhaseRunner::Actions> PhaseRunner::FinishPartIfComplete(int live_workers, Clock::TimePoint now) {
  if (!part_.has_value()) return Actions{};
  for (size_t r = 0; r < part_->participants.size(); ++r) {
    if (part_->participants[r] && !part_->lost[r] && !part_->reports[r].has_value()) return Actions{};
  }
  for (const LostWorker& lost : lost_pending_) {
    if (part_->lost[lost.rank]) return Actions{};  // how far it got is not known yet
  }
  Part part = std::move(*part_);
  part_.reset();
  return FinishPart(std::move(part), live_workers, now);
}

StatusOr<PhaseRunner::Actions> PhaseRunner::FinishPart(Part part, int live_workers, Clock::TimePoint now) {
  // Add the reports up in rank order, so the figures are the same in every run.
  for (size_t rank = 0; rank < part.reports.size(); ++rank) {
    const std::optional<proto::PhaseDone>& report = part.reports[rank];
    if (!report.has_value()) continue;
    // A resumed epoch's first part: this worker's loss_sum went on from its sums before the cut.
    if (!test_ && part.index == 0 && rank < epoch_resumed_loss_.size()) {
      resumed_examples_ += epoch_resumed_loss_[rank].examples;
    }
    loss_ += report->loss_sum();
    correct_ += report->correct();
    examples_ += report->examples();
    skipped_ += report->skipped_examples();
    part_worker_steps_ += report->steps();
    results_->AddWorkerReport(*report, /*training=*/!test_);
    if (test_) MergeTaskMetrics(*report);
  }
  // The reporter's digest; none when it was lost (a manifest then goes without one).
  const std::optional<proto::PhaseDone>& reporter = part.reports[part.reporter_rank];
  const std::string digest = reporter.has_value() ? reporter->params_sha256() : "";
  if (!test_ || !digest.empty()) results_->params_sha256 = digest;
  if (!test_) global_step_ = PartEndStep(part);
  if (stage_ == Stage::kStopping) return Actions{};  // no new phase: the job is stopping
  // Positions of lost workers left: a continuation over them (the final
  // evaluation also when its reporter was lost, for the digest and params.bin).
  if (leases_.has_returned() || (test_ && final_eval_ && !reporter.has_value())) {
    Proceed(NextPhase::Continuation(part.index + 1));
    return Actions{};
  }
  if (test_) return FinishEvaluation();
  return FinishTrainingEpoch(live_workers, now);
}

int64_t PhaseRunner::PartEndStep(const Part& part) {
  if (!IsSynchronous(spec_)) return global_step_ + part_worker_steps_;
  const bool anyone_reported =
      std::any_of(part.reports.begin(), part.reports.end(), [](const auto& r) { return r.has_value(); });
  if (anyone_reported) return first_step_ + steps_;  // the workers left ran every step
  // Every worker was lost: each slice holds the steps their pushes reached,
  // the furthest step on some slices, the one before on the others. The next
  // part goes on from the furthest, every slice moved up to it.
  servers_must_advance_ = true;
  return std::max(first_step_, part_furthest_push_ + 1);
}

StatusOr<PhaseRunner::Actions> PhaseRunner::FinishTrainingEpoch(int live_workers, Clock::TimePoint now) {
  const double seconds = Seconds(now - phase_start_);
  const int64_t trained = examples_ + epoch_lost_examples_;  // lost workers' examples before they were lost included
  results_->AddEpoch(seconds, trained);
  results_->last_train_loss = TrainLoss();
  const int64_t counted = trained + skipped_;
  results_->examples_by_epoch.push_back(counted);
  if (counted != shape_->train_examples) {
    return InternalError("epoch " + std::to_string(epoch_ + 1) + " trained on " + std::to_string(trained) +
                         " examples (" + std::to_string(skipped_) + " done before resuming), expected " +
                         std::to_string(shape_->train_examples));
  }
  JsonObject line;
  line.Add("event", "epoch")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec_.epochs())
      .Add("step", global_step_)
      .AddFloat64("train_loss", results_->last_train_loss)
      .Add("examples", trained)
      .Add("samples_per_sec", trained / seconds)
      .Add("epoch_seconds", seconds);
  if (epoch_disturbed_) line.Add("workers", static_cast<int64_t>(live_workers));
  if (parts_ > 1 || epoch_lost_examples_ > 0) {
    line.Add("parts", parts_).Add("examples_of_lost_workers", epoch_lost_examples_);
  }
  LOG(INFO) << "epoch " << epoch_ + 1 << " done: train loss " << results_->last_train_loss << ", "
            << trained / seconds << " samples/s, " << counted << " examples";
  Actions actions;
  actions.lines.push_back(std::move(line));
  actions.epoch_ended = AfterEpoch();
  stage_ = Stage::kHeld;
  return actions;
}

NextPhase PhaseRunner::AfterEpoch() const {
  const bool last_epoch = epoch_ + 1 == spec_.epochs();
  if (!spec_.eval_every_epoch() && !last_epoch) return NextPhase::Training(epoch_ + 1);
  return has_validation_ ? NextPhase::Validation(epoch_) : NextPhase::Evaluation(epoch_);
}

namespace {

// Merges one report's part (`bytes`, as Metrics::Serialize wrote it, of
// the report's `examples`) into *total; on any problem drops *total, saying
// why, so that an evaluation never shows metrics of part of its examples.
template <typename Metrics>
void MergePart(const std::string& bytes, int64_t examples, int epoch, const char* what,
               std::optional<Metrics>* total) {
  if (!total->has_value()) return;
  StatusOr<Metrics> part = Metrics::Parse(bytes);
  Status merged = part.ok() ? (*total)->Merge(*part) : part.status();
  if (merged.ok() && part->examples() != examples) {
    merged = InvalidArgumentError(std::string(what) + " of " + std::to_string(part->examples()) +
                                  " examples for a report of " + std::to_string(examples));
  }
  if (!merged.ok()) {
    LOG(WARNING) << "evaluation " << epoch + 1 << ": a worker's " << what << " are unusable (" << merged.message()
                 << "); this evaluation goes without them";
    total->reset();
  }
}

}  // namespace

void PhaseRunner::MergeTaskMetrics(const proto::PhaseDone& report) {
  MergePart(report.class_metrics(), report.examples(), epoch_, "class counts", &classes_);
  MergePart(report.binary_metrics(), report.examples(), epoch_, "binary metrics", &binary_);
  MergePart(report.regression_metrics(), report.examples(), epoch_, "regression metrics", &regression_);
}

EvalFigures PhaseRunner::Figures() const {
  EvalFigures f;
  f.accuracy = examples_ > 0 ? correct_ / examples_ : 0;
  f.loss = examples_ > 0 ? loss_ / examples_ : 0;
  if (classes_.has_value() && classes_->examples() == examples_) f.classification = classes_->Result();
  if (binary_.has_value() && binary_->examples() == examples_) f.binary = binary_->Result();
  if (regression_.has_value() && regression_->examples() == examples_) f.regression = regression_->Result();
  return f;
}

double PhaseRunner::TrainLoss() const {
  // A lost worker's loss is lost with it: the mean is over the examples
  // whose workers reported, their steps before a resume included.
  const int64_t examples = examples_ + resumed_examples_;
  return examples > 0 ? loss_ / examples : 0;
}

StatusOr<PhaseRunner::Actions> PhaseRunner::FinishEvaluation() {
  const int64_t expected = validation_ ? shape_->validation_examples : shape_->test_examples;
  if (examples_ != expected) {
    return InternalError(std::string(validation_ ? "validation" : "evaluation") + " saw " + std::to_string(examples_) +
                         " examples, expected " + std::to_string(expected));
  }
  if (validation_) return FinishValidation();
  const EvalFigures figures = Figures();
  results_->test_accuracy = figures.accuracy;
  results_->test_loss = figures.loss;
  // The job's test evaluation came before its last epoch: early stopping ended training.
  if (final_eval_ && epoch_ + 1 < spec_.epochs()) results_->stopped_early_after_epoch = epoch_ + 1;
  JsonObject line;
  line.Add("event", "eval")
      .Add("set", "test")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec_.epochs())
      .Add("test_accuracy", results_->test_accuracy)
      .Add("test_loss", results_->test_loss)
      .Add("examples", examples_);
  results_->classification = figures.classification;
  results_->binary = figures.binary;
  results_->regression = figures.regression;
  AddTaskMetricsJson(figures, shape_->class_names, &line);
  LOG(INFO) << "epoch " << epoch_ + 1 << " test accuracy " << results_->test_accuracy << " (" << examples_
            << " examples)";
  Actions actions;
  actions.lines.push_back(std::move(line));
  if (final_eval_) {
    stage_ = Stage::kDone;  // the job ends once the final checkpoint, if any, has committed
  } else {
    Proceed(NextPhase::Training(epoch_ + 1));
  }
  return actions;
}

PhaseRunner::Actions PhaseRunner::FinishValidation() {
  const EvalFigures figures = Figures();
  const double value = early_stopping_.MetricOf(figures);
  const bool improved = early_stopping_.Observe(epoch_, global_step_, value);
  if (early_stopping_.has_best()) results_->best = early_stopping_.best();
  const bool last_epoch = epoch_ + 1 == spec_.epochs();
  const bool stop = early_stopping_.ShouldStop() && !last_epoch;
  LOG(INFO) << "epoch " << epoch_ + 1 << " validation " << early_stopping_.metric_name() << " " << value
            << (improved ? " (the best so far)" : "") << (stop ? ": stopping early" : "");
  Actions actions;
  actions.lines.push_back(ValidationLine(figures, improved, stop));
  if (improved) actions.new_best_step = global_step_;
  // The test set once, at the end: after the last epoch, or now that early stopping ends training.
  Proceed(last_epoch || stop ? NextPhase::Evaluation(epoch_) : NextPhase::Training(epoch_ + 1));
  return actions;
}

JsonObject PhaseRunner::ValidationLine(const EvalFigures& figures, bool improved, bool stop) const {
  JsonObject line;
  line.Add("event", "eval")
      .Add("set", "validation")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec_.epochs())
      .Add("validation_accuracy", figures.accuracy)
      .Add("validation_loss", figures.loss)
      .Add("examples", examples_);
  AddTaskMetricsJson(figures, shape_->class_names, &line);
  // The state of the best epoch and early stopping, as a resumed job restores it (ReadJobHistory).
  const BestSoFar& best = early_stopping_.best();
  line.Add("metric", early_stopping_.metric_name()).Add("improved", improved);
  if (early_stopping_.has_best()) {
    line.Add("best_epoch", best.epoch + 1).Add("best_step", best.step).AddFloat64("best_value", best.value);
  }
  line.Add("evaluations_without_improvement", best.evaluations_without_improvement).Add("stop", stop);
  return line;
}

}  // namespace tessera
