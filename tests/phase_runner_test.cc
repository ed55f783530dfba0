// PhaseRunner, the job's phases as a state machine, driven event by event in
// one process: no sockets, no clock, no data files.
#include "scheduler/phase_runner.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/task_metrics.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using Stage = PhaseRunner::Stage;

constexpr int kBatch = 10;

// 1000 training examples in 4 shards of 250 (2 workers, 2 shards each), 200
// test examples; BSP, batches of 10: each worker runs 50 steps an epoch.
class PhaseRunnerTest : public ::testing::Test {
 protected:
  PhaseRunnerTest() {
    spec_.set_batch_size(kBatch);
    spec_.set_epochs(2);
    spec_.set_eval_every_epoch(false);
    spec_.set_consistency(proto::BSP);
    spec_.mutable_cluster()->set_workers(2);
    spec_.mutable_cluster()->set_servers(1);
    spec_.mutable_data()->set_shards_per_worker(2);
    shape_.train_examples = 1000;
    shape_.test_examples = 200;
  }

  // Worker `rank` takes every lease left for it; returns the examples.
  int64_t LeaseAll(int rank) {
    int64_t examples = 0;
    for (proto::Lease lease = runner_.Lease(rank); lease.shard() >= 0; lease = runner_.Lease(rank)) {
      examples += lease.end() - lease.begin();
    }
    return examples;
  }

  proto::PhaseDone Report(const proto::Phase& phase, int64_t examples, int64_t steps) {
    proto::PhaseDone done;
    done.set_epoch(phase.epoch());
    done.set_test(phase.test());
    done.set_part(phase.part());
    done.set_examples(examples);
    done.set_steps(steps);
    done.set_loss_sum(0.5 * examples);
    done.set_correct(examples / 2);
    done.set_params_sha256("digest");
    return done;
  }

  // Begins the waiting phase over `live`; returns its START_PHASE.
  proto::Phase Begin(const std::vector<int>& live) {
    EXPECT_EQ(runner_.stage(), Stage::kWaiting);
    PhaseRunner::Actions a = runner_.Begin(live, now_);
    EXPECT_TRUE(a.start.has_value());
    EXPECT_EQ(runner_.stage(), Stage::kRunning);
    return a.start.value_or(proto::Phase());
  }

  // Every worker of `live` leases all it gets and reports; returns the
  // actions after the last report.
  PhaseRunner::Actions RunPart(const proto::Phase& phase, const std::vector<int>& live) {
    PhaseRunner::Actions last;
    for (int rank : live) {
      const int64_t examples = LeaseAll(rank);
      StatusOr<PhaseRunner::Actions> a =
          runner_.PhaseDone(rank, Report(phase, examples, phase.steps()), static_cast<int>(live.size()), now_);
      EXPECT_OK(a.status());
      if (a.ok()) last = *a;
    }
    return last;
  }

  proto::JobSpec spec_;
  JobShape shape_;
  JobResults results_;
  PhaseRunner runner_{spec_, &shape_, &results_};
  Clock::TimePoint now_{std::chrono::seconds(100)};
};

