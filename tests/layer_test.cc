// Numerical gradient checks for the layers, the loss and a whole model.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/layer.h"
#include "models/linear.h"
#include "models/model.h"
#include "models/relu.h"
#include "models/softmax_cross_entropy.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

constexpr float kEps = 1e-3f;

// Analytic and numerical gradients agree within 1e-2 relative, with a small
// absolute floor for gradients near zero.
void ExpectGradNear(double analytic, double numeric, const std::string& what, double floor = 1e-3) {
  EXPECT_NEAR(analytic, numeric, 1e-2 * std::max(std::fabs(analytic), std::fabs(numeric)) + floor) << what;
}

std::vector<float> RandomVector(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Central difference of f with respect to *x.
double Numeric(float* x, const std::function<double()>& f) {
  const float saved = *x;
  *x = saved + kEps;
  const double plus = f();
  *x = saved - kEps;
  const double minus = f();
  *x = saved;
  return (plus - minus) / (2.0 * static_cast<double>(kEps));
}

// L = sum(y .* r): dL/dy = r.
double Weighted(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

void CheckLinear(bool bias) {
  const int64_t in = 5, out = 4, batch = 3;
  std::mt19937 rng(bias ? 11 : 12);
  Linear layer({in}, out, bias);
  const std::vector<ParamShape> shapes = layer.param_shapes();
  ASSERT_EQ(shapes.size(), bias ? 2u : 1u);
  EXPECT_EQ(shapes[0].name, "weight");
  EXPECT_EQ(shapes[0].shape, (std::vector<int64_t>{out, in}));
  EXPECT_FLOAT_EQ(shapes[0].init_bound, 1.0f / std::sqrt(5.0f));
  if (bias) {
    EXPECT_EQ(shapes[1].name, "bias");
    EXPECT_EQ(shapes[1].shape, (std::vector<int64_t>{out}));
  }
  const size_t nparams = out * in + (bias ? out : 0);
  std::vector<float> params = RandomVector(rng, nparams);
  // Garbage in the gradient buffer: Backward must overwrite it.
  std::vector<float> grads(nparams, 1e6f);
  layer.Bind(params.data(), grads.data());
  std::vector<float> x = RandomVector(rng, batch * in);
  const std::vector<float> r = RandomVector(rng, batch * out);
  std::vector<float> y(batch * out, -7.0f);

  layer.Forward(x.data(), batch, y.data(), Pass{});
  // Forward against a direct computation.
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < out; ++o) {
      double want = bias ? params[out * in + o] : 0.0;
      for (int64_t i = 0; i < in; ++i) want += static_cast<double>(x[b * in + i]) * params[o * in + i];
      EXPECT_NEAR(y[b * out + o], want, 1e-5) << "y[" << b << "," << o << "]";
    }
  }

  std::vector<float> dx(batch * in, 1e6f);
  layer.Backward(x.data(), y.data(), r.data(), batch, dx.data());

  auto loss = [&] {
    std::vector<float> yy(batch * out);
    layer.Forward(x.data(), batch, yy.data(), Pass{});
    return Weighted(yy, r);
  };
  for (size_t k = 0; k < nparams; ++k) {
    const std::string what = (k < static_cast<size_t>(out * in) ? "dW[" : "db[") + std::to_string(k) + "]";
    ExpectGradNear(grads[k], Numeric(&params[k], loss), what);
  }
  for (size_t k = 0; k < x.size(); ++k) {
    ExpectGradNear(dx[k], Numeric(&x[k], loss), "dx[" + std::to_string(k) + "]");
  }

  // Without dx only the parameter gradients are written.
  std::vector<float> grads_before = grads;
  std::fill(grads.begin(), grads.end(), 1e6f);
  layer.Backward(x.data(), y.data(), r.data(), batch, nullptr);
  EXPECT_EQ(grads, grads_before);
}

TEST(LayerTest, LinearGradientsWithBias) { CheckLinear(/*bias=*/true); }

TEST(LayerTest, LinearGradientsWithoutBias) { CheckLinear(/*bias=*/false); }

