// Pruning's math (export/pruning.h) without processes: the global threshold
// and exact count of unstructured pruning, and structured pruning's smaller
// model, whose logits must equal those of the original model with the removed
// units silenced. And the servers' frozen zeros (KvShard with
// freeze_zero_weights), which keep pruned weights pruned while fine-tuning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "export/pruning.h"
#include "models/model.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

const Shape kImage = {1, 28, 28};

// The model's initialization, with BatchNorm's tensors moved off 1 and 0 so
// that silencing a channel there matters.
std::vector<float> Params(const proto::ModelSpec& spec, uint64_t seed = 3) {
  auto model = Model::Create(spec, kImage, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), seed, params.data());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> u(0.5f, 1.5f), v(-0.5f, 0.5f);
  for (const TensorInfo& t : (*model)->tensors()) {
    if (t.name.find("batch_norm") == std::string::npos) continue;
    const bool positive = t.name.ends_with("weight") || t.name.ends_with("running_var");
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) params[k] = positive ? u(rng) : v(rng);
  }
  return params;
}

std::vector<TensorInfo> TensorsOf(const proto::ModelSpec& spec) {
  auto model = Model::Create(spec, kImage, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? (*model)->tensors() : std::vector<TensorInfo>();
}

// Model::Infer's logits (evaluation mode) of `batch` images.
std::vector<float> Logits(const proto::ModelSpec& spec, const std::vector<float>& params, const std::vector<float>& x,
                          int64_t batch) {
  return InferLogits(spec, kImage, params, x, batch);
}

std::vector<float> Images(int64_t batch) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 2.0f);
  std::vector<float> x(batch * 784);
  for (float& f : x) f = u(rng);
  return x;
}

TEST(PruneCountTest, FloorOfTheProductWithoutBinaryNoise) {
  EXPECT_EQ(PruneCount(0.29, 100), 29);  // 0.29 * 100 is 28.999999999999996 in double
  EXPECT_EQ(PruneCount(0.5, 7), 3);
  EXPECT_EQ(PruneCount(0.9, 10), 9);
  EXPECT_EQ(PruneCount(0.0, 10), 0);
  EXPECT_EQ(PruneCount(0.999, 10), 9);
  EXPECT_EQ(PruneCount(0.5, 0), 0);
}

TEST(UnstructuredPruningTest, OneGlobalThresholdOverConvAndLinearWeightsOnly) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  const std::vector<TensorInfo> tensors = TensorsOf(spec);
  const std::vector<float> before = Params(spec);
  for (double sparsity : {0.0, 0.5, 0.9, 0.29}) {
    SCOPED_TRACE(sparsity);
    std::vector<float> params = before;
    auto r = PruneUnstructured(tensors, sparsity, &params);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    int64_t weights = 0, zeros = 0;
    float largest_pruned = 0, smallest_kept = INFINITY;
    for (const TensorInfo& t : tensors) {
      const bool weight = t.trainable && t.shape.size() >= 2;
      EXPECT_EQ(IsPrunableWeight(t), weight) << t.name;
      for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
        if (!weight) {
          EXPECT_EQ(params[k], before[k]) << t.name << " is not a weight and must not change";
          continue;
        }
        ++weights;
        if (params[k] == 0.0f) {
          ++zeros;
          largest_pruned = std::max(largest_pruned, std::fabs(before[k]));
        } else {
          EXPECT_EQ(params[k], before[k]);
          smallest_kept = std::min(smallest_kept, std::fabs(before[k]));
        }
      }
    }
    EXPECT_EQ(r->weights, weights);
    EXPECT_EQ(r->pruned, PruneCount(sparsity, weights));
    EXPECT_EQ(zeros, r->pruned);  // the initialization has no exact zeros
    EXPECT_EQ(r->zeros, zeros);
    EXPECT_LE(largest_pruned, smallest_kept);  // one threshold for every layer
    EXPECT_EQ(r->threshold, largest_pruned);
  }
}