TEST_F(PhaseRunnerTest, AnEpochIsOnePartWhoseReportsAreSummedAndItsEndHoldsTheNextPhase) {
  EXPECT_EQ(runner_.stage(), Stage::kForming);
  runner_.Proceed(NextPhase::Training(0));
  const proto::Phase phase = Begin({0, 1});
  EXPECT_FALSE(phase.test());
  EXPECT_EQ(phase.part(), 0);
  EXPECT_EQ(phase.first_step(), 0);
  EXPECT_EQ(phase.steps(), 50);

  const int64_t first = LeaseAll(0);
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(0, Report(phase, first, 50), 2, now_);
  ASSERT_OK(a.status());
  EXPECT_FALSE(a->epoch_ended.has_value());  // worker 1 has not reported
  EXPECT_EQ(runner_.stage(), Stage::kRunning);

  now_ += std::chrono::seconds(4);
  a = runner_.PhaseDone(1, Report(phase, LeaseAll(1), 50), 2, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kHeld);
  ASSERT_TRUE(a->epoch_ended.has_value());
  EXPECT_EQ(a->epoch_ended->kind, NextPhase::Kind::kTraining);
  EXPECT_EQ(a->epoch_ended->epoch, 1);
  EXPECT_EQ(runner_.global_step(), 50);
  ASSERT_EQ(a->lines.size(), 1u);
  const std::string line = a->lines[0].ToString();
  EXPECT_NE(line.find("\"examples\": 1000"), std::string::npos) << line;
  EXPECT_NE(line.find("\"epoch_seconds\": 4"), std::string::npos) << line;
  EXPECT_EQ(line.find("parts"), std::string::npos) << line;
  EXPECT_DOUBLE_EQ(results_.last_train_loss, 0.5);
  EXPECT_EQ(results_.params_sha256, "digest");
}

TEST_F(PhaseRunnerTest, AWorkerLostMidPartHandsBackFromWhereItsPushesReachedAndTheOthersTrainTheRest) {
  runner_.Proceed(NextPhase::Training(0));
  const proto::Phase phase = Begin({0, 1});
  // Worker 1 takes its first shard and is lost after 7 steps (70 examples).
  ASSERT_GE(runner_.Lease(1).shard(), 0);
  EXPECT_TRUE(runner_.WorkerLost(1));
  EXPECT_TRUE(runner_.epoch_disturbed());
  runner_.WaitForReach(1, /*change_seq=*/4);
  proto::RankReach reach;
  reach.set_rank(1);
  reach.set_min_step(6);
  reach.set_max_step(6);
  reach.set_has_slices(true);
  runner_.ReachReported(4, reach);

  // Worker 0 reports, but how far worker 1 got is not settled yet: the part goes on.
  const int64_t examples0 = LeaseAll(0);
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(0, Report(phase, examples0, 50), 1, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kRunning);

  // Every server has the change: its positions from step 7 on go back, a continuation takes them.
  runner_.ChangeAcknowledged(4);
  a = runner_.FinishPartIfComplete(1, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kWaiting);
  EXPECT_EQ(runner_.next().kind, NextPhase::Kind::kContinuation);
  EXPECT_EQ(runner_.global_step(), 50);

  const proto::Phase continuation = Begin({0});
  EXPECT_EQ(continuation.part(), 1);
  EXPECT_EQ(continuation.first_step(), 50);
  EXPECT_EQ(continuation.steps(), 43);  // 180 left of its first shard, its second shard's 250
  const int64_t rest = LeaseAll(0);
  EXPECT_EQ(rest, 430);
  a = runner_.PhaseDone(0, Report(continuation, rest, 43), 1, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kHeld);
  EXPECT_EQ(runner_.global_step(), 93);
  ASSERT_EQ(a->lines.size(), 1u);
  const std::string line = a->lines[0].ToString();
  EXPECT_NE(line.find("\"examples\": 1000"), std::string::npos) << line;  // each position once
  EXPECT_NE(line.find("\"parts\": 2"), std::string::npos) << line;
  EXPECT_NE(line.find("\"examples_of_lost_workers\": 70"), std::string::npos) << line;
  EXPECT_NE(line.find("\"workers\": 1"), std::string::npos) << line;
}

TEST_F(PhaseRunnerTest, AWorkerLostInAnEvaluationGivesItsTestShardsBackAtOnce) {
  runner_.Proceed(NextPhase::Evaluation(1));
  const proto::Phase phase = Begin({0, 1});
  EXPECT_TRUE(phase.test());
  EXPECT_TRUE(phase.final());
  EXPECT_TRUE(runner_.WorkerLost(0));  // the reporter
  EXPECT_FALSE(runner_.epoch_disturbed());
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, Report(phase, LeaseAll(1), 0), 1, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kWaiting);
  EXPECT_EQ(runner_.next().kind, NextPhase::Kind::kContinuation);

  const proto::Phase continuation = Begin({1});
  EXPECT_EQ(continuation.reporter_rank(), 1);
  const int64_t rest = LeaseAll(1);
  EXPECT_EQ(rest, 100);
  a = runner_.PhaseDone(1, Report(continuation, rest, 0), 1, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kDone);
  EXPECT_DOUBLE_EQ(results_.test_accuracy, 0.5);
}