TEST(LayerTest, LinearBatchZeroZeroesGradients) {
  Linear layer({3}, 2, /*bias=*/true);
  std::vector<float> params(8, 0.5f), grads(8, 9.0f);
  layer.Bind(params.data(), grads.data());
  layer.Backward(nullptr, nullptr, nullptr, 0, nullptr);
  EXPECT_EQ(grads, std::vector<float>(8, 0.0f));
}

TEST(LayerTest, ReluForwardAndGradient) {
  const int64_t features = 6, batch = 4;
  std::mt19937 rng(3);
  std::vector<float> x = RandomVector(rng, batch * features);
  // Keep every input away from the kink at 0.
  for (float& v : x) {
    if (std::fabs(v) < 0.05f) v = v < 0 ? -0.05f - std::fabs(v) : 0.05f + v;
  }
  const std::vector<float> r = RandomVector(rng, batch * features);
  Relu layer({features});
  EXPECT_TRUE(layer.param_shapes().empty());
  EXPECT_EQ(layer.in_features(), features);
  EXPECT_EQ(layer.out_features(), features);
  std::vector<float> y(batch * features);
  layer.Forward(x.data(), batch, y.data(), Pass{});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 0.0f) << i;

  std::vector<float> dx(x.size(), 1e6f);
  layer.Backward(x.data(), y.data(), r.data(), batch, dx.data());
  auto loss = [&] {
    std::vector<float> yy(y.size());
    layer.Forward(x.data(), batch, yy.data(), Pass{});
    return Weighted(yy, r);
  };
  for (size_t k = 0; k < x.size(); ++k) {
    const double numeric = Numeric(&x[k], loss);
    ExpectGradNear(dx[k], numeric, "dx[" + std::to_string(k) + "]");
    if (x[k] < 0) {
      EXPECT_EQ(dx[k], 0.0f) << k;
    }
  }
}

// The summed softmax cross-entropy, directly in double.
double DirectCrossEntropy(const std::vector<float>& logits, const std::vector<float>& labels, int64_t classes) {
  double total = 0;
  for (size_t b = 0; b < labels.size(); ++b) {
    double max = -INFINITY;
    for (int64_t c = 0; c < classes; ++c) max = std::max(max, static_cast<double>(logits[b * classes + c]));
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(logits[b * classes + c] - max);
    total += std::log(sum) + max - logits[b * classes + static_cast<int64_t>(labels[b])];
  }
  return total;
}

TEST(LayerTest, SoftmaxCrossEntropyLossAndGradient) {
  const int64_t batch = 5, classes = 4;
  std::mt19937 rng(5);
  std::vector<float> logits = RandomVector(rng, batch * classes, -3.0f, 3.0f);
  const std::vector<float> labels = {0, 3, 1, 1, 2};
  std::vector<float> dlogits(logits.size(), 1e6f);
  const LossResult result = SoftmaxCrossEntropy(logits.data(), labels.data(), batch, classes, dlogits.data());
  EXPECT_NEAR(result.loss_sum, DirectCrossEntropy(logits, labels, classes), 1e-6);

  int64_t correct = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const float* z = logits.data() + b * classes;
    if (std::max_element(z, z + classes) - z == labels[b]) ++correct;
  }
  EXPECT_EQ(result.correct, correct);

  auto loss = [&] { return SoftmaxCrossEntropy(logits.data(), labels.data(), batch, classes, nullptr).loss_sum; };
  for (size_t k = 0; k < logits.size(); ++k) {
    ExpectGradNear(dlogits[k], Numeric(&logits[k], loss), "dlogits[" + std::to_string(k) + "]");
  }
  // Each row of softmax - onehot sums to zero.
  for (int64_t b = 0; b < batch; ++b) {
    double row = 0;
    for (int64_t c = 0; c < classes; ++c) row += dlogits[b * classes + c];
    EXPECT_NEAR(row, 0.0, 1e-6) << "row " << b;
  }
}

