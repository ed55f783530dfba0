// Batch norm folding (export/fold_batch_norm.h): which batch norms go, the
// folded model's logits against the original's, the runtime that serve and
// predict use, and int8 quantization folding before it quantizes.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "export/fold_batch_norm.h"
#include "export/quantize.h"
#include "export/runtime_model.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

const Shape kImage = {1, 28, 28};

// Initial parameters with batch norms that do something: weights, biases
// and running statistics away from 1 and 0.
std::vector<float> Params(const proto::ModelSpec& spec) {
  auto model = Model::Create(spec, kImage, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 5, params.data());
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> spread(0.5f, 2.0f), shift(-0.5f, 0.5f);
  for (const TensorInfo& t : (*model)->tensors()) {
    if (t.name.find("batch_norm") == std::string::npos) continue;
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
      params[k] = t.name.ends_with("weight") || t.name.ends_with("running_var") ? spread(rng) : shift(rng);
    }
  }
  return params;
}

std::vector<float> Images(int64_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * 784);
  for (float& v : x) v = normal(rng);
  return x;
}

// The largest difference between two logit vectors, relative to the largest logit.
float RelativeError(const std::vector<float>& want, const std::vector<float>& got) {
  EXPECT_EQ(want.size(), got.size());
  float range = 0, worst = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    range = std::max(range, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  return worst / range;
}

int CountBatchNorms(const proto::ModelSpec& spec) {
  return static_cast<int>(std::count_if(spec.layer().begin(), spec.layer().end(),
                                        [](const proto::LayerSpec& l) { return l.has_batch_norm(); }));
}

TEST(FoldBatchNormTest, BatchNormsAfterAConvOrLinearGoAndTheLogitsStay) {
  // kCnnModel: conv (bias) -> batch norm -> ... -> linear -> batch norm (epsilon 1e-3) -> ...
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  ASSERT_EQ(CountBatchNorms(spec), 2);
  const std::vector<float> params = Params(spec);
  auto folded = FoldBatchNorms(spec, kImage, params);
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  EXPECT_EQ(folded->folded, 2);
  EXPECT_EQ(CountBatchNorms(folded->spec), 0);
  EXPECT_EQ(folded->spec.layer_size(), spec.layer_size() - 2);
  // Each batch norm's 4 x channels parameters are gone; the layers had a bias already.
  EXPECT_EQ(folded->params.size(), params.size() - 4 * 4 - 4 * 16);
  const std::vector<float> x = Images(64);
  EXPECT_LT(RelativeError(InferLogits(spec, kImage, params, x, 64), InferLogits(folded->spec, kImage, folded->params, x, 64)),
            1e-4f);
}

TEST(FoldBatchNormTest, ALayerWithoutBiasGainsOne) {
  const proto::ModelSpec spec = ParseModel(R"(
    layer { conv2d { out_channels: 3 kernel_size: 5 bias: false } }
    layer { batch_norm {} }
    layer { relu {} }
    layer { flatten {} }
    layer { linear { out_features: 10 bias: false } }
    layer { batch_norm {} }
  )");
  const std::vector<float> params = Params(spec);
  auto folded = FoldBatchNorms(spec, kImage, params);
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  EXPECT_EQ(folded->folded, 2);
  ASSERT_EQ(folded->spec.layer_size(), 4);
  EXPECT_TRUE(folded->spec.layer(0).conv2d().bias());
  EXPECT_TRUE(folded->spec.layer(3).linear().bias());
  EXPECT_EQ(folded->params.size(), params.size() - 4 * 3 - 4 * 10 + 3 + 10);
  const std::vector<float> x = Images(32);
  EXPECT_LT(RelativeError(InferLogits(spec, kImage, params, x, 32), InferLogits(folded->spec, kImage, folded->params, x, 32)),
            1e-4f);
}

TEST(FoldBatchNormTest, OtherBatchNormsStay) {
  // After a ReLU, first, or after an int8 layer: nothing to fold into.
  const proto::ModelSpec spec = ParseModel(R"(
    layer { batch_norm {} }
    layer { conv2d { out_channels: 3 kernel_size: 5 } }
    layer { relu {} }
    layer { batch_norm {} }
    layer { flatten {} }
    layer { linear { out_features: 10 } }
  )");
  const std::vector<float> params = Params(spec);
  auto folded = FoldBatchNorms(spec, kImage, params);
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  EXPECT_EQ(folded->folded, 0);
  EXPECT_EQ(folded->spec.SerializeAsString(), spec.SerializeAsString());
  EXPECT_EQ(folded->params, params);

  proto::ModelSpec int8 = ParseModel(R"(
    layer { flatten {} }
    layer { linear { out_features: 10 int8 { input_scale: 0.1 } } }
    layer { batch_norm {} }
  )");
  auto int8_model = Model::Create(int8, kImage, 10);
  ASSERT_TRUE(int8_model.ok()) << int8_model.status().ToString();
  auto kept = FoldBatchNorms(int8, kImage, std::vector<float>((*int8_model)->num_keys(), 1.0f));
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->folded, 0);
}

TEST(FoldBatchNormTest, ParametersThatDoNotFitAreRefused) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  std::vector<float> params = Params(spec);
  params.push_back(0);
  auto more = FoldBatchNorms(spec, kImage, params);
  ASSERT_FALSE(more.ok());
  EXPECT_THAT(more.status().message(), HasSubstr("parameters, not the"));
  params.resize(params.size() - 100);
  auto fewer = FoldBatchNorms(spec, kImage, params);
  ASSERT_FALSE(fewer.ok());
  EXPECT_THAT(fewer.status().message(), HasSubstr("beyond the"));
}

TEST(FoldBatchNormTest, TheRuntimeFoldsAndInt8QuantizesTheFoldedModel) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  const std::vector<float> params = Params(spec);
  const std::vector<float> x = Images(64);
  const std::vector<float> want = InferLogits(spec, kImage, params, x, 64);

  // What serve and predict run: folded, then fused.
  ImportedModel imported;
  imported.spec = spec;
  imported.input_shape = kImage;
  imported.num_classes = 10;
  imported.params = params;
  auto runtime = BuildRuntimeModel(imported);
  ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
  for (int i = 0; i < (*runtime)->num_layers(); ++i) EXPECT_NE((*runtime)->layer(i).type(), "batch_norm") << i;
  const float* logits = (*runtime)->Infer(x.data(), 64);
  EXPECT_LT(RelativeError(want, std::vector<float>(logits, logits + 64 * 10)), 1e-4f);

  // int8: the folded layers are quantized, and no batch norm is left in float.
  auto q = QuantizeInt8(spec, kImage, 10, params, Images(256), 256);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->folded_batch_norms, 2);
  EXPECT_EQ(CountBatchNorms(q->spec), 0);
  EXPECT_EQ(q->layers.size(), 4u);
  const std::vector<float> int8 = InferLogits(q->spec, kImage, q->params, x, 64);
  EXPECT_LT(RelativeError(want, int8), 0.08f);
}

}  // namespace
}  // namespace tessera