// Each worker's counts per (true, predicted) class are merged into the
// evaluation's figures per class, named by the job's class names.
TEST_F(PhaseRunnerTest, AnEvaluationMergesTheWorkersClassCountsIntoFiguresPerClass) {
  shape_.num_classes = 2;
  shape_.class_names = {"cat", "dog"};
  runner_.Proceed(NextPhase::Evaluation(1));
  const proto::Phase phase = Begin({0, 1});
  // Worker 0: 100 cats, 80 called cats; worker 1: 100 dogs, 90 called dogs.
  const auto counts = [](int64_t true_class, int64_t right, int64_t wrong) {
    ClassificationMetrics m(2);
    for (int64_t i = 0; i < right; ++i) EXPECT_OK(m.Add(true_class, true_class));
    for (int64_t i = 0; i < wrong; ++i) EXPECT_OK(m.Add(true_class, 1 - true_class));
    return m.Serialize();
  };
  proto::PhaseDone done0 = Report(phase, LeaseAll(0), 0);
  ASSERT_EQ(done0.examples(), 100);
  done0.set_class_metrics(counts(0, 80, 20));
  ASSERT_OK(runner_.PhaseDone(0, done0, 2, now_).status());
  proto::PhaseDone done1 = Report(phase, LeaseAll(1), 0);
  done1.set_class_metrics(counts(1, 90, 10));
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, done1, 2, now_);
  ASSERT_OK(a.status());
  ASSERT_EQ(a->lines.size(), 1u);
  const std::string line = a->lines[0].ToString();
  // cat: precision 80/(80+10), recall 80/100; dog: precision 90/(90+20), recall 90/100.
  EXPECT_NE(line.find("\"confusion\": {\"cat\": {\"cat\": 80, \"dog\": 20}, \"dog\": {\"cat\": 10, \"dog\": 90}}"),
            std::string::npos)
      << line;
  ASSERT_TRUE(results_.classification.has_value());
  EXPECT_DOUBLE_EQ(results_.classification->precision[0], 80.0 / 90.0);
  EXPECT_DOUBLE_EQ(results_.classification->recall[1], 0.9);
  EXPECT_EQ(results_.classification->examples, 200);
}

// Counts that do not parse, or that do not add up to the report's examples,
// leave the evaluation without figures per class; nothing else changes.
TEST_F(PhaseRunnerTest, UnusableClassCountsLeaveTheEvaluationWithoutFiguresPerClass) {
  shape_.num_classes = 2;
  shape_.class_names = {"0", "1"};
  for (const std::string& bad : {std::string("junk"), ClassificationMetrics(2).Serialize()}) {
    runner_.Proceed(NextPhase::Evaluation(0));
    const proto::Phase phase = Begin({0, 1});
    proto::PhaseDone done0 = Report(phase, LeaseAll(0), 0);
    done0.set_class_metrics(bad);  // junk, or counts of 0 examples for a report of 100
    ASSERT_OK(runner_.PhaseDone(0, done0, 2, now_).status());
    StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, Report(phase, LeaseAll(1), 0), 2, now_);
    ASSERT_OK(a.status());
    ASSERT_EQ(a->lines.size(), 1u);
    EXPECT_EQ(a->lines[0].ToString().find("classification"), std::string::npos) << a->lines[0].ToString();
    EXPECT_FALSE(results_.classification.has_value());
    EXPECT_DOUBLE_EQ(results_.test_accuracy, 0.5);
  }
}

