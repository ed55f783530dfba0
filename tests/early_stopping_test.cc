// The best epoch and the early-stopping rule on hand-made sequences of
// validation figures.
#include "scheduler/early_stopping.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace tessera {
namespace {

using Metric = proto::EarlyStoppingSpec;

proto::EarlyStoppingSpec Spec(Metric::Metric metric, int patience, float min_delta = 0) {
  proto::EarlyStoppingSpec spec;
  spec.set_metric(metric);
  spec.set_patience(patience);
  spec.set_min_delta(min_delta);
  return spec;
}

// Observes `values` as epochs 0, 1, ... (step 10 per epoch) until the rule
// says stop; returns how many it observed.
int EpochsUntilStop(EarlyStopping* rule, const std::vector<double>& values) {
  int observed = 0;
  for (double value : values) {
    rule->Observe(observed, 10 * (observed + 1), value);
    ++observed;
    if (rule->ShouldStop()) break;
  }
  return observed;
}

TEST(EarlyStoppingTest, TheLowestLossIsTheBestAndPatienceCountsTheEvaluationsAfterIt) {
  EarlyStopping rule(Spec(Metric::VALIDATION_LOSS, 2));
  EXPECT_EQ(rule.metric_name(), "validation_loss");
  EXPECT_FALSE(rule.has_best());
  EXPECT_TRUE(rule.Observe(0, 10, 0.9));
  EXPECT_TRUE(rule.Observe(1, 20, 0.7));
  EXPECT_FALSE(rule.Observe(2, 30, 0.8));
  EXPECT_FALSE(rule.ShouldStop()) << "one evaluation without improvement, patience 2";
  EXPECT_TRUE(rule.Observe(3, 40, 0.6)) << "an improvement resets the count";
  EXPECT_EQ(rule.best().evaluations_without_improvement, 0);
  EXPECT_FALSE(rule.Observe(4, 50, 0.6)) << "equal is no improvement: the first of equals stays best";
  EXPECT_FALSE(rule.Observe(5, 60, 1.5));
  EXPECT_TRUE(rule.ShouldStop());
  EXPECT_EQ(rule.best().epoch, 3);
  EXPECT_EQ(rule.best().step, 40);
  EXPECT_EQ(rule.best().value, 0.6);
  EXPECT_EQ(rule.best().evaluations_without_improvement, 2);
}

TEST(EarlyStoppingTest, MinDeltaIsTheMarginAnImprovementMustExceed) {
  // Loss falling by 0.002 an epoch: with min_delta 0.01 none of the falls counts.
  const std::vector<double> slow = {1.0, 0.998, 0.996, 0.994, 0.992, 0.990};
  EarlyStopping strict(Spec(Metric::VALIDATION_LOSS, 3, 0.01f));
  EXPECT_EQ(EpochsUntilStop(&strict, slow), 4);
  EXPECT_EQ(strict.best().epoch, 0);
  // Without the margin every fall is an improvement and the job never stops.
  EarlyStopping plain(Spec(Metric::VALIDATION_LOSS, 3));
  EXPECT_EQ(EpochsUntilStop(&plain, slow), 6);
  EXPECT_EQ(plain.best().epoch, 5);
  // A fall of more than min_delta is an improvement (0.98 < 1.0 - 0.01).
  EarlyStopping margin(Spec(Metric::VALIDATION_LOSS, 1, 0.01f));
  EXPECT_TRUE(margin.Observe(0, 1, 1.0));
  EXPECT_TRUE(margin.Observe(1, 2, 0.98));
  EXPECT_FALSE(margin.Observe(2, 3, 0.975));
  EXPECT_TRUE(margin.ShouldStop());
}

TEST(EarlyStoppingTest, AccuracyAndMacroF1AreBetterHigher) {
  EarlyStopping accuracy(Spec(Metric::VALIDATION_ACCURACY, 1, 0.001f));
  EXPECT_EQ(accuracy.metric_name(), "validation_accuracy");
  EXPECT_DOUBLE_EQ(accuracy.MetricOf(0.5, 0.8, 0.7), 0.8);
  EXPECT_TRUE(accuracy.Observe(0, 1, 0.80));
  EXPECT_TRUE(accuracy.Observe(1, 2, 0.85));
  EXPECT_FALSE(accuracy.Observe(2, 3, 0.8505)) << "not above 0.85 + 0.001";
  EXPECT_TRUE(accuracy.ShouldStop());
  EXPECT_EQ(accuracy.best().epoch, 1);

  EarlyStopping f1(Spec(Metric::VALIDATION_MACRO_F1, 2));
  EXPECT_EQ(f1.metric_name(), "validation_macro_f1");
  EXPECT_DOUBLE_EQ(f1.MetricOf(0.5, 0.8, 0.7), 0.7);
  EXPECT_TRUE(std::isnan(f1.MetricOf(0.5, 0.8, std::nullopt))) << "an unknown macro F1";
  EXPECT_EQ(EpochsUntilStop(&f1, {0.5, 0.6, 0.55, 0.7, 0.69, 0.68, 0.9}), 6);
  EXPECT_EQ(f1.best().epoch, 3);
}

TEST(EarlyStoppingTest, AucIsBetterHigherAndTheErrorsLower) {
  EvalFigures figures;
  figures.loss = 0.4;
  figures.binary = BinaryResult{};
  figures.binary->auc_defined = true;
  figures.binary->auc = 0.93;
  figures.binary->log_loss = 0.31;

  EarlyStopping auc(Spec(Metric::VALIDATION_AUC, 1));
  EXPECT_EQ(auc.metric_name(), "validation_auc");
  EXPECT_FALSE(auc.lower_is_better());
  EXPECT_DOUBLE_EQ(auc.MetricOf(figures), 0.93);
  EXPECT_TRUE(auc.Observe(0, 1, 0.93));
  EXPECT_FALSE(auc.Observe(1, 2, 0.92));
  EXPECT_TRUE(auc.ShouldStop());
  figures.binary->auc_defined = false;
  EXPECT_TRUE(std::isnan(auc.MetricOf(figures))) << "an AUC of one class only";

  EarlyStopping log_loss(Spec(Metric::VALIDATION_LOG_LOSS, 0));
  EXPECT_EQ(log_loss.metric_name(), "validation_log_loss");
  EXPECT_DOUBLE_EQ(log_loss.MetricOf(figures), 0.31);
  EXPECT_TRUE(log_loss.Observe(0, 1, 0.31));
  EXPECT_TRUE(log_loss.Observe(1, 2, 0.30));

  figures.binary.reset();
  figures.regression = RegressionResult{};
  figures.regression->rmse = 1.5;
  figures.regression->mae = 1.25;
  EarlyStopping rmse(Spec(Metric::VALIDATION_RMSE, 2, 0.1f));
  EXPECT_EQ(rmse.metric_name(), "validation_rmse");
  EXPECT_TRUE(rmse.lower_is_better());
  EXPECT_DOUBLE_EQ(rmse.MetricOf(figures), 1.5);
  EXPECT_EQ(EpochsUntilStop(&rmse, {2.0, 1.5, 1.45, 1.3, 1.25, 1.22}), 6);
  EXPECT_EQ(rmse.best().epoch, 3) << "1.45 and 1.25 do not beat the best by more than 0.1";
  EarlyStopping mae(Spec(Metric::VALIDATION_MAE, 0));
  EXPECT_EQ(mae.metric_name(), "validation_mae");
  EXPECT_DOUBLE_EQ(mae.MetricOf(figures), 1.25);
  figures.regression.reset();
  EXPECT_TRUE(std::isnan(mae.MetricOf(figures))) << "no regression figures";
}

TEST(EarlyStoppingTest, ANaNNeverImproves) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EarlyStopping rule(Spec(Metric::VALIDATION_LOSS, 2));
  EXPECT_FALSE(rule.Observe(0, 10, nan));
  EXPECT_FALSE(rule.has_best());
  EXPECT_TRUE(rule.Observe(1, 20, 2.0));
  EXPECT_FALSE(rule.Observe(2, 30, nan));
  EXPECT_FALSE(rule.Observe(3, 40, nan));
  EXPECT_TRUE(rule.ShouldStop());
  EXPECT_EQ(rule.best().epoch, 1);
}

