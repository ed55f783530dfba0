// EpochLossLedger (scheduler/epoch_loss_ledger.h): the workers' PROGRESS
// reports of a BSP epoch, step by step, and every worker's sums at a step.
#include "scheduler/epoch_loss_ledger.h"

#include <gtest/gtest.h>

#include <vector>

namespace tessera {
namespace {

using State = EpochLossLedger::State;

// A PROGRESS of epoch `epoch` reporting steps [first, first + losses.size()), `examples` each.
proto::Progress Report(int epoch, int64_t first, const std::vector<double>& losses, int64_t examples = 4) {
  proto::Progress p;
  p.set_epoch(epoch);
  p.set_step(first + static_cast<int64_t>(losses.size()));
  for (double loss : losses) {
    p.add_step_loss_sums(loss);
    p.add_step_examples(examples);
  }
  return p;
}

// Losses whose sum depends on the order they are added in.
const std::vector<double> kLosses = {0.1, 1e16, -1e16, 0.7, 3.3, 1.0 / 3};

TEST(EpochLossLedgerTest, TheSumsAtAStepAreTheWorkersOwnAdditionsInStepOrder) {
  EpochLossLedger ledger;
  ledger.Begin(/*epoch=*/2, /*from_step=*/100, {LossSums{}, LossSums{}});
  ledger.Report(0, Report(2, 100, {kLosses[0], kLosses[1]}));
  ledger.Report(0, Report(2, 102, {kLosses[2], kLosses[3], kLosses[4], kLosses[5]}));
  ledger.Report(1, Report(2, 100, kLosses, 3));
  double worker = 0;  // as a worker adds its steps up
  for (size_t i = 0; i < kLosses.size(); ++i) {
    const EpochLossLedger::SumsAt at = ledger.At(2, 100 + static_cast<int64_t>(i));
    ASSERT_EQ(at.state, State::kKnown) << i;
    ASSERT_EQ(at.ranks.size(), 2u);
    EXPECT_EQ(at.ranks[0].loss_sum, worker) << "bit for bit, at step " << 100 + i;
    EXPECT_EQ(at.ranks[0].examples, 4 * static_cast<int64_t>(i));
    EXPECT_EQ(at.ranks[1].examples, 3 * static_cast<int64_t>(i));
    worker += kLosses[i];
  }
  const EpochLossLedger::SumsAt end = ledger.At(2, 106);
  ASSERT_EQ(end.state, State::kKnown);
  EXPECT_EQ(end.ranks[0].loss_sum, worker);
  EXPECT_EQ(end.ranks[1].loss_sum, worker);
  EXPECT_NE(worker, ((0.1 + 0.7) + 3.3 + 1.0 / 3) + (1e16 - 1e16)) << "the losses are order-sensitive";
}

TEST(EpochLossLedgerTest, AStepIsPendingUntilEveryWorkerHasReportedPastIt) {
  EpochLossLedger ledger;
  ledger.Begin(0, 0, {LossSums{}, LossSums{}});
  ledger.Report(0, Report(0, 0, {1, 1, 1, 1, 1, 1}));
  ledger.Report(1, Report(0, 0, {2, 2}));
  EXPECT_EQ(ledger.At(0, 2).state, State::kKnown) << "worker 1 has done steps 0 and 1";
  EXPECT_EQ(ledger.At(0, 3).state, State::kPending);
  ledger.Report(1, Report(0, 2, {2}));
  const EpochLossLedger::SumsAt at = ledger.At(0, 3);
  ASSERT_EQ(at.state, State::kKnown);
  EXPECT_EQ(at.ranks[0], (LossSums{3, 12}));
  EXPECT_EQ(at.ranks[1], (LossSums{6, 12}));
}

// Resumed inside an epoch: the sums start from the checkpoint's at the step it was cut at.
TEST(EpochLossLedgerTest, AResumedEpochStartsFromTheSumsBeforeItsCut) {
  EpochLossLedger ledger;
  ledger.Begin(1, 70, {LossSums{5.5, 80}, LossSums{7.25, 80}});
  const EpochLossLedger::SumsAt start = ledger.At(1, 70);
  ASSERT_EQ(start.state, State::kKnown);
  EXPECT_EQ(start.ranks[1], (LossSums{7.25, 80}));
  EXPECT_EQ(ledger.At(1, 69).state, State::kUnknowable) << "before the ledger's start";
  ledger.Report(0, Report(1, 70, {0.5}));
  ledger.Report(1, Report(1, 70, {0.25}));
  const EpochLossLedger::SumsAt next = ledger.At(1, 71);
  ASSERT_EQ(next.state, State::kKnown);
  EXPECT_EQ(next.ranks[0], (LossSums{6, 84}));
  EXPECT_EQ(next.ranks[1], (LossSums{7.5, 84}));
}

// A report that does not go on where the worker's last one ended (a lost
// message) makes its sums unknown from there: a cut must not wait for them.
TEST(EpochLossLedgerTest, AGapInAWorkersReportsMakesItsSumsUnknowable) {
  EpochLossLedger ledger;
  ledger.Begin(0, 0, {LossSums{}, LossSums{}});
  ledger.Report(0, Report(0, 0, {1, 1}));
  ledger.Report(1, Report(0, 0, {1, 1}));
  ledger.Report(1, Report(0, 3, {1}));  // step 2 is missing
  EXPECT_EQ(ledger.At(0, 1).state, State::kUnknowable);
  ledger.Report(1, Report(0, 2, {1}));  // too late: it stays unknown
  EXPECT_EQ(ledger.At(0, 2).state, State::kUnknowable);

  proto::Progress uneven = Report(0, 2, {1, 1});
  uneven.add_step_examples(4);
  EpochLossLedger other;
  other.Begin(0, 0, {LossSums{}});
  other.Report(0, uneven);
  EXPECT_EQ(other.At(0, 0).state, State::kUnknowable) << "as many losses as example counts, or nothing";
}

TEST(EpochLossLedgerTest, AnotherEpochOrAStoppedLedgerKnowsNothing) {
  EpochLossLedger ledger;
  EXPECT_EQ(ledger.At(0, 0).state, State::kUnknowable) << "before any epoch";
  ledger.Begin(3, 30, {LossSums{}});
  ledger.Report(0, Report(2, 30, {1, 1}));  // a late report of the epoch before: ignored
  EXPECT_EQ(ledger.At(3, 31).state, State::kPending);
  EXPECT_EQ(ledger.At(2, 31).state, State::kUnknowable);
  ledger.Report(0, Report(3, 30, {1, 1}));
  EXPECT_EQ(ledger.At(3, 32).state, State::kKnown);
  ledger.Stop();
  EXPECT_EQ(ledger.At(3, 32).state, State::kUnknowable);
  ledger.Report(0, Report(3, 32, {1}));  // ignored once stopped
  EXPECT_EQ(ledger.At(3, 33).state, State::kUnknowable);
}

}  // namespace
}  // namespace tessera