// A binary job's workers send (label, probability) pairs and a regression's
// (target, prediction) pairs; the evaluation's figures are those of all of
// them, in the eval line and the results; a part missing drops them.
TEST_F(PhaseRunnerTest, AnEvaluationMergesBinaryAndRegressionMetrics) {
  shape_.task.loss = proto::SIGMOID_BINARY_CROSS_ENTROPY;
  runner_.Proceed(NextPhase::Evaluation(1));
  proto::Phase phase = Begin({0, 1});
  // Worker 0: 100 positives at 0.9; worker 1: 100 negatives, 50 at 0.95 and 50 at 0.1.
  BinaryMetrics positives, negatives;
  for (int i = 0; i < 100; ++i) EXPECT_OK(positives.Add(1, 0.9));
  for (int i = 0; i < 100; ++i) EXPECT_OK(negatives.Add(0, i < 50 ? 0.95 : 0.1));
  proto::PhaseDone done0 = Report(phase, LeaseAll(0), 0);
  done0.set_binary_metrics(positives.Serialize());
  ASSERT_OK(runner_.PhaseDone(0, done0, 2, now_).status());
  proto::PhaseDone done1 = Report(phase, LeaseAll(1), 0);
  done1.set_binary_metrics(negatives.Serialize());
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, done1, 2, now_);
  ASSERT_OK(a.status());
  ASSERT_EQ(a->lines.size(), 1u);
  EXPECT_NE(a->lines[0].ToString().find("\"binary\": {\"examples\": 200, \"positives\": 100, \"negatives\": 100, "
                                        "\"auc\": 0.5,"),
            std::string::npos)
      << a->lines[0].ToString();
  ASSERT_TRUE(results_.binary.has_value());
  EXPECT_DOUBLE_EQ(results_.binary->auc, 0.5);  // each positive beats half the negatives
  EXPECT_DOUBLE_EQ(results_.binary->accuracy, 150.0 / 200);
  EXPECT_FALSE(results_.classification.has_value());

  shape_.task.loss = proto::MEAN_SQUARED_ERROR;
  runner_.Proceed(NextPhase::Evaluation(1));
  phase = Begin({0, 1});
  RegressionMetrics low, high;
  for (int i = 0; i < 100; ++i) EXPECT_OK(low.Add(0, 1));
  for (int i = 0; i < 100; ++i) EXPECT_OK(high.Add(4, 3));
  done0 = Report(phase, LeaseAll(0), 0);
  done0.set_regression_metrics(low.Serialize());
  ASSERT_OK(runner_.PhaseDone(0, done0, 2, now_).status());
  done1 = Report(phase, LeaseAll(1), 0);
  done1.set_regression_metrics(high.Serialize());
  a = runner_.PhaseDone(1, done1, 2, now_);
  ASSERT_OK(a.status());
  ASSERT_TRUE(results_.regression.has_value());
  EXPECT_DOUBLE_EQ(results_.regression->rmse, 1);
  EXPECT_DOUBLE_EQ(results_.regression->r2, 1 - 200.0 / 800);  // targets 0 and 4 about their mean 2
  EXPECT_FALSE(results_.binary.has_value());

  // A worker without its part (its metrics were unusable): no figures, the loss still counts.
  runner_.Proceed(NextPhase::Evaluation(1));
  phase = Begin({0, 1});
  done0 = Report(phase, LeaseAll(0), 0);
  done0.set_regression_metrics(low.Serialize());
  ASSERT_OK(runner_.PhaseDone(0, done0, 2, now_).status());
  a = runner_.PhaseDone(1, Report(phase, LeaseAll(1), 0), 2, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(a->lines[0].ToString().find("regression"), std::string::npos) << a->lines[0].ToString();
  EXPECT_FALSE(results_.regression.has_value());
}