TEST(UnstructuredPruningTest, TiesGoInKeyOrderAndTheCountIsExact) {
  // Two weight tensors of equal magnitudes (with signs), one bias between them.
  std::vector<TensorInfo> tensors = {
      {.name = "a.weight", .shape = {3, 4}, .offset = 0, .size = 12},
      {.name = "a.bias", .shape = {3}, .offset = 12, .size = 3},
      {.name = "b.weight", .shape = {2, 3}, .offset = 15, .size = 6},
  };
  std::vector<float> params(21);
  for (size_t k = 0; k < params.size(); ++k) params[k] = k % 2 ? 0.5f : -0.5f;
  params[3] = 0.25f;  // the smallest goes first
  params[16] = NAN;   // never pruned
  auto r = PruneUnstructured(tensors, 0.5, &params);  // 18 weights: 9 go
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pruned, 9);
  std::vector<uint64_t> zeroed;
  for (size_t k = 0; k < params.size(); ++k) {
    if (params[k] == 0.0f) zeroed.push_back(k);
  }
  // Key 3, then the lowest keys of the rest, skipping the bias.
  EXPECT_EQ(zeroed, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(r->threshold, 0.5f);
  EXPECT_TRUE(std::isnan(params[16]));

  std::vector<float> all_but_nan(21, 1.0f);
  all_but_nan[0] = NAN;
  ASSERT_TRUE(PruneUnstructured(tensors, 0.99, &all_but_nan).ok());
  EXPECT_TRUE(std::isnan(all_but_nan[0]));  // PruneCount(0.99, 18) = 17: all but the NaN
  EXPECT_EQ(std::count(all_but_nan.begin(), all_but_nan.end(), 0.0f), 17);

  for (double bad : {-0.1, 1.0, 1.5, double(NAN)}) {
    std::vector<float> p = params;
    EXPECT_EQ(PruneUnstructured(tensors, bad, &p).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

// The L1 norm of each output unit's weight row.
std::vector<double> RowNorms(const TensorInfo& weight, const std::vector<float>& params) {
  const int64_t units = weight.shape[0], row = static_cast<int64_t>(weight.size) / units;
  std::vector<double> norms(units, 0.0);
  for (int64_t o = 0; o < units; ++o) {
    for (int64_t k = 0; k < row; ++k) norms[o] += std::fabs(params[weight.offset + o * row + k]);
  }
  return norms;
}

TEST(StructuredPruningTest, LayersShrinkAndComputeWhatTheSilencedOriginalComputes) {
  // kCnnModel: conv+BN2d, conv without bias, dropout, flatten, linear+BN1d;
  // the third: a Linear reading a conv's [C, H, W] output without Flatten.
  const char kConvIntoLinear[] = R"(
    layer { conv2d { out_channels: 5 kernel_size: 4 stride: 3 } }
    layer { relu {} }
    layer { linear { out_features: 7 } }
    layer { relu {} }
    layer { linear { out_features: 10 } }
  )";
  for (const char* text : {kCnnModel, kMlpModel, kConvIntoLinear}) {
    SCOPED_TRACE(text);
    const proto::ModelSpec spec = ParseModel(text);
    const std::vector<float> params = Params(spec);
    const std::vector<TensorInfo> tensors = TensorsOf(spec);
    for (double sparsity : {0.5, 0.3, 0.9}) {
      SCOPED_TRACE(sparsity);
      auto pruned = PruneStructured(spec, kImage, 10, params, sparsity);
      ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
      ASSERT_EQ(pruned->kept.size(), static_cast<size_t>(spec.layer_size()));
      int last = -1;
      for (int i = 0; i < spec.layer_size(); ++i) {
        if (spec.layer(i).has_conv2d() || spec.layer(i).has_linear()) last = i;
      }
      for (int i = 0; i < spec.layer_size(); ++i) {
        const proto::LayerSpec& a = spec.layer(i);
        const proto::LayerSpec& b = pruned->spec.layer(i);
        if (!a.has_conv2d() && !a.has_linear()) {
          EXPECT_TRUE(pruned->kept[i].empty());
          continue;
        }
        const int units = a.has_conv2d() ? a.conv2d().out_channels() : a.linear().out_features();
        const int now = b.has_conv2d() ? b.conv2d().out_channels() : b.linear().out_features();
        if (i == last) {  // the classes
          EXPECT_EQ(now, units);
          EXPECT_TRUE(pruned->kept[i].empty());
          continue;
        }
        EXPECT_EQ(now, std::max<int64_t>(1, units - PruneCount(sparsity, units))) << "layer " << i;
        ASSERT_EQ(pruned->kept[i].size(), static_cast<size_t>(now));
        EXPECT_TRUE(std::is_sorted(pruned->kept[i].begin(), pruned->kept[i].end()));
        // The kept units have the largest L1 norms of the layer.
        const TensorInfo* weight = nullptr;
        for (const TensorInfo& t : tensors) {
          if (t.name == "layer" + std::to_string(i) + "." + (a.has_conv2d() ? "conv2d" : "linear") + ".weight") {
            weight = &t;
          }
        }
        ASSERT_NE(weight, nullptr);
        const std::vector<double> norms = RowNorms(*weight, params);
        const std::set<int64_t> kept(pruned->kept[i].begin(), pruned->kept[i].end());
        double smallest_kept = INFINITY, largest_removed = 0;
        for (int64_t o = 0; o < units; ++o) {
          if (kept.count(o)) {
            smallest_kept = std::min(smallest_kept, norms[o]);
          } else {
            largest_removed = std::max(largest_removed, norms[o]);
          }
        }
        EXPECT_LE(largest_removed, smallest_kept);
      }
      auto smaller = Model::Create(pruned->spec, kImage, 10);
      ASSERT_TRUE(smaller.ok()) << smaller.status().ToString();
      EXPECT_EQ((*smaller)->num_keys(), pruned->params.size());
      EXPECT_EQ(pruned->params_before, params.size());
      EXPECT_EQ(pruned->params_after, pruned->params.size());
      EXPECT_LT(pruned->params_after, pruned->params_before);
      EXPECT_LT(pruned->weights_after, pruned->weights_before);

      // The strong check: same logits as the original with the removed units silenced.
      constexpr int64_t kBatch = 6;
      const std::vector<float> x = Images(kBatch);
      const std::vector<float> silenced = SilenceRemovedUnits(spec, kImage, params, *pruned);
      const std::vector<float> expected = Logits(spec, silenced, x, kBatch);
      const std::vector<float> got = Logits(pruned->spec, pruned->params, x, kBatch);
      ASSERT_EQ(got.size(), expected.size());
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::fabs(double(got[i]) - expected[i]) / std::max(1.0, std::fabs(double(expected[i]))));
      }
      EXPECT_LT(worst, 1e-5);
      // And silencing did change the original's logits: the check is not vacuous.
      const std::vector<float> original = Logits(spec, params, x, kBatch);
      double moved = 0;
      for (size_t i = 0; i < got.size(); ++i) moved = std::max(moved, std::fabs(double(original[i]) - expected[i]));
      EXPECT_GT(moved, 1e-4);
    }
  }
}

