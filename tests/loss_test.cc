// The binary and regression losses (models/softmax_cross_entropy.h): values
// and gradients computed by hand, the stable form for large logits, a
// model's gradients against numerical ones through each loss, and what a
// worker's evaluation makes of its outputs (worker/eval_metrics.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "core/task_metrics.h"
#include "models/model.h"
#include "models/softmax_cross_entropy.h"
#include "tests/test_util.h"
#include "worker/eval_metrics.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(LossTest, SigmoidBinaryCrossEntropyByHand) {
  // -[y log p + (1 - y) log(1 - p)] with p = sigmoid(z), and p - y.
  const std::vector<float> z = {0, 2, -3};
  const std::vector<float> y = {1, 0, 0};
  std::vector<float> grad(3);
  const LossResult r = SigmoidBinaryCrossEntropy(z.data(), y.data(), 3, grad.data());
  EXPECT_NEAR(r.loss_sum, std::log(2.0) + (2 + std::log1p(std::exp(-2.0))) + std::log1p(std::exp(-3.0)), 1e-12);
  EXPECT_NEAR(r.loss_sum, 0.6931471805599453 + 2.1269280110429727 + 0.04858735157374206, 1e-12);
  EXPECT_FLOAT_EQ(grad[0], -0.5f);
  EXPECT_FLOAT_EQ(grad[1], 0.8807970779778823f);
  EXPECT_FLOAT_EQ(grad[2], 0.04742587317756679f);
  // z = 0 gives p = 0.5, which predicts 0: wrong for label 1; z = 2 predicts 1 (wrong), z = -3 predicts 0 (right).
  EXPECT_EQ(r.correct, 1);
}

TEST(LossTest, SigmoidBinaryCrossEntropyIsStableForLargeLogits) {
  // The naive log(sigmoid(z)) gives -inf at z = -200 in double; the stable form gives 200.
  const std::vector<float> z = {200, -200, 30};
  const std::vector<float> y = {0, 1, 1};
  std::vector<float> grad(3);
  const LossResult r = SigmoidBinaryCrossEntropy(z.data(), y.data(), 3, grad.data());
  EXPECT_TRUE(std::isfinite(r.loss_sum));
  EXPECT_NEAR(r.loss_sum, 400 + 9.357622968839737e-14, 1e-9);
  EXPECT_FLOAT_EQ(grad[0], 1.0f);
  EXPECT_FLOAT_EQ(grad[1], -1.0f);
  EXPECT_FLOAT_EQ(grad[2], -9.348077867343818e-14f);
  EXPECT_EQ(r.correct, 1);
}

TEST(LossTest, MeanSquaredErrorByHand) {
  // (z - y)^2 summed, gradient 2 (z - y): PyTorch's MSELoss(reduction='sum').
  const std::vector<float> z = {1.5f, -2, 0};
  const std::vector<float> y = {0.5f, 1, 0};
  std::vector<float> grad(3);
  const LossResult r = MeanSquaredError(z.data(), y.data(), 3, grad.data());
  EXPECT_DOUBLE_EQ(r.loss_sum, 1 + 9 + 0);
  EXPECT_EQ(grad, (std::vector<float>{2, -6, 0}));
  EXPECT_EQ(r.correct, 0);
  EXPECT_DOUBLE_EQ(MeanSquaredError(z.data(), y.data(), 3, nullptr).loss_sum, 10);
}

TEST(LossTest, SoftmaxCrossEntropyTakesClassIdsAsFloats) {
  const std::vector<float> logits = {1, 2, 3, 3, 2, 1};
  const std::vector<float> labels = {2, 1};
  const LossResult r = SoftmaxCrossEntropy(logits.data(), labels.data(), 2, 3, nullptr);
  const double log_sum = std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0);
  EXPECT_NEAR(r.loss_sum, log_sum + (log_sum + 1), 1e-12);
  EXPECT_EQ(r.correct, 1);
}

proto::ModelSpec OneOutputSpec(proto::Loss loss) {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(4);
  // Two linear layers, no ReLU: smooth everywhere, so central differences hold.
  spec.add_layer()->mutable_linear()->set_out_features(1);
  spec.set_loss(loss);
  return spec;
}

// Central difference of the summed loss with respect to every parameter.
void CheckGradients(proto::Loss loss, const std::vector<float>& labels) {
  auto model = Model::Create(OneOutputSpec(loss), Shape{3}, /*num_classes=*/2);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  Model& m = **model;
  EXPECT_EQ(m.num_outputs(), 1);
  std::vector<float> init(m.num_keys());
  InitializeParameters(m.tensors(), 7, init.data());
  std::copy(init.begin(), init.end(), m.params());
  const int64_t batch = static_cast<int64_t>(labels.size());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> x(batch * 3);
  for (float& v : x) v = u(rng);
  m.TrainBatch(x.data(), labels.data(), batch);
  const std::vector<float> grads = *m.grads();
  const auto loss_now = [&] { return m.EvaluateBatch(x.data(), labels.data(), batch).loss_sum; };
  int nonzero = 0;
  for (uint64_t k = 0; k < m.num_keys(); ++k) {
    float* p = m.params() + k;
    const float saved = *p;
    constexpr float kEps = 1e-2f;
    *p = saved + kEps;
    const double plus = loss_now();
    *p = saved - kEps;
    const double minus = loss_now();
    *p = saved;
    const double numeric = (plus - minus) / (2.0 * kEps);
    EXPECT_NEAR(grads[k], numeric, 1e-2 * std::max(std::fabs(numeric), std::fabs(static_cast<double>(grads[k]))) + 2e-3)
        << "param " << k;
    if (std::fabs(grads[k]) > 1e-3) ++nonzero;
  }
  EXPECT_GT(nonzero, 8) << "the gradients are mostly zero; the check proves little";
}

