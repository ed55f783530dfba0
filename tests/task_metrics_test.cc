#include "core/task_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/json.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Little-endian bytes, for hand-made wire input.
template <typename T>
std::string Le(T value) {
  std::string out(sizeof(T), '\0');
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

std::string Header(char tag) { return std::string{tag, '\x01'}; }

void ExpectSameResult(const ClassificationResult& a, const ClassificationResult& b) {
  EXPECT_EQ(a.num_classes, b.num_classes);
  EXPECT_EQ(a.examples, b.examples);
  EXPECT_EQ(a.correct, b.correct);
  EXPECT_EQ(a.accuracy, b.accuracy);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.recall, b.recall);
  EXPECT_EQ(a.f1, b.f1);
  EXPECT_EQ(a.support, b.support);
  EXPECT_EQ(a.macro_f1, b.macro_f1);
  EXPECT_EQ(a.confusion, b.confusion);
}

// Bit for bit: EXPECT_EQ on doubles is exact.
void ExpectSameResult(const BinaryResult& a, const BinaryResult& b) {
  EXPECT_EQ(a.examples, b.examples);
  EXPECT_EQ(a.positives, b.positives);
  EXPECT_EQ(a.negatives, b.negatives);
  EXPECT_EQ(a.auc_defined, b.auc_defined);
  EXPECT_EQ(a.auc, b.auc);
  EXPECT_EQ(a.log_loss, b.log_loss);
  EXPECT_EQ(a.correct, b.correct);
  EXPECT_EQ(a.accuracy, b.accuracy);
}

void ExpectSameResult(const RegressionResult& a, const RegressionResult& b) {
  EXPECT_EQ(a.examples, b.examples);
  EXPECT_EQ(a.rmse, b.rmse);
  EXPECT_EQ(a.mae, b.mae);
  EXPECT_EQ(a.r2_defined, b.r2_defined);
  EXPECT_EQ(a.r2, b.r2);
}

// ---------------------------------------------------------------------------
// Classification

// cat = 0, dog = 1, bird = 2; (true, predicted):
//   cat:  cat, cat, dog     row 0 = [2, 1, 0]
//   dog:  dog, dog, bird    row 1 = [0, 2, 1]
//   bird: cat               row 2 = [1, 0, 0]
ClassificationMetrics CatDogBird() {
  ClassificationMetrics m(3);
  for (const auto& [t, p] : std::vector<std::pair<int, int>>{{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {1, 2}, {2, 0}}) {
    EXPECT_OK(m.Add(t, p));
  }
  return m;
}

TEST(TaskMetricsClassificationTest, HandComputedFigures) {
  const ClassificationResult r = CatDogBird().Result();
  // 7 examples, correct = 2 + 2 + 0 = 4.
  EXPECT_EQ(r.examples, 7);
  EXPECT_EQ(r.correct, 4);
  EXPECT_DOUBLE_EQ(r.accuracy, 4.0 / 7);
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 2, 1}, {1, 0, 0}}));
  // Column sums (predicted): 3, 3, 1. Row sums (support): 3, 3, 1.
  //   cat:  tp 2, fp 1, fn 1: P 2/3, R 2/3, F1 4/6 = 2/3
  //   dog:  tp 2, fp 1, fn 1: P 2/3, R 2/3, F1 2/3
  //   bird: tp 0, fp 1, fn 1: P 0/1, R 0/1, F1 0
  // macro-F1 = (2/3 + 2/3 + 0) / 3 = 4/9.
  EXPECT_EQ(r.support, (std::vector<int64_t>{3, 3, 1}));
  for (int c : {0, 1}) {
    EXPECT_DOUBLE_EQ(r.precision[c], 2.0 / 3) << c;
    EXPECT_DOUBLE_EQ(r.recall[c], 2.0 / 3) << c;
    EXPECT_DOUBLE_EQ(r.f1[c], 2.0 / 3) << c;
  }
  EXPECT_EQ(r.precision[2], 0);
  EXPECT_EQ(r.recall[2], 0);
  EXPECT_EQ(r.f1[2], 0);
  EXPECT_DOUBLE_EQ(r.macro_f1, 4.0 / 9);
}