TEST(StructuredPruningTest, ExactRemappingOnAHandBuiltModel) {
  // conv 3@1x1 on [1, 2, 2] -> flatten [12] -> linear 10: channel c is features 4c..4c+3.
  const proto::ModelSpec spec = ParseModel(R"(
    layer { conv2d { out_channels: 3 kernel_size: 1 } }
    layer { flatten {} }
    layer { linear { out_features: 10 } }
  )");
  const Shape input = {1, 2, 2};
  auto model = Model::Create(spec, input, 10);
  ASSERT_TRUE(model.ok());
  // conv weight [3,1,1,1] = {0.1, -3, 2}; bias {7, 8, 9}; linear weight [10, 12] = key, bias 0.
  std::vector<float> params((*model)->num_keys(), 0.0f);
  params[0] = 0.1f, params[1] = -3.0f, params[2] = 2.0f;
  params[3] = 7, params[4] = 8, params[5] = 9;
  for (int k = 0; k < 120; ++k) params[6 + k] = static_cast<float>(k);
  auto pruned = PruneStructured(spec, input, 10, params, 0.5);  // floor(1.5) = 1 channel goes: channel 0
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  EXPECT_EQ(pruned->spec.layer(0).conv2d().out_channels(), 2);
  EXPECT_EQ(pruned->kept[0], (std::vector<int64_t>{1, 2}));
  std::vector<float> expected = {-3, 2, 8, 9};
  for (int o = 0; o < 10; ++o) {
    for (int f = 4; f < 12; ++f) expected.push_back(static_cast<float>(o * 12 + f));
  }
  expected.insert(expected.end(), 10, 0.0f);
  EXPECT_EQ(pruned->params, expected);
}