TEST(LossTest, BinaryModelGradientsMatchNumericalGradients) {
  CheckGradients(proto::SIGMOID_BINARY_CROSS_ENTROPY, {0, 1, 1, 0, 1});
}

TEST(LossTest, RegressionModelGradientsMatchNumericalGradients) {
  CheckGradients(proto::MEAN_SQUARED_ERROR, {0.5f, -1.25f, 2, 3.5f, -0.75f});
}

TEST(LossTest, ModelNeedsOneOutputForBinaryAndRegression) {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(2);
  spec.set_loss(proto::SIGMOID_BINARY_CROSS_ENTROPY);
  auto model = Model::Create(spec, Shape{3}, 2);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().message(),
            "the last layer gives 2 outputs, expected 1 (binary classification: one logit per example)");
  spec.set_loss(proto::MEAN_SQUARED_ERROR);
  model = Model::Create(spec, Shape{3}, 1);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr("expected 1 (regression: one value per example)"));
  spec.mutable_layer(0)->mutable_linear()->set_out_features(1);
  model = Model::Create(spec, Shape{3}, 0);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->task(), Task::kRegression);
}

TEST(LossTest, EvaluateBatchHandsBackTheOutputs) {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(1);
  spec.set_loss(proto::MEAN_SQUARED_ERROR);
  auto model = Model::Create(spec, Shape{2}, 0);
  ASSERT_TRUE(model.ok());
  float* p = (*model)->params();
  p[0] = 1, p[1] = 2, p[2] = 0.5f;  // z = x0 + 2 x1 + 0.5
  const std::vector<float> x = {1, 1, 0, -1};
  const std::vector<float> y = {3, -1};
  std::vector<float> outputs(2);
  const BatchStats s = (*model)->EvaluateBatch(x.data(), y.data(), 2, nullptr, outputs.data());
  EXPECT_EQ(outputs, (std::vector<float>{3.5f, -1.5f}));
  EXPECT_DOUBLE_EQ(s.loss_sum, 0.25 + 0.25);
}

TEST(EvalMetricsTest, BinaryOutputsBecomeProbabilities) {
  EvalMetrics metrics(Task::kBinary, 2);
  const std::vector<float> labels = {1, 0, 1, 0};
  const std::vector<float> logits = {2, -1, 0.5f, 1};  // positives score 2, 0.5; negatives -1, 1: 3 of 4 pairs
  metrics.AddBatch(labels.data(), logits.data(), 4);
  ASSERT_OK(metrics.problem());
  proto::PhaseDone done;
  metrics.Fill(&done);
  EXPECT_FALSE(done.has_class_metrics());
  auto parsed = BinaryMetrics::Parse(done.binary_metrics());
  ASSERT_TRUE(parsed.ok());
  const BinaryResult r = parsed->Result();
  EXPECT_EQ(r.examples, 4);
  EXPECT_DOUBLE_EQ(r.auc, 0.75);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.75);  // the negative at logit 1 is wrong
}

TEST(EvalMetricsTest, RegressionKeepsTargetsAndPredictions) {
  EvalMetrics metrics(Task::kRegression, 0);
  const std::vector<float> targets = {1, 2, 3};
  const std::vector<float> predictions = {1, 2, 5};
  metrics.AddBatch(targets.data(), predictions.data(), 3);
  ASSERT_OK(metrics.problem());
  proto::PhaseDone done;
  metrics.Fill(&done);
  auto parsed = RegressionMetrics::Parse(done.regression_metrics());
  ASSERT_TRUE(parsed.ok());
  const RegressionResult r = parsed->Result();
  EXPECT_DOUBLE_EQ(r.mae, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.rmse, std::sqrt(4.0 / 3));
  EXPECT_DOUBLE_EQ(r.r2, 1 - 4.0 / 2);
}

TEST(EvalMetricsTest, ANaNPredictionMakesTheMetricsUnusableNotTheEvaluation) {
  EvalMetrics metrics(Task::kRegression, 0);
  const std::vector<float> targets = {1, 2};
  const std::vector<float> predictions = {std::nanf(""), 2};
  metrics.AddBatch(targets.data(), predictions.data(), 2);
  EXPECT_FALSE(metrics.problem().ok());
  proto::PhaseDone done;
  metrics.Fill(&done);
  EXPECT_FALSE(done.has_regression_metrics()) << "the scheduler drops the evaluation's metrics, saying why";
}

}  // namespace
}  // namespace tessera