TEST_F(PhaseRunnerTest, ReportsForAnotherPartAndSecondReportsAreDropped) {
  runner_.Proceed(NextPhase::Training(0));
  const proto::Phase phase = Begin({0, 1});
  proto::Phase other = phase;
  other.set_part(3);
  ASSERT_OK(runner_.PhaseDone(0, Report(other, 500, 50), 2, now_).status());
  ASSERT_OK(runner_.PhaseDone(0, Report(phase, LeaseAll(0), 50), 2, now_).status());
  ASSERT_OK(runner_.PhaseDone(0, Report(phase, 500, 50), 2, now_).status());
  EXPECT_EQ(runner_.stage(), Stage::kRunning);  // worker 1 still owes its report
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, Report(phase, LeaseAll(1), 50), 2, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kHeld);
}

TEST_F(PhaseRunnerTest, AfterAStopTheRunningPartIsSummedAndNothingFollows) {
  runner_.Proceed(NextPhase::Training(0));
  const proto::Phase phase = Begin({0, 1});
  runner_.Stop();
  PhaseRunner::Actions a = RunPart(phase, {0, 1});
  EXPECT_FALSE(a.epoch_ended.has_value());
  EXPECT_TRUE(a.lines.empty());
  EXPECT_EQ(runner_.stage(), Stage::kStopping);
  EXPECT_EQ(runner_.global_step(), 50);
  runner_.Proceed(NextPhase::Training(1));
  EXPECT_EQ(runner_.stage(), Stage::kStopping);
}

TEST_F(PhaseRunnerTest, AnEpochThatDidNotCountEveryExampleFailsTheJob) {
  runner_.Proceed(NextPhase::Training(0));
  const proto::Phase phase = Begin({0, 1});
  ASSERT_OK(runner_.PhaseDone(0, Report(phase, LeaseAll(0), 50), 2, now_).status());
  LeaseAll(1);
  StatusOr<PhaseRunner::Actions> a = runner_.PhaseDone(1, Report(phase, 499, 50), 2, now_);
  EXPECT_EQ(a.status().code(), StatusCode::kInternal);
  EXPECT_NE(a.status().message().find("trained on 999 examples"), std::string::npos) << a.status().ToString();
}

TEST_F(PhaseRunnerTest, AResumedEpochStartsItsPartAtTheStepsItAlreadyHolds) {
  runner_.ResumeAt(/*step=*/70, /*epoch=*/1);
  runner_.Proceed(NextPhase::Training(1, /*skip_steps=*/20));
  const proto::Phase phase = Begin({0, 1});
  EXPECT_EQ(phase.first_step(), 50);
  EXPECT_EQ(phase.skip_steps(), 20);
  EXPECT_EQ(runner_.epoch_end_step(), 100);
}

// Resumed from a cut inside epoch 2 (20 of its 50 steps done) whose
// manifest kept the workers' loss sums: each worker goes on from its own
// (START_PHASE carries them by rank), so its report covers the whole epoch,
// and train_loss is over every example of it, those before the cut included.
TEST_F(PhaseRunnerTest, AResumedEpochsWorkersGoOnFromTheirLossSumsAndItsTrainLossCoversItAll) {
  runner_.ResumeAt(/*step=*/70, /*epoch=*/0, {LossSums{60.5, 200}, LossSums{70.25, 200}});
  runner_.Proceed(NextPhase::Training(1, /*skip_steps=*/20));
  const proto::Phase phase = Begin({0, 1});
  ASSERT_EQ(phase.resumed_loss_sums_size(), 2);
  EXPECT_EQ(phase.resumed_loss_sums(0), 60.5);
  EXPECT_EQ(phase.resumed_loss_sums(1), 70.25);
  // The loss sums of the epoch go on from the cut's, for the next cut inside it.
  const EpochLossLedger::SumsAt start = runner_.losses().At(1, 70);
  ASSERT_EQ(start.state, EpochLossLedger::State::kKnown);
  EXPECT_EQ(start.ranks[1], (LossSums{70.25, 200}));

  for (int rank : {0, 1}) {
    LeaseAll(rank);
    proto::PhaseDone done = Report(phase, /*examples=*/300, /*steps=*/50);
    done.set_skipped_examples(200);
    done.set_loss_sum(phase.resumed_loss_sums(rank) + 100 * (rank + 1));  // the worker's sum from its start
    ASSERT_OK(runner_.PhaseDone(rank, done, 2, now_).status());
  }
  EXPECT_EQ(runner_.stage(), Stage::kHeld);
  EXPECT_EQ(results_.last_train_loss, (160.5 + 270.25) / 1000);

  // The next epoch starts afresh.
  runner_.Proceed(NextPhase::Training(2));
  EXPECT_EQ(Begin({0, 1}).resumed_loss_sums_size(), 0);
}