TEST(StructuredPruningTest, BadInputIsRefused) {
  const proto::ModelSpec spec = ParseModel(kMlpModel);
  std::vector<float> params = Params(spec);
  EXPECT_EQ(PruneStructured(spec, kImage, 10, params, 1.0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PruneStructured(spec, kImage, 10, params, -0.5).status().code(), StatusCode::kInvalidArgument);
  params.pop_back();
  EXPECT_EQ(PruneStructured(spec, kImage, 10, params, 0.5).status().code(), StatusCode::kInvalidArgument);
}

// --- the servers' side: frozen zeros ---

std::unique_ptr<Optimizer> MakeOptimizer(proto::OptimizerSpec::Type type) {
  proto::OptimizerSpec spec;
  spec.set_type(type);
  spec.set_learning_rate(0.05f);
  spec.set_momentum(type == proto::OptimizerSpec::SGD ? 0.9f : 0.0f);
  spec.set_weight_decay(0.01f);  // would move a zero weight on its own
  return std::move(CreateOptimizer(spec)).value();
}

TEST(FreezeZeroWeightsTest, ZeroWeightsAndTheirStateStayZeroThroughUpdates) {
  // A weight [4, 6] over two slices and a bias [4]; every third weight and one bias entry start at 0.
  const std::vector<TensorInfo> tensors = {
      {.name = "w", .shape = {4, 6}, .offset = 0, .size = 24},
      {.name = "b", .shape = {4}, .offset = 24, .size = 4},
  };
  const std::vector<KeyRange> slices = {{0, 10}, {10, 24}, {24, 28}};
  std::vector<float> start(28);
  for (size_t k = 0; k < start.size(); ++k) start[k] = k % 3 == 0 ? 0.0f : 0.1f * static_cast<float>(k);
  for (auto type : {proto::OptimizerSpec::SGD, proto::OptimizerSpec::ADAM}) {
    for (bool freeze : {true, false}) {
      SCOPED_TRACE(std::string(proto::OptimizerSpec::Type_Name(type)) + (freeze ? " frozen" : " free"));
      auto optimizer = MakeOptimizer(type);
      KvShard shard(slices, tensors, 1, optimizer.get(), proto::BSP, 1, freeze);
      const int per = optimizer->state_per_param();
      std::vector<SliceRecord> records;
      for (const KeyRange& r : slices) {
        // Non-zero state everywhere: the freeze must reset it too.
        records.push_back({r, 4, per, std::vector<float>(start.begin() + r.begin, start.begin() + r.end),
                           std::vector<float>(r.size() * per, 0.5f)});
      }
      ASSERT_OK(shard.Restore(records, 4));
      for (int64_t step = 4; step < 7; ++step) {
        std::vector<zmq::message_t> frames;
        std::vector<float> g(28);
        for (size_t k = 0; k < g.size(); ++k) g[k] = 0.3f + 0.01f * static_cast<float>(k + step);
        for (const KeyRange& r : slices) frames.emplace_back(g.data() + r.begin, r.size() * sizeof(float));
        ASSERT_TRUE(shard.AddPush(0, step, 2, slices, std::move(frames)).value());
      }
      const std::vector<float> after = shard.params();
      const std::vector<SliceSnapshot> snapshot = shard.Snapshot();
      for (size_t k = 0; k < 28; ++k) {
        const bool zero_weight = k < 24 && start[k] == 0.0f;
        if (zero_weight && freeze) {
          EXPECT_EQ(after[k], 0.0f) << k;
          EXPECT_FALSE(std::signbit(after[k])) << k;
        } else {
          EXPECT_NE(after[k], start[k]) << k << ": trained (a zero bias is no weight, never frozen)";
        }
      }
      for (const SliceSnapshot& s : snapshot) {
        for (uint64_t k = s.range.begin; k < s.range.end; ++k) {
          if (!(k < 24 && start[k] == 0.0f && freeze)) continue;
          for (int j = 0; j < per; ++j) EXPECT_EQ(s.state[j * s.range.size() + (k - s.range.begin)], 0.0f) << k;
        }
      }
    }
  }
}

}  // namespace
}  // namespace tessera