TEST(TaskMetricsClassificationTest, ZeroDenominatorsAreZeroAndUnseenClassesLeaveMacroF1) {
  // 4 classes; (true, predicted): (0,0), (0,2), (1,0). Class 3 occurs nowhere.
  //   class 0: tp 1, fp 1 (the 1 predicted 0), fn 1: P 1/2, R 1/2, F1 2/4 = 1/2
  //   class 1: tp 0, fp 0, fn 1: precision 0/0 -> 0, R 0/1 = 0, F1 0/1 = 0
  //   class 2: tp 0, fp 1, fn 0: P 0/1 = 0, recall 0/0 -> 0, F1 0/1 = 0
  //   class 3: tp = fp = fn = 0: all 0/0 -> 0, and left out of macro-F1
  // macro-F1 = (1/2 + 0 + 0) / 3 = 1/6; accuracy 1/3.
  ClassificationMetrics m(4);
  ASSERT_OK(m.Add(0, 0));
  ASSERT_OK(m.Add(0, 2));
  ASSERT_OK(m.Add(1, 0));
  const ClassificationResult r = m.Result();
  EXPECT_EQ(r.precision, (std::vector<double>{0.5, 0, 0, 0}));
  EXPECT_EQ(r.recall, (std::vector<double>{0.5, 0, 0, 0}));
  EXPECT_EQ(r.f1, (std::vector<double>{0.5, 0, 0, 0}));
  EXPECT_EQ(r.support, (std::vector<int64_t>{2, 1, 0, 0}));
  EXPECT_DOUBLE_EQ(r.macro_f1, 1.0 / 6);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0 / 3);
}

TEST(TaskMetricsClassificationTest, NoExamplesGivesZeros) {
  const ClassificationResult r = ClassificationMetrics(2).Result();
  EXPECT_EQ(r.num_classes, 2);
  EXPECT_EQ(r.examples, 0);
  EXPECT_EQ(r.accuracy, 0);
  EXPECT_EQ(r.macro_f1, 0);
  EXPECT_EQ(r.precision, (std::vector<double>{0, 0}));
  EXPECT_EQ(r.recall, (std::vector<double>{0, 0}));
  EXPECT_EQ(r.f1, (std::vector<double>{0, 0}));
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{0, 0}, {0, 0}}));
}

TEST(TaskMetricsClassificationTest, PredictedClassTiesGoToTheLowestIndex) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(PredictedClass(std::vector<float>{5}), 0);
  EXPECT_EQ(PredictedClass(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(PredictedClass(std::vector<float>{0.5f, 0.5f}), 0);
  EXPECT_EQ(PredictedClass(std::vector<float>{-inf, -inf}), 0);
  EXPECT_EQ(PredictedClass(std::vector<float>{-2, -1, -1}), 1);
  // A NaN never wins against a number; a row of NaNs predicts 0.
  EXPECT_EQ(PredictedClass(std::vector<float>{nan, 1, 2}), 2);
  EXPECT_EQ(PredictedClass(std::vector<float>{2, nan, 2}), 0);
  EXPECT_EQ(PredictedClass(std::vector<float>{nan, nan}), 0);
  EXPECT_EQ(PredictedClass(std::vector<float>{nan, -inf}), 1);
}

TEST(TaskMetricsClassificationTest, AddLogitsUsesTheArgmax) {
  ClassificationMetrics m(3);
  ASSERT_OK(m.AddLogits(1, std::vector<float>{0.1f, 2.0f, 2.0f}));  // tie: predicts 1
  ASSERT_OK(m.AddLogits(2, std::vector<float>{3.0f, 2.0f, 1.0f}));  // predicts 0
  const ClassificationResult r = m.Result();
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{0, 0, 0}, {0, 1, 0}, {1, 0, 0}}));
  const Status wrong_size = m.AddLogits(0, std::vector<float>{1, 2});
  EXPECT_EQ(wrong_size.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong_size.message(), "classification metrics: 2 logits for 3 classes");
  EXPECT_EQ(m.examples(), 2);
}