// A manifest written before the sums were kept: the resumed epoch's
// train_loss is over the examples trained after the cut.
TEST_F(PhaseRunnerTest, AResumedEpochWithoutLossSumsReportsTheStepsAfterTheCut) {
  runner_.ResumeAt(/*step=*/70, /*epoch=*/0);
  runner_.Proceed(NextPhase::Training(1, /*skip_steps=*/20));
  const proto::Phase phase = Begin({0, 1});
  EXPECT_EQ(phase.resumed_loss_sums_size(), 0);
  for (int rank : {0, 1}) {
    LeaseAll(rank);
    proto::PhaseDone done = Report(phase, 300, 50);
    done.set_skipped_examples(200);
    ASSERT_OK(runner_.PhaseDone(rank, done, 2, now_).status());
  }
  EXPECT_EQ(results_.last_train_loss, 0.5);
}

// Every worker of a BSP part lost: the part ends where their pushes reached
// (step 12 was pushed to some slices), not at its planned end; the servers
// must move every slice up to step 13 before the continuation begins there.
TEST_F(PhaseRunnerTest, AllWorkersLostEndTheirPartWhereTheirPushesReached) {
  runner_.Proceed(NextPhase::Training(0));
  Begin({0, 1});
  for (int rank : {0, 1}) {
    ASSERT_GE(runner_.Lease(rank).shard(), 0);
    EXPECT_TRUE(runner_.WorkerLost(rank));
    runner_.WaitForReach(rank, 7);
  }
  proto::RankReach reach;
  reach.set_has_slices(true);
  reach.set_rank(0);
  reach.set_min_step(11);
  reach.set_max_step(12);  // lost between the parts of its push for step 12
  runner_.ReachReported(7, reach);
  reach.set_rank(1);
  reach.set_min_step(11);
  reach.set_max_step(11);
  runner_.ReachReported(7, reach);
  runner_.ChangeAcknowledged(7);
  auto a = runner_.FinishPartIfComplete(0, now_);
  ASSERT_OK(a.status());
  EXPECT_EQ(runner_.stage(), Stage::kWaiting);
  EXPECT_EQ(runner_.global_step(), 13);
  EXPECT_TRUE(runner_.servers_must_advance());

  const proto::Phase continuation = Begin({1});
  EXPECT_EQ(continuation.first_step(), 13);
  EXPECT_FALSE(runner_.servers_must_advance());
  // Each lost worker used its first 12 steps (120 examples); the rest is the continuation's.
  EXPECT_EQ(LeaseAll(1), 1000 - 240);
}