TEST(EarlyStoppingTest, PatienceZeroRecordsTheBestAndNeverStops) {
  EarlyStopping rule(Spec(Metric::VALIDATION_LOSS, 0));
  EXPECT_EQ(EpochsUntilStop(&rule, {0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1}), 7);
  EXPECT_FALSE(rule.ShouldStop());
  EXPECT_EQ(rule.best().epoch, 0);
  EXPECT_EQ(rule.best().evaluations_without_improvement, 6);
}

TEST(EarlyStoppingTest, ARestoredStateDecidesAsTheRunThatRecordedIt) {
  const std::vector<double> values = {0.9, 0.7, 0.8, 0.75, 0.72, 0.6};
  EarlyStopping whole(Spec(Metric::VALIDATION_LOSS, 3));
  EarlyStopping first(Spec(Metric::VALIDATION_LOSS, 3));
  for (int e = 0; e < 3; ++e) {
    whole.Observe(e, e, values[e]);
    first.Observe(e, e, values[e]);
  }
  EarlyStopping resumed(Spec(Metric::VALIDATION_LOSS, 3));
  resumed.Restore(first.best());
  for (int e = 3; e < 6; ++e) {
    EXPECT_EQ(resumed.Observe(e, e, values[e]), whole.Observe(e, e, values[e])) << "epoch " << e;
    EXPECT_EQ(resumed.ShouldStop(), whole.ShouldStop()) << "epoch " << e;
  }
  EXPECT_EQ(resumed.best().epoch, whole.best().epoch);
  EXPECT_EQ(resumed.best().value, whole.best().value);
}

}  // namespace
}  // namespace tessera