TEST(LayerTest, SoftmaxCrossEntropyIsStableForLargeLogits) {
  const std::vector<float> logits = {1000.0f, 1001.0f, -1000.0f, 88.0f, 89.0f, 90.0f};
  const std::vector<float> labels = {0, 2};
  std::vector<float> dlogits(6);
  const LossResult result = SoftmaxCrossEntropy(logits.data(), labels.data(), 2, 3, dlogits.data());
  ASSERT_TRUE(std::isfinite(result.loss_sum));
  EXPECT_NEAR(result.loss_sum, DirectCrossEntropy(logits, labels, 3), 1e-9);
  for (float g : dlogits) EXPECT_TRUE(std::isfinite(g));
  EXPECT_EQ(result.correct, 1);  // row 0 predicts 1, row 1 predicts 2
}

// 7 features -> linear(5) -> relu -> linear(3), 3 classes.
proto::ModelSpec MlpSpec() {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(5);
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_linear()->set_out_features(3);
  return spec;
}

std::unique_ptr<Model> MakeMlp(uint64_t seed) {
  auto model = Model::Create(MlpSpec(), Shape{7}, 3);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  InitializeParameters((*model)->tensors(), seed, (*model)->params());
  return std::move(model).value();
}

TEST(LayerTest, ModelLaysOutTensorsInKeyOrder) {
  auto model = MakeMlp(1);
  ASSERT_NE(model, nullptr);
  const auto& t = model->tensors();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "layer0.linear.weight");
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(t[0].offset, 0u);
  EXPECT_EQ(t[0].size, 35u);
  EXPECT_EQ(t[1].name, "layer0.linear.bias");
  EXPECT_EQ(t[1].offset, 35u);
  EXPECT_EQ(t[1].size, 5u);
  EXPECT_EQ(t[2].name, "layer2.linear.weight");
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(t[2].offset, 40u);
  EXPECT_EQ(t[3].name, "layer2.linear.bias");
  EXPECT_EQ(t[3].offset, 55u);
  EXPECT_EQ(model->num_keys(), 58u);
  EXPECT_EQ(model->input_features(), 7);
  EXPECT_EQ(model->num_classes(), 3);
  EXPECT_FLOAT_EQ(t[0].init_bound, 1.0f / std::sqrt(7.0f));
  EXPECT_FLOAT_EQ(t[2].init_bound, 1.0f / std::sqrt(5.0f));
}

// Whether any hidden pre-activation of the MLP lies within `margin` of the
// ReLU's kink, where a numerical gradient is meaningless.
bool NearKink(const Model& model, const std::vector<float>& x, int64_t batch, double margin) {
  const float* p = model.params();
  for (int64_t b = 0; b < batch; ++b) {
    for (int o = 0; o < 5; ++o) {
      double h = p[35 + o];
      for (int i = 0; i < 7; ++i) h += static_cast<double>(p[o * 7 + i]) * x[b * 7 + i];
      if (std::fabs(h) < margin) return true;
    }
  }
  return false;
}

TEST(LayerTest, ModelGradientsMatchNumericalGradients) {
  const int64_t batch = 4;
  std::unique_ptr<Model> model;
  std::vector<float> x;
  // Pick the first seed whose hidden units all stay clear of the kink.
  for (uint64_t seed = 1; seed < 100; ++seed) {
    model = MakeMlp(seed);
    ASSERT_NE(model, nullptr);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    x = RandomVector(rng, batch * 7, -2.0f, 2.0f);
    if (!NearKink(*model, x, batch, 0.05)) break;
  }
  ASSERT_FALSE(NearKink(*model, x, batch, 0.05));
  const std::vector<float> labels = {2, 0, 1, 2};

  const BatchStats train = model->TrainBatch(x.data(), labels.data(), batch);
  EXPECT_EQ(train.examples, batch);
  const std::vector<float> grads = *model->grads();
  ASSERT_EQ(grads.size(), model->num_keys());
  const BatchStats eval = model->EvaluateBatch(x.data(), labels.data(), batch);
  EXPECT_DOUBLE_EQ(train.loss_sum, eval.loss_sum);
  EXPECT_EQ(train.correct, eval.correct);
  EXPECT_GT(eval.loss_sum, 0.0);

  auto loss = [&] { return model->EvaluateBatch(x.data(), labels.data(), batch).loss_sum; };
  int nonzero = 0;
  for (uint64_t k = 0; k < model->num_keys(); ++k) {
    ExpectGradNear(grads[k], Numeric(model->params() + k, loss), "param " + std::to_string(k));
    if (std::fabs(grads[k]) > 1e-3) ++nonzero;
  }
  EXPECT_GT(nonzero, 20) << "the gradients are mostly zero; the check proves little";
}