TEST(TaskMetricsClassificationTest, ClassesOutsideTheRangeAreRefused) {
  ClassificationMetrics m(3);
  EXPECT_EQ(m.Add(3, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Add(0, -1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Add(-1, 0).message(), "classification metrics: class -1 outside [0, 3)");
  EXPECT_EQ(m.examples(), 0);
  EXPECT_EQ(ClassificationMetrics(3).Merge(ClassificationMetrics(4)).code(), StatusCode::kInvalidArgument);
}

TEST(TaskMetricsClassificationTest, AFullAccumulatorRefusesMore) {
  // A confusion matrix holding kMaxMetricExamples, built through Parse.
  const std::string full = Header('C') + Le<uint32_t>(1) + Le<int64_t>(kMaxMetricExamples);
  StatusOr<ClassificationMetrics> m = ClassificationMetrics::Parse(full);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->Add(0, 0).code(), StatusCode::kOutOfRange);
  ClassificationMetrics one(1);
  ASSERT_OK(one.Add(0, 0));
  EXPECT_EQ(one.Merge(*m).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(one.examples(), 1);  // nothing added
  EXPECT_EQ(m->examples(), kMaxMetricExamples);
}

// ---------------------------------------------------------------------------
// Binary

BinaryResult BinaryOf(const std::vector<std::pair<int, double>>& examples) {
  BinaryMetrics m;
  for (const auto& [label, p] : examples) EXPECT_OK(m.Add(label, p));
  return m.Result();
}

TEST(TaskMetricsBinaryTest, AucHandComputed) {
  // (label, p): negatives 0.1, 0.4; positives 0.35, 0.8.
  //   positive 0.35 beats 0.1, loses to 0.4: 1;  positive 0.8 beats both: 2.
  //   U = 3 over 2 x 2 pairs: AUC = 0.75 (scikit-learn's roc_auc_score example).
  const BinaryResult r = BinaryOf({{0, 0.1}, {0, 0.4}, {1, 0.35}, {1, 0.8}});
  EXPECT_TRUE(r.auc_defined);
  EXPECT_EQ(r.auc, 0.75);
  EXPECT_EQ(r.positives, 2);
  EXPECT_EQ(r.negatives, 2);
}

TEST(TaskMetricsBinaryTest, AucCountsTiesAsHalf) {
  // negatives 0.5, 0.2; positives 0.5, 0.9, 0.5.
  //   positive 0.5: ties 0.5 (1/2), beats 0.2 (1): 1.5, twice
  //   positive 0.9: beats both: 2
  //   U = 1.5 + 1.5 + 2 = 5 over 3 x 2 = 6 pairs: AUC = 5/6.
  const BinaryResult r = BinaryOf({{0, 0.5}, {1, 0.5}, {0, 0.2}, {1, 0.9}, {1, 0.5}});
  EXPECT_DOUBLE_EQ(r.auc, 5.0 / 6);
  // Every score the same: every pair a tie, AUC 1/2.
  EXPECT_EQ(BinaryOf({{0, 0.3}, {1, 0.3}, {1, 0.3}, {0, 0.3}}).auc, 0.5);
  // Perfectly wrong ranking: 0.
  const BinaryResult wrong = BinaryOf({{1, 0.1}, {0, 0.9}});
  EXPECT_TRUE(wrong.auc_defined);
  EXPECT_EQ(wrong.auc, 0);
}

TEST(TaskMetricsBinaryTest, AucUndefinedWithOneClass) {
  const BinaryResult positives = BinaryOf({{1, 0.2}, {1, 0.9}});
  EXPECT_FALSE(positives.auc_defined);
  EXPECT_EQ(positives.auc, 0);
  EXPECT_DOUBLE_EQ(positives.accuracy, 0.5);  // the rest is still there
  EXPECT_GT(positives.log_loss, 0);
  EXPECT_FALSE(BinaryOf({{0, 0.2}}).auc_defined);
  const BinaryResult none = BinaryOf({});
  EXPECT_FALSE(none.auc_defined);
  EXPECT_EQ(none.auc, 0);
  EXPECT_EQ(none.log_loss, 0);
  EXPECT_EQ(none.accuracy, 0);
  EXPECT_EQ(none.examples, 0);
}

TEST(TaskMetricsBinaryTest, LogLossClampsAndAccuracyAtOneHalf) {
  // (label, p)    loss                           predicted (p > 0.5)
  //   (1, 0.8)    -ln 0.8             = 0.2231436  1, right
  //   (0, 0.4)    -ln 0.6             = 0.5108256  0, right
  //   (1, 0)      -ln 1e-7 (clamped)  = 16.118096  0, wrong
  //   (0, 1)      -ln(1 - (1 - 1e-7)) = 16.118096  1, wrong
  // mean = (0.2231436 + 0.5108256 + 2 x 16.118096) / 4 = 8.2425401; accuracy 2/4.
  const BinaryResult r = BinaryOf({{1, 0.8}, {0, 0.4}, {1, 0.0}, {0, 1.0}});
  EXPECT_NEAR(r.log_loss, (-std::log(0.8) - std::log(0.6) - 2 * std::log(1e-7)) / 4, 1e-8);
  EXPECT_NEAR(r.log_loss, 8.2425401, 1e-7);
  EXPECT_EQ(r.correct, 2);
  EXPECT_EQ(r.accuracy, 0.5);
  // p == 0.5 predicts 0: right for label 0, wrong for label 1; ln 2 either way.
  const BinaryResult half = BinaryOf({{0, 0.5}, {1, 0.5}});
  EXPECT_EQ(half.correct, 1);
  EXPECT_DOUBLE_EQ(half.log_loss, std::log(2.0));
}

TEST(TaskMetricsBinaryTest, BadLabelsAndProbabilitiesAreRefused) {
  BinaryMetrics m;
  EXPECT_EQ(m.Add(2, 0.5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Add(-1, 0.5).code(), StatusCode::kInvalidArgument);
  for (const double p : {-0.1, 1.1, kNan, kInf, -kInf}) {
    EXPECT_EQ(m.Add(1, p).code(), StatusCode::kInvalidArgument) << p;
  }
  EXPECT_EQ(m.Add(2, 0.5).message(), "binary metrics: label 2, expected 0 or 1");
  EXPECT_EQ(m.examples(), 0);
  EXPECT_OK(m.Add(0, -0.0));  // -0.0 is 0
  EXPECT_OK(m.Add(1, 1.0));
}

// ---------------------------------------------------------------------------
// Regression

RegressionResult RegressionOf(const std::vector<std::pair<double, double>>& examples) {
  RegressionMetrics m;
  for (const auto& [target, prediction] : examples) EXPECT_OK(m.Add(target, prediction));
  return m.Result();
}

TEST(TaskMetricsRegressionTest, HandComputed) {
  // targets 3, -0.5, 2, 7; predictions 2.5, 0, 2, 8 (scikit-learn's example).
  //   errors -0.5, 0.5, 0, 1: squares sum 1.5, RMSE sqrt(1.5 / 4) = 0.6123724;
  //   MAE (0.5 + 0.5 + 0 + 1) / 4 = 0.5.
  //   mean target 11.5 / 4 = 2.875; deviations 0.125, -3.375, -0.875, 4.125,
  //   squares 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875;
  //   R² = 1 - 1.5 / 29.1875 = 0.9486081.
  const RegressionResult r = RegressionOf({{3, 2.5}, {-0.5, 0}, {2, 2}, {7, 8}});
  EXPECT_EQ(r.examples, 4);
  EXPECT_DOUBLE_EQ(r.rmse, std::sqrt(0.375));
  EXPECT_DOUBLE_EQ(r.mae, 0.5);
  EXPECT_TRUE(r.r2_defined);
  EXPECT_DOUBLE_EQ(r.r2, 1 - 1.5 / 29.1875);
  EXPECT_NEAR(r.r2, 0.9486081, 1e-7);
}

TEST(TaskMetricsRegressionTest, R2UndefinedWithoutVariance) {
  // Every target 0.1: the mean in double is 0.10000000000000002, so the
  // spread is not exactly 0, but the targets are all equal: undefined.
  const RegressionResult same = RegressionOf({{0.1, 0}, {0.1, 0.2}, {0.1, 0.1}});
  EXPECT_FALSE(same.r2_defined);
  EXPECT_EQ(same.r2, 0);
  EXPECT_DOUBLE_EQ(same.rmse, std::sqrt((0.01 + 0.01 + 0) / 3));  // the rest is still there
  EXPECT_FALSE(RegressionOf({{4, 5}}).r2_defined);
  const RegressionResult none = RegressionOf({});
  EXPECT_FALSE(none.r2_defined);
  EXPECT_EQ(none.examples, 0);
  EXPECT_EQ(none.rmse, 0);
  EXPECT_EQ(none.mae, 0);
  // A perfect fit of varying targets: R² = 1.
  const RegressionResult perfect = RegressionOf({{1, 1}, {2, 2}});
  EXPECT_TRUE(perfect.r2_defined);
  EXPECT_EQ(perfect.r2, 1);
  EXPECT_EQ(perfect.rmse, 0);
}

TEST(TaskMetricsRegressionTest, NonFiniteValuesAreRefused) {
  RegressionMetrics m;
  for (const double bad : {kNan, kInf, -kInf}) {
    EXPECT_EQ(m.Add(bad, 1).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(m.Add(1, bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(m.examples(), 0);
}

// ---------------------------------------------------------------------------
// Merging: the same examples in pieces, merged in any order, give the same
// bits as one accumulator fed them all.

// Cuts [0, n) into `pieces` contiguous pieces of random sizes (some empty).
std::vector<std::pair<size_t, size_t>> RandomCuts(size_t n, int pieces, std::mt19937_64& rng) {
  std::vector<size_t> cuts = {0, n};
  for (int i = 1; i < pieces; ++i) cuts.push_back(std::uniform_int_distribution<size_t>(0, n)(rng));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) out.emplace_back(cuts[i], cuts[i + 1]);
  return out;
}

// Merges `pieces` into a fresh accumulator in the order of `order`.
template <typename Metrics>
Metrics MergeInOrder(const std::vector<Metrics>& pieces, const std::vector<size_t>& order, Metrics total) {
  for (const size_t i : order) EXPECT_OK(total.Merge(pieces[i]));
  return total;
}

// Merges neighbours pairwise until one is left: ((0 1) (2 3)) (4 ...).
template <typename Metrics>
Metrics MergeAsTree(std::vector<Metrics> level) {
  while (level.size() > 1) {
    std::vector<Metrics> next;
    for (size_t i = 0; i < level.size(); i += 2) {
      next.push_back(level[i]);
      if (i + 1 < level.size()) EXPECT_OK(next.back().Merge(level[i + 1]));
    }
    level = std::move(next);
  }
  return level[0];
}

// Every merge order tried on `pieces`: in order, reversed, three shuffles, a tree.
template <typename Metrics, typename Result>
void ExpectEveryMergeOrderGives(const std::vector<Metrics>& pieces, const Metrics& empty, const Result& expected,
                                std::mt19937_64& rng) {
  std::vector<size_t> order(pieces.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  ExpectSameResult(MergeInOrder(pieces, order, empty).Result(), expected);
  std::reverse(order.begin(), order.end());
  ExpectSameResult(MergeInOrder(pieces, order, empty).Result(), expected);
  for (int i = 0; i < 3; ++i) {
    std::shuffle(order.begin(), order.end(), rng);
    ExpectSameResult(MergeInOrder(pieces, order, empty).Result(), expected);
  }
  ExpectSameResult(MergeAsTree(pieces).Result(), expected);
}

TEST(TaskMetricsMergeTest, ClassificationIsOrderIndependent) {
  std::mt19937_64 rng(1);
  std::vector<std::pair<int, int>> examples;
  for (int i = 0; i < 2000; ++i) examples.emplace_back(rng() % 5, rng() % 5);
  ClassificationMetrics whole(5);
  for (const auto& [t, p] : examples) ASSERT_OK(whole.Add(t, p));
  std::vector<ClassificationMetrics> pieces;
  for (const auto& [begin, end] : RandomCuts(examples.size(), 7, rng)) {
    pieces.emplace_back(5);
    for (size_t i = begin; i < end; ++i) ASSERT_OK(pieces.back().Add(examples[i].first, examples[i].second));
  }
  ExpectEveryMergeOrderGives(pieces, ClassificationMetrics(5), whole.Result(), rng);
}

TEST(TaskMetricsMergeTest, BinaryIsOrderIndependentBitForBit) {
  // Probabilities of every magnitude, and repeats (ties), so that the order
  // of a plain sum of log losses would change its last bits.
  std::mt19937_64 rng(2);
  std::vector<std::pair<int, double>> examples;
  for (int i = 0; i < 3000; ++i) {
    const double p = i % 10 == 0 ? 0.5 : std::pow(std::uniform_real_distribution<double>(0, 1)(rng), 1 + i % 7);
    examples.emplace_back(static_cast<int>(rng() % 2), p);
  }
  double forward = 0;
  double backward = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    forward += -std::log(std::max(examples[i].second, 1e-7));
    backward += -std::log(std::max(examples[examples.size() - 1 - i].second, 1e-7));
  }
  ASSERT_NE(forward, backward) << "the data should make a plain sum depend on its order";

  BinaryMetrics whole;
  for (const auto& [label, p] : examples) ASSERT_OK(whole.Add(label, p));
  std::vector<BinaryMetrics> pieces;
  for (const auto& [begin, end] : RandomCuts(examples.size(), 9, rng)) {
    pieces.emplace_back();
    for (size_t i = begin; i < end; ++i) ASSERT_OK(pieces.back().Add(examples[i].first, examples[i].second));
  }
  ExpectEveryMergeOrderGives(pieces, BinaryMetrics(), whole.Result(), rng);

  // The examples added in another order, one by one: the same bits too.
  std::shuffle(examples.begin(), examples.end(), rng);
  BinaryMetrics shuffled;
  for (const auto& [label, p] : examples) ASSERT_OK(shuffled.Add(label, p));
  ExpectSameResult(shuffled.Result(), whole.Result());
}

TEST(TaskMetricsMergeTest, RegressionIsOrderIndependentBitForBit) {
  std::mt19937_64 rng(3);
  std::vector<std::pair<double, double>> examples;
  std::uniform_real_distribution<double> unit(-1, 1);
  for (int i = 0; i < 3000; ++i) {
    const double scale = std::pow(10.0, static_cast<int>(rng() % 12) - 4);
    examples.emplace_back(scale * unit(rng), scale * unit(rng));
  }
  double forward = 0;
  double backward = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    forward += examples[i].first;
    backward += examples[examples.size() - 1 - i].first;
  }
  ASSERT_NE(forward, backward) << "the data should make a plain sum depend on its order";

  RegressionMetrics whole;
  for (const auto& [target, prediction] : examples) ASSERT_OK(whole.Add(target, prediction));
  std::vector<RegressionMetrics> pieces;
  for (const auto& [begin, end] : RandomCuts(examples.size(), 9, rng)) {
    pieces.emplace_back();
    for (size_t i = begin; i < end; ++i) ASSERT_OK(pieces.back().Add(examples[i].first, examples[i].second));
  }
  ExpectEveryMergeOrderGives(pieces, RegressionMetrics(), whole.Result(), rng);

  std::shuffle(examples.begin(), examples.end(), rng);
  RegressionMetrics shuffled;
  for (const auto& [target, prediction] : examples) ASSERT_OK(shuffled.Add(target, prediction));
  ExpectSameResult(shuffled.Result(), whole.Result());
}

TEST(TaskMetricsMergeTest, NegativeZeroIsZero) {
  BinaryMetrics a;
  BinaryMetrics b;
  ASSERT_OK(a.Add(0, -0.0));
  ASSERT_OK(b.Add(0, 0.0));
  EXPECT_EQ(a.Serialize(), b.Serialize());
  RegressionMetrics c;
  RegressionMetrics d;
  ASSERT_OK(c.Add(-0.0, -0.0));
  ASSERT_OK(d.Add(0.0, 0.0));
  EXPECT_EQ(c.Serialize(), d.Serialize());
}

// ---------------------------------------------------------------------------
// Serialization

TEST(TaskMetricsSerializeTest, ClassificationRoundTrip) {
  const ClassificationMetrics m = CatDogBird();
  const std::string bytes = m.Serialize();
  EXPECT_EQ(bytes.size(), 2 + 4 + 9 * 8u);
  StatusOr<ClassificationMetrics> parsed = ClassificationMetrics::Parse(bytes);
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->num_classes(), 3);
  EXPECT_EQ(parsed->examples(), 7);
  ExpectSameResult(parsed->Result(), m.Result());
  EXPECT_EQ(parsed->Serialize(), bytes);
  StatusOr<ClassificationMetrics> empty = ClassificationMetrics::Parse(ClassificationMetrics(1).Serialize());
  ASSERT_OK(empty.status());
  EXPECT_EQ(empty->examples(), 0);
}

TEST(TaskMetricsSerializeTest, BinaryRoundTrip) {
  BinaryMetrics m;
  ASSERT_OK(m.Add(1, 0.25));
  ASSERT_OK(m.Add(0, 1.0));
  ASSERT_OK(m.Add(1, 0.0));
  const std::string bytes = m.Serialize();
  EXPECT_EQ(bytes, Header('B') + Le<uint64_t>(3) + Le(0.25) + '\x01' + Le(1.0) + '\x00' + Le(0.0) + '\x01');
  StatusOr<BinaryMetrics> parsed = BinaryMetrics::Parse(bytes);
  ASSERT_OK(parsed.status());
  ExpectSameResult(parsed->Result(), m.Result());
  EXPECT_EQ(parsed->Serialize(), bytes);
  StatusOr<BinaryMetrics> empty = BinaryMetrics::Parse(BinaryMetrics().Serialize());
  ASSERT_OK(empty.status());
  EXPECT_EQ(empty->examples(), 0);
}

TEST(TaskMetricsSerializeTest, RegressionRoundTrip) {
  RegressionMetrics m;
  ASSERT_OK(m.Add(3, 2.5));
  ASSERT_OK(m.Add(-0.5, 1e300));
  const std::string bytes = m.Serialize();
  EXPECT_EQ(bytes, Header('R') + Le<uint64_t>(2) + Le(3.0) + Le(2.5) + Le(-0.5) + Le(1e300));
  StatusOr<RegressionMetrics> parsed = RegressionMetrics::Parse(bytes);
  ASSERT_OK(parsed.status());
  ExpectSameResult(parsed->Result(), m.Result());
  EXPECT_EQ(parsed->Serialize(), bytes);
  StatusOr<RegressionMetrics> empty = RegressionMetrics::Parse(RegressionMetrics().Serialize());
  ASSERT_OK(empty.status());
  EXPECT_EQ(empty->examples(), 0);
}

// ---------------------------------------------------------------------------
// Parse on junk: InvalidArgument, never a crash or a large allocation.

template <typename Metrics>
void ExpectInvalid(const std::string& bytes, const std::string& what) {
  const Status status = Metrics::Parse(bytes).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << what << ": " << status.ToString();
}

TEST(TaskMetricsParseTest, EveryTruncationIsRefused) {
  BinaryMetrics binary;
  ASSERT_OK(binary.Add(1, 0.5));
  ASSERT_OK(binary.Add(0, 0.25));
  RegressionMetrics regression;
  ASSERT_OK(regression.Add(1, 2));
  ASSERT_OK(regression.Add(3, 4));
  const std::string c = CatDogBird().Serialize();
  const std::string b = binary.Serialize();
  const std::string r = regression.Serialize();
  for (size_t n = 0; n < c.size(); ++n) ExpectInvalid<ClassificationMetrics>(c.substr(0, n), "prefix " + std::to_string(n));
  for (size_t n = 0; n < b.size(); ++n) ExpectInvalid<BinaryMetrics>(b.substr(0, n), "prefix " + std::to_string(n));
  for (size_t n = 0; n < r.size(); ++n) ExpectInvalid<RegressionMetrics>(r.substr(0, n), "prefix " + std::to_string(n));
  // And a byte too many.
  ExpectInvalid<ClassificationMetrics>(c + '\0', "trailing byte");
  ExpectInvalid<BinaryMetrics>(b + '\0', "trailing byte");
  ExpectInvalid<RegressionMetrics>(r + '\0', "trailing byte");
}

TEST(TaskMetricsParseTest, WrongTagOrVersionIsRefused) {
  const std::string binary = BinaryMetrics().Serialize();
  ExpectInvalid<RegressionMetrics>(binary, "a binary accumulator read as regression");
  ExpectInvalid<ClassificationMetrics>(binary, "a binary accumulator read as classification");
  ExpectInvalid<BinaryMetrics>(std::string{'B', '\x02'} + Le<uint64_t>(0), "version 2");
  EXPECT_EQ(BinaryMetrics::Parse(RegressionMetrics().Serialize()).status().message(),
            "binary metrics bytes: tag 82, expected 'B'");
}

TEST(TaskMetricsParseTest, HugeCountsAreRefusedBeforeAllocating) {
  for (const uint64_t count : {uint64_t{1000}, uint64_t{1} << 32, (uint64_t{1} << 32) + 1, ~uint64_t{0}}) {
    const std::string what = "count " + std::to_string(count);
    ExpectInvalid<BinaryMetrics>(Header('B') + Le(count), what);
    ExpectInvalid<BinaryMetrics>(Header('B') + Le(count) + Le(0.5) + '\x01', what);
    ExpectInvalid<RegressionMetrics>(Header('R') + Le(count) + Le(1.0) + Le(2.0), what);
  }
  EXPECT_EQ(BinaryMetrics::Parse(Header('B') + Le<uint64_t>(1000)).status().message(),
            "binary metrics bytes: 1000 examples need 1000 x 9 bytes, found 0");
  for (const uint32_t classes : {0u, 4097u, 0xFFFFFFFFu}) {
    ExpectInvalid<ClassificationMetrics>(Header('C') + Le(classes), "classes " + std::to_string(classes));
  }
  // The most classes allowed, without the 128 MiB of counts they claim.
  ExpectInvalid<ClassificationMetrics>(Header('C') + Le<uint32_t>(4096) + Le<int64_t>(1), "4096 classes");
}

TEST(TaskMetricsParseTest, BadCountsAndValuesAreRefused) {
  const std::string two = Header('C') + Le<uint32_t>(2);
  ExpectInvalid<ClassificationMetrics>(two + Le<int64_t>(1) + Le<int64_t>(-1) + Le<int64_t>(0) + Le<int64_t>(0),
                                       "a negative count");
  ExpectInvalid<ClassificationMetrics>(
      two + Le<int64_t>(kMaxMetricExamples) + Le<int64_t>(1) + Le<int64_t>(0) + Le<int64_t>(0), "a total too large");
  ExpectInvalid<ClassificationMetrics>(
      two + Le(std::numeric_limits<int64_t>::max()) + Le(std::numeric_limits<int64_t>::max()) + Le<int64_t>(0) +
          Le<int64_t>(0),
      "counts whose sum overflows");
  const std::string one_binary = Header('B') + Le<uint64_t>(1);
  ExpectInvalid<BinaryMetrics>(one_binary + Le(0.5) + '\x02', "label 2");
  ExpectInvalid<BinaryMetrics>(one_binary + Le(kNan) + '\x01', "NaN");
  ExpectInvalid<BinaryMetrics>(one_binary + Le(1.5) + '\x01', "p 1.5");
  EXPECT_EQ(BinaryMetrics::Parse(one_binary + Le(0.5) + '\x02').status().message(),
            "binary metrics bytes: example 0: binary metrics: label 2, expected 0 or 1");
  const std::string one_regression = Header('R') + Le<uint64_t>(1);
  ExpectInvalid<RegressionMetrics>(one_regression + Le(kInf) + Le(1.0), "an infinite target");
  ExpectInvalid<RegressionMetrics>(one_regression + Le(1.0) + Le(kNan), "a NaN prediction");
}

// Parses `bytes` as Metrics: OK (then Result works) or InvalidArgument.
template <typename Metrics>
void ParseSurvives(const std::string& bytes) {
  StatusOr<Metrics> parsed = Metrics::Parse(bytes);
  if (parsed.ok()) {
    parsed->Result();
  } else {
    ASSERT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().ToString();
  }
}

TEST(TaskMetricsParseTest, RandomBytesAndMutationsNeverCrash) {
  std::mt19937_64 rng(4);
  auto random_bytes = [&rng](size_t n) {
    std::string s(n, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    return s;
  };
  for (int i = 0; i < 2000; ++i) {
    const std::string junk = random_bytes(rng() % 48);
    ParseSurvives<ClassificationMetrics>(junk);
    ParseSurvives<BinaryMetrics>(junk);
    ParseSurvives<RegressionMetrics>(junk);
    // Past the tag and version, into the counts.
    ParseSurvives<ClassificationMetrics>(Header('C') + junk);
    ParseSurvives<BinaryMetrics>(Header('B') + junk);
    ParseSurvives<RegressionMetrics>(Header('R') + junk);
  }
  // Valid bytes with a few bytes changed: many still parse, and the rest
  // are refused.
  BinaryMetrics binary;
  RegressionMetrics regression;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(binary.Add(i % 2, i / 20.0));
    ASSERT_OK(regression.Add(i, i * 0.5));
  }
  const std::string originals[] = {CatDogBird().Serialize(), binary.Serialize(), regression.Serialize()};
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = originals[i % 3];
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    ParseSurvives<ClassificationMetrics>(bytes);
    ParseSurvives<BinaryMetrics>(bytes);
    ParseSurvives<RegressionMetrics>(bytes);
  }
}

// ---------------------------------------------------------------------------
// JSON

TEST(TaskMetricsJsonTest, ClassificationKeyedByClassNames) {
  JsonObject line;
  line.Add("event", "evaluation");
  ASSERT_OK(AddJsonFields(CatDogBird().Result(), {"cat", "dog", "bird"}, &line));
  EXPECT_EQ(line.ToCompactString(),
            R"({"event":"evaluation","examples":7,"accuracy":0.571428571,"macro_f1":0.444444444,)"
            R"("per_class":{)"
            R"("cat":{"precision":0.666666667,"recall":0.666666667,"f1":0.666666667,"support":3},)"
            R"("dog":{"precision":0.666666667,"recall":0.666666667,"f1":0.666666667,"support":3},)"
            R"("bird":{"precision":0,"recall":0,"f1":0,"support":1}},)"
            R"("confusion":{"cat":{"cat":2,"dog":1,"bird":0},"dog":{"cat":0,"dog":2,"bird":1},)"
            R"("bird":{"cat":1,"dog":0,"bird":0}}})");
}

TEST(TaskMetricsJsonTest, ClassNamesMustMatchTheClasses) {
  JsonObject line;
  const ClassificationResult r = CatDogBird().Result();
  Status status = AddJsonFields(r, {"cat", "dog"}, &line);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "task metrics JSON: 2 class names for 3 classes");
  status = AddJsonFields(r, {"cat", "dog", "cat"}, &line);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "task metrics JSON: class name \"cat\" given twice");
  EXPECT_EQ(line.ToCompactString(), "{}");  // nothing added
}

TEST(TaskMetricsJsonTest, BinaryAndRegressionWriteUndefinedAsNull) {
  // Log loss: (-ln 0.9 - ln 0.6 - ln 0.35 - ln 0.8) / 4
  //   = (0.1053605 + 0.5108256 + 1.0498221 + 0.2231436) / 4 = 0.4722880.
  // Accuracy: 0.35 is the one on the wrong side of 0.5: 3/4.
  JsonObject binary;
  AddJsonFields(BinaryOf({{0, 0.1}, {0, 0.4}, {1, 0.35}, {1, 0.8}}), &binary);
  EXPECT_EQ(binary.ToCompactString(),
            R"({"examples":4,"positives":2,"negatives":2,"auc":0.75,"log_loss":0.472287954,"accuracy":0.75})");
  JsonObject one_class;
  AddJsonFields(BinaryOf({{1, 0.5}}), &one_class);
  EXPECT_EQ(one_class.ToCompactString(),
            R"({"examples":1,"positives":1,"negatives":0,"auc":null,"log_loss":0.693147181,"accuracy":0})");
  JsonObject regression;
  AddJsonFields(RegressionOf({{3, 2.5}, {-0.5, 0}, {2, 2}, {7, 8}}), &regression);
  EXPECT_EQ(regression.ToCompactString(), R"({"examples":4,"rmse":0.612372436,"mae":0.5,"r2":0.948608137})");
  JsonObject constant;
  AddJsonFields(RegressionOf({{1, 1}}), &constant);
  EXPECT_EQ(constant.ToCompactString(), R"({"examples":1,"rmse":0,"mae":0,"r2":null})");
}

}  // namespace
}  // namespace tessera