// With a validation split: 1000 training and 100 validation examples, 200
// test examples, 2 workers; 5 epochs with early stopping after 2
// validations without a lower loss.
class ValidationPhaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.set_batch_size(kBatch);
    spec_.set_epochs(5);
    spec_.set_consistency(proto::BSP);
    spec_.mutable_cluster()->set_workers(2);
    spec_.mutable_data()->set_shards_per_worker(2);
    spec_.mutable_data()->set_validation_fraction(0.1f);
    spec_.mutable_early_stopping()->set_patience(2);
    shape_.train_examples = 1000;
    shape_.validation_examples = 100;
    shape_.test_examples = 200;
    runner_ = std::make_unique<PhaseRunner>(spec_, &shape_, &results_);
  }

  // Begins the waiting phase over both workers; each leases all it gets and
  // reports, every example at `loss`. Returns the actions after the last
  // report, and the phase in *phase.
  PhaseRunner::Actions RunPhase(double loss, proto::Phase* phase) {
    EXPECT_EQ(runner_->stage(), Stage::kWaiting);
    *phase = runner_->Begin({0, 1}, now_).start.value_or(proto::Phase());
    PhaseRunner::Actions last;
    for (int rank : {0, 1}) {
      proto::PhaseDone done;
      done.set_epoch(phase->epoch());
      done.set_test(phase->test());
      done.set_validation(phase->validation());
      done.set_part(phase->part());
      for (proto::Lease l = runner_->Lease(rank); l.shard() >= 0; l = runner_->Lease(rank)) {
        done.set_examples(done.examples() + l.end() - l.begin());
      }
      done.set_loss_sum(loss * done.examples());
      done.set_correct(done.examples() / 2);
      done.set_steps(phase->steps());
      StatusOr<PhaseRunner::Actions> a = runner_->PhaseDone(rank, done, 2, now_);
      EXPECT_OK(a.status());
      if (a.ok()) last = *a;
    }
    return last;
  }

  // Trains epoch `epoch`, then evaluates the validation set at `loss`;
  // returns the validation's actions.
  PhaseRunner::Actions EpochThenValidation(int epoch, double loss) {
    proto::Phase phase;
    const PhaseRunner::Actions trained = RunPhase(0.5, &phase);
    EXPECT_EQ(phase.epoch(), epoch);
    EXPECT_FALSE(phase.test());
    EXPECT_TRUE(trained.epoch_ended.has_value());
    if (!trained.epoch_ended.has_value()) return {};
    EXPECT_EQ(trained.epoch_ended->kind, NextPhase::Kind::kEvaluation);
    EXPECT_TRUE(trained.epoch_ended->validation) << "each epoch's evaluation is of the validation set";
    runner_->Proceed(*trained.epoch_ended);
    const PhaseRunner::Actions validated = RunPhase(loss, &phase);
    EXPECT_TRUE(phase.test());
    EXPECT_TRUE(phase.validation());
    EXPECT_FALSE(phase.final());
    return validated;
  }

  proto::JobSpec spec_;
  JobShape shape_;
  JobResults results_;
  std::unique_ptr<PhaseRunner> runner_;
  Clock::TimePoint now_{std::chrono::seconds(100)};
};

TEST_F(ValidationPhaseTest, EpochsAreValidatedAndTheTestSetOnlyAfterEarlyStoppingEndsTraining) {
  runner_->Proceed(NextPhase::Training(0));
  PhaseRunner::Actions a = EpochThenValidation(0, 0.8);
  ASSERT_EQ(a.lines.size(), 1u);
  std::string line = a.lines[0].ToString();
  EXPECT_NE(line.find("\"set\": \"validation\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"examples\": 100"), std::string::npos) << "every validation example, once: " << line;
  EXPECT_NE(line.find("\"improved\": true"), std::string::npos) << line;
  EXPECT_EQ(line.find("test_accuracy"), std::string::npos) << "the test set is not touched: " << line;
  EXPECT_EQ(a.new_best_step, 50);
  EXPECT_EQ(runner_->next().kind, NextPhase::Kind::kTraining);
  EXPECT_EQ(runner_->next().epoch, 1);

  a = EpochThenValidation(1, 0.6);  // the best: epoch 2, step 100
  EXPECT_EQ(a.new_best_step, 100);
  a = EpochThenValidation(2, 0.7);
  EXPECT_FALSE(a.new_best_step.has_value());
  EXPECT_EQ(runner_->next().kind, NextPhase::Kind::kTraining) << "one validation without improvement, patience 2";
  a = EpochThenValidation(3, 0.6);  // equal to the best: no improvement
  line = a.lines[0].ToString();
  EXPECT_NE(line.find("\"stop\": true"), std::string::npos) << line;
  EXPECT_NE(line.find("\"best_epoch\": 2"), std::string::npos) << line;
  EXPECT_NE(line.find("\"evaluations_without_improvement\": 2"), std::string::npos) << line;

  // Early stopping: the test set now, on the last parameters, and the job ends.
  ASSERT_EQ(runner_->next().kind, NextPhase::Kind::kEvaluation);
  EXPECT_FALSE(runner_->next().validation);
  EXPECT_EQ(runner_->next().epoch, 3);
  proto::Phase phase;
  a = RunPhase(0.4, &phase);
  EXPECT_TRUE(phase.test());
  EXPECT_FALSE(phase.validation());
  EXPECT_TRUE(phase.final());
  EXPECT_EQ(runner_->stage(), Stage::kDone);
  line = a.lines[0].ToString();
  EXPECT_NE(line.find("\"set\": \"test\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"examples\": 200"), std::string::npos) << line;
  EXPECT_DOUBLE_EQ(results_.test_loss, 0.4);
  EXPECT_EQ(results_.stopped_early_after_epoch, 4);
  ASSERT_TRUE(results_.best.has_value());
  EXPECT_EQ(results_.best->epoch, 1);
  EXPECT_EQ(results_.best->step, 100);
  EXPECT_EQ(results_.best->value, 0.6);
  EXPECT_EQ(results_.best_metric, "validation_loss");
}