TEST(LayerTest, ModelGradientIsSumNotMean) {
  auto model = MakeMlp(3);
  ASSERT_NE(model, nullptr);
  std::mt19937 rng(9);
  const std::vector<float> one = RandomVector(rng, 7);
  std::vector<float> twice = one;
  twice.insert(twice.end(), one.begin(), one.end());
  const std::vector<float> labels = {1, 1};
  const BatchStats s1 = model->TrainBatch(one.data(), labels.data(), 1);
  const std::vector<float> g1 = *model->grads();
  const BatchStats s2 = model->TrainBatch(twice.data(), labels.data(), 2);
  const std::vector<float> g2 = *model->grads();
  EXPECT_NEAR(s2.loss_sum, 2 * s1.loss_sum, 1e-6);
  for (size_t k = 0; k < g1.size(); ++k) EXPECT_NEAR(g2[k], 2 * g1[k], 1e-5 + 1e-5 * std::fabs(g1[k])) << k;
}

TEST(LayerTest, ModelTrainBatchZeroGivesZeroGradients) {
  auto model = MakeMlp(4);
  ASSERT_NE(model, nullptr);
  std::mt19937 rng(4);
  const std::vector<float> x = RandomVector(rng, 2 * 7);
  const std::vector<float> labels = {0, 1};
  model->TrainBatch(x.data(), labels.data(), 2);
  ASSERT_NE(*model->grads(), std::vector<float>(model->num_keys(), 0.0f));
  const BatchStats s = model->TrainBatch(nullptr, nullptr, 0);
  EXPECT_EQ(s.examples, 0);
  EXPECT_EQ(s.loss_sum, 0.0);
  EXPECT_EQ(s.correct, 0);
  EXPECT_EQ(*model->grads(), std::vector<float>(model->num_keys(), 0.0f));
}

TEST(LayerTest, ModelTrainBatchLeavesHeldGradientsAlone) {
  auto model = MakeMlp(5);
  auto reference = MakeMlp(5);
  ASSERT_NE(model, nullptr);
  ASSERT_NE(reference, nullptr);
  std::mt19937 rng(5);
  const std::vector<float> x1 = RandomVector(rng, 3 * 7), x2 = RandomVector(rng, 3 * 7);
  const std::vector<float> labels = {0, 1, 2};
  model->TrainBatch(x1.data(), labels.data(), 3);
  // A push still in flight holds the buffer.
  const std::shared_ptr<std::vector<float>> held = model->grads();
  const std::vector<float> held_values = *held;
  model->TrainBatch(x2.data(), labels.data(), 3);
  EXPECT_EQ(*held, held_values) << "TrainBatch wrote into a buffer a push still holds";
  // The new gradients are right: the layers were pointed at the new buffer.
  reference->TrainBatch(x2.data(), labels.data(), 3);
  EXPECT_EQ(*model->grads(), *reference->grads());
  EXPECT_NE(*model->grads(), held_values);
}

TEST(LayerTest, ModelCreateRejectsWrongClassCount) {
  auto model = Model::Create(MlpSpec(), Shape{7}, 4);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("3 outputs"));
  EXPECT_THAT(model.status().message(), HasSubstr("expected 4"));
}

TEST(LayerTest, ModelCreateNamesTheBadLayer) {
  proto::ModelSpec spec = MlpSpec();
  spec.mutable_layer(2)->mutable_linear()->set_out_features(0);
  auto model = Model::Create(spec, Shape{7}, 3);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.layer[2]"));
  EXPECT_THAT(model.status().message(), HasSubstr("out_features"));

  proto::ModelSpec no_kind = MlpSpec();
  no_kind.add_layer();
  auto model2 = Model::Create(no_kind, Shape{7}, 3);
  EXPECT_EQ(model2.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(model2.status().message(), HasSubstr("model.layer[3]"));
}

TEST(LayerTest, ModelCreateRejectsSpecWithoutLayers) {
  auto model = Model::Create(proto::ModelSpec(), Shape{3}, 3);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
}

TEST(LayerTest, InitializeParametersStaysWithinBound) {
  std::vector<TensorInfo> tensors(2);
  tensors[0].size = 2000;
  tensors[0].init_bound = 0.25f;
  tensors[1].offset = 2000;
  tensors[1].size = 1000;
  tensors[1].init_bound = 3.0f;
  std::vector<float> params(3000, 100.0f);
  InitializeParameters(tensors, 42, params.data());
  for (const TensorInfo& t : tensors) {
    float lo = INFINITY, hi = -INFINITY;
    double mean = 0;
    for (uint64_t i = t.offset; i < t.offset + t.size; ++i) {
      ASSERT_LE(std::fabs(params[i]), t.init_bound) << i;
      lo = std::min(lo, params[i]);
      hi = std::max(hi, params[i]);
      mean += params[i];
    }
    mean /= static_cast<double>(t.size);
    // Uniform: spread over the whole interval, centred on zero.
    EXPECT_LT(lo, -0.9f * t.init_bound);
    EXPECT_GT(hi, 0.9f * t.init_bound);
    EXPECT_NEAR(mean, 0.0, 0.1 * t.init_bound);
  }
}

TEST(LayerTest, InitializeParametersIsIndependentOfOtherTensors) {
  // Tensor 1 gets the same values whatever tensor 0's size and wherever it starts.
  std::vector<TensorInfo> a(2), b(2);
  a[0].size = 10;
  a[0].init_bound = 1.0f;
  a[1].offset = 10;
  a[1].size = 50;
  a[1].init_bound = 0.5f;
  b[0].size = 300;
  b[0].init_bound = 2.0f;
  b[1].offset = 300;
  b[1].size = 50;
  b[1].init_bound = 0.5f;
  std::vector<float> pa(60), pb(350);
  InitializeParameters(a, 7, pa.data());
  InitializeParameters(b, 7, pb.data());
  EXPECT_EQ(std::vector<float>(pa.begin() + 10, pa.end()), std::vector<float>(pb.begin() + 300, pb.end()));
  // Deterministic for a seed, different across seeds and across tensors.
  std::vector<float> again(60), other(60);
  InitializeParameters(a, 7, again.data());
  InitializeParameters(a, 8, other.data());
  EXPECT_EQ(pa, again);
  EXPECT_NE(pa, other);
  EXPECT_NE(std::vector<float>(pa.begin(), pa.begin() + 10), std::vector<float>(pa.begin() + 10, pa.begin() + 20));
}

TEST(LayerTest, ParamsSha256TracksEveryParameter) {
  auto model = MakeMlp(6);
  ASSERT_NE(model, nullptr);
  const std::string before = model->ParamsSha256();
  EXPECT_EQ(before.size(), 64u);
  EXPECT_EQ(before, ParamsSha256(model->params(), model->num_keys()));
  for (uint64_t k : {uint64_t{0}, uint64_t{37}, model->num_keys() - 1}) {
    const float saved = model->params()[k];
    model->params()[k] = std::nextafter(saved, INFINITY);
    EXPECT_NE(model->ParamsSha256(), before) << "key " << k;
    model->params()[k] = saved;
    EXPECT_EQ(model->ParamsSha256(), before);
  }
  // SHA-256 of no bytes.
  EXPECT_EQ(ParamsSha256(nullptr, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace tessera