TEST_F(ValidationPhaseTest, WithoutEarlyStoppingTheLastEpochIsValidatedThenTested) {
  spec_.mutable_early_stopping()->set_patience(0);
  spec_.set_epochs(2);
  runner_ = std::make_unique<PhaseRunner>(spec_, &shape_, &results_);
  runner_->Proceed(NextPhase::Training(0));
  EpochThenValidation(0, 0.5);
  const PhaseRunner::Actions last = EpochThenValidation(1, 0.9);
  EXPECT_NE(last.lines[0].ToString().find("\"stop\": false"), std::string::npos) << last.lines[0].ToString();
  ASSERT_EQ(runner_->next().kind, NextPhase::Kind::kEvaluation);
  EXPECT_FALSE(runner_->next().validation);
  proto::Phase phase;
  RunPhase(0.7, &phase);
  EXPECT_TRUE(phase.final());
  EXPECT_EQ(runner_->stage(), Stage::kDone);
  EXPECT_EQ(results_.stopped_early_after_epoch, 0);
  EXPECT_EQ(results_.best->epoch, 0);
}

TEST_F(ValidationPhaseTest, AValidationReportForTheTestSetIsDropped) {
  runner_->Proceed(NextPhase::Validation(0));
  const proto::Phase phase = runner_->Begin({0, 1}, now_).start.value_or(proto::Phase());
  ASSERT_TRUE(phase.validation());
  proto::PhaseDone done;
  done.set_epoch(0);
  done.set_test(true);  // but not of the validation set
  done.set_examples(50);
  StatusOr<PhaseRunner::Actions> a = runner_->PhaseDone(0, done, 2, now_);
  ASSERT_OK(a.status());
  EXPECT_TRUE(a->lines.empty());
  done.set_validation(true);
  EXPECT_OK(runner_->PhaseDone(0, done, 2, now_).status());
  EXPECT_EQ(runner_->stage(), Stage::kRunning) << "worker 1 has not reported";
}

TEST_F(ValidationPhaseTest, ARestoredStateGoesOnCountingFromWhereItWas) {
  BestSoFar restored;
  restored.epoch = 1;
  restored.step = 100;
  restored.value = 0.6;
  restored.evaluations_without_improvement = 1;
  runner_->RestoreBest(restored);
  runner_->ResumeAt(150, 3);
  runner_->Proceed(NextPhase::Training(3));
  const PhaseRunner::Actions a = EpochThenValidation(3, 0.65);
  EXPECT_NE(a.lines[0].ToString().find("\"stop\": true"), std::string::npos) << a.lines[0].ToString();
  EXPECT_EQ(runner_->next().kind, NextPhase::Kind::kEvaluation);
  EXPECT_EQ(results_.best->step, 100);
}

}  // namespace
}  // namespace tessera
