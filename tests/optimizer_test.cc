#include "server/optimizer.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

// |got - want| <= 1e-6 * |want|, with a tiny floor for values near zero.
void ExpectClose(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-6 * std::fabs(want) + 1e-9) << what;
}

std::unique_ptr<Optimizer> Make(const proto::OptimizerSpec& spec) {
  auto o = CreateOptimizer(spec);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return o.ok() ? std::move(o).value() : nullptr;
}

const std::vector<float> kW0 = {0.5f, -1.25f, 2.0f, 0.0f, -0.03125f};
// Gradients for steps 1..3.
const std::vector<std::vector<float>> kG = {
    {0.1f, -0.2f, 0.3f, 1.0f, -4.0f},
    {-0.05f, 0.4f, 0.3f, -1.0f, 2.5f},
    {0.2f, 0.0f, -0.7f, 0.5f, 0.125f},
};

TEST(OptimizerTest, PlainSgd) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::SGD);
  spec.set_learning_rate(0.1f);
  auto opt = Make(spec);
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->state_per_param(), 0);
  std::vector<float> w = kW0;
  std::vector<double> want(kW0.begin(), kW0.end());
  const double lr = spec.learning_rate();
  for (int step = 1; step <= 3; ++step) {
    opt->Apply(step, w.data(), kG[step - 1].data(), nullptr, w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      want[i] -= lr * kG[step - 1][i];
      ExpectClose(w[i], want[i], "step " + std::to_string(step) + " key " + std::to_string(i));
    }
  }
}

TEST(OptimizerTest, SgdWithMomentumAndWeightDecay) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::SGD);
  spec.set_learning_rate(0.05f);
  spec.set_momentum(0.9f);
  spec.set_weight_decay(0.01f);
  auto opt = Make(spec);
  ASSERT_NE(opt, nullptr);
  ASSERT_EQ(opt->state_per_param(), 1);
  const size_t n = kW0.size();
  std::vector<float> w = kW0;
  std::vector<float> state(n, 0.0f);
  // PyTorch: d = g + wd*w; v = momentum*v + d (v = d on the first step); w -= lr*v.
  const double lr = spec.learning_rate(), mu = spec.momentum(), wd = spec.weight_decay();
  std::vector<double> want(kW0.begin(), kW0.end()), v(n, 0.0);
  for (int step = 1; step <= 3; ++step) {
    opt->Apply(step, w.data(), kG[step - 1].data(), state.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const double d = kG[step - 1][i] + wd * want[i];
      v[i] = step == 1 ? d : mu * v[i] + d;
      want[i] -= lr * v[i];
      const std::string where = "step " + std::to_string(step) + " key " + std::to_string(i);
      ExpectClose(w[i], want[i], where);
      ExpectClose(state[i], v[i], where + " (momentum buffer)");
    }
  }
}

TEST(OptimizerTest, AdamWithWeightDecay) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::ADAM);
  spec.set_learning_rate(0.01f);
  spec.set_weight_decay(0.1f);
  spec.set_beta1(0.8f);
  spec.set_beta2(0.99f);
  spec.set_epsilon(1e-3f);  // large enough to matter in the comparison
  auto opt = Make(spec);
  ASSERT_NE(opt, nullptr);
  ASSERT_EQ(opt->state_per_param(), 2);
  const size_t n = kW0.size();
  std::vector<float> w = kW0;
  std::vector<float> state(2 * n, 0.0f);
  // PyTorch's Adam: d = g + wd*w; m = b1*m + (1-b1)*d; v = b2*v + (1-b2)*d^2;
  // w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
  const double lr = spec.learning_rate(), wd = spec.weight_decay(), b1 = spec.beta1(), b2 = spec.beta2(),
               eps = spec.epsilon();
  std::vector<double> want(kW0.begin(), kW0.end()), m(n, 0.0), v(n, 0.0);
  for (int step = 1; step <= 3; ++step) {
    opt->Apply(step, w.data(), kG[step - 1].data(), state.data(), n);
    const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    for (size_t i = 0; i < n; ++i) {
      const double d = kG[step - 1][i] + wd * want[i];
      m[i] = b1 * m[i] + (1 - b1) * d;
      v[i] = b2 * v[i] + (1 - b2) * d * d;
      want[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
      const std::string where = "step " + std::to_string(step) + " key " + std::to_string(i);
      ExpectClose(w[i], want[i], where);
      ExpectClose(state[i], m[i], where + " (first moment)");
      ExpectClose(state[n + i], v[i], where + " (second moment)");
    }
  }
}

TEST(OptimizerTest, SgdFollowsTheCosineSchedule) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::SGD);
  spec.set_learning_rate(0.5f);
  spec.set_schedule(proto::OptimizerSpec::COSINE);
  // 2 steps an epoch, 2 epochs: updates t = 0..3 of T = 4.
  auto o = CreateOptimizer(spec, {/*steps_per_epoch=*/2, /*epochs=*/2, /*step_offset=*/0});
  ASSERT_OK(o.status());
  const std::unique_ptr<Optimizer>& opt = *o;
  // 0.5 * (1 + cos(pi * t / 4)) / 2.
  const double lr[] = {0.5, 0.25 * (1 + 0.70710678118654752), 0.25, 0.25 * (1 - 0.70710678118654752)};
  std::vector<float> w = kW0;
  std::vector<double> want(kW0.begin(), kW0.end());
  const std::vector<float> g = kG[0];
  for (int step = 1; step <= 4; ++step) {
    EXPECT_EQ(opt->schedule().At(step), static_cast<float>(lr[step - 1])) << "step " << step;
    opt->Apply(step, w.data(), g.data(), nullptr, w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      want[i] -= lr[step - 1] * g[i];
      ExpectClose(w[i], want[i], "step " + std::to_string(step) + " key " + std::to_string(i));
    }
  }
}

TEST(OptimizerTest, SgdWithScheduleIsBitwiseSgdAtTheScheduledRate) {
  // The scheduled optimizer equals, bit for bit, one with a constant rate set
  // to the schedule's float at each step: the rate is all that changes.
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.05f);
  spec.set_momentum(0.9f);
  spec.set_weight_decay(0.01f);
  spec.set_schedule(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(1);
  spec.set_gamma(0.3f);
  spec.set_warmup_epochs(0.5f);
  const ScheduleClock clock{/*steps_per_epoch=*/2, /*epochs=*/3, /*step_offset=*/0};
  auto scheduled = CreateOptimizer(spec, clock);
  ASSERT_OK(scheduled.status());
  std::vector<float> w = kW0, w_ref = kW0, state(kW0.size(), 0.0f), state_ref(kW0.size(), 0.0f);
  for (int step = 1; step <= 6; ++step) {
    proto::OptimizerSpec fixed = spec;
    fixed.set_schedule(proto::OptimizerSpec::CONSTANT);
    fixed.set_warmup_epochs(0);
    fixed.set_min_learning_rate(0);
    fixed.set_learning_rate((*scheduled)->schedule().At(step));
    auto reference = CreateOptimizer(fixed);
    ASSERT_OK(reference.status());
    const std::vector<float>& g = kG[(step - 1) % kG.size()];
    (*scheduled)->Apply(step, w.data(), g.data(), state.data(), w.size());
    (*reference)->Apply(step, w_ref.data(), g.data(), state_ref.data(), w_ref.size());
    EXPECT_EQ(w, w_ref) << "step " << step;
    EXPECT_EQ(state, state_ref) << "step " << step;
  }
  // Warm-up (1 step), then 0.05 in epoch 1, 0.015 in epoch 2...
  EXPECT_EQ((*scheduled)->schedule().At(1), static_cast<float>(0.05 * 1 / 1));
  EXPECT_EQ((*scheduled)->schedule().At(3), static_cast<float>(static_cast<double>(0.05f) * static_cast<double>(0.3f)));
}

TEST(OptimizerTest, AdamWithWarmup) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::ADAM);
  spec.set_learning_rate(0.01f);
  spec.set_beta1(0.8f);
  spec.set_beta2(0.99f);
  spec.set_epsilon(1e-3f);
  spec.set_warmup_epochs(1);  // 3 steps an epoch: rates lr/3, 2lr/3, lr
  auto o = CreateOptimizer(spec, {/*steps_per_epoch=*/3, /*epochs=*/2, /*step_offset=*/0});
  ASSERT_OK(o.status());
  const size_t n = kW0.size();
  std::vector<float> w = kW0;
  std::vector<float> state(2 * n, 0.0f);
  const double b1 = spec.beta1(), b2 = spec.beta2(), eps = spec.epsilon();
  std::vector<double> want(kW0.begin(), kW0.end()), m(n, 0.0), v(n, 0.0);
  for (int step = 1; step <= 3; ++step) {
    const double lr = static_cast<double>(spec.learning_rate()) * step / 3;
    (*o)->Apply(step, w.data(), kG[step - 1].data(), state.data(), n);
    const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    for (size_t i = 0; i < n; ++i) {
      const double d = kG[step - 1][i];
      m[i] = b1 * m[i] + (1 - b1) * d;
      v[i] = b2 * v[i] + (1 - b2) * d * d;
      want[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
      ExpectClose(w[i], want[i], "step " + std::to_string(step) + " key " + std::to_string(i));
    }
  }
}

TEST(OptimizerTest, ScheduleWithoutTheClockIsAnError) {
  proto::OptimizerSpec spec;
  spec.set_schedule(proto::OptimizerSpec::COSINE);
  auto o = CreateOptimizer(spec);
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("optimizer.schedule COSINE"), std::string::npos) << o.status().ToString();
}

TEST(OptimizerTest, AdamDefaultsMatchPyTorch) {
  // With the proto's defaults (0.9, 0.999, 1e-8) the first step moves every
  // weight by almost exactly lr against the sign of its gradient.
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::ADAM);
  spec.set_learning_rate(0.001f);
  EXPECT_FLOAT_EQ(spec.beta1(), 0.9f);
  EXPECT_FLOAT_EQ(spec.beta2(), 0.999f);
  EXPECT_FLOAT_EQ(spec.epsilon(), 1e-8f);
  auto opt = Make(spec);
  ASSERT_NE(opt, nullptr);
  std::vector<float> w = {1.0f, 1.0f, 1.0f};
  const std::vector<float> g = {0.5f, -3.0f, 1e-3f};
  std::vector<float> state(6, 0.0f);
  opt->Apply(1, w.data(), g.data(), state.data(), 3);
  EXPECT_NEAR(w[0], 1.0 - 0.001, 1e-6);
  EXPECT_NEAR(w[1], 1.0 + 0.001, 1e-6);
  EXPECT_NEAR(w[2], 1.0 - 0.001, 1e-6);
}

// Applies `steps` steps to w in slices cut at `cuts` (each slice with its own
// state blocks), returning w and the state of every slice back to back.
std::vector<float> ApplySliced(const Optimizer& opt, std::vector<float> w, const std::vector<std::vector<float>>& g,
                               const std::vector<size_t>& cuts, std::vector<float>* state_out) {
  const int per = opt.state_per_param();
  std::vector<size_t> bounds = {0};
  bounds.insert(bounds.end(), cuts.begin(), cuts.end());
  bounds.push_back(w.size());
  std::vector<std::vector<float>> states;
  for (size_t s = 0; s + 1 < bounds.size(); ++s) states.emplace_back((bounds[s + 1] - bounds[s]) * per, 0.0f);
  for (size_t step = 0; step < g.size(); ++step) {
    for (size_t s = 0; s + 1 < bounds.size(); ++s) {
      const size_t n = bounds[s + 1] - bounds[s];
      opt.Apply(static_cast<int64_t>(step + 1), w.data() + bounds[s], g[step].data() + bounds[s],
                per > 0 ? states[s].data() : nullptr, n);
    }
  }
  state_out->clear();
  // Per-key state in a split-independent order: for each key, its `per` values.
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    const size_t n = bounds[s + 1] - bounds[s];
    for (size_t k = 0; k < n; ++k) {
      for (int b = 0; b < per; ++b) state_out->push_back(states[s][b * n + k]);
    }
  }
  return w;
}

TEST(OptimizerTest, SplittingKeysGivesBitwiseEqualResults) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t n = 1037;
  std::vector<float> w(n);
  for (float& x : w) x = normal(rng);
  std::vector<std::vector<float>> g(4, std::vector<float>(n));
  for (auto& step : g) {
    for (float& x : step) x = normal(rng) * 0.1f;
  }
  std::vector<proto::OptimizerSpec> specs(4);
  specs[0].set_learning_rate(0.1f);
  specs[1].set_learning_rate(0.1f);
  specs[1].set_momentum(0.9f);
  specs[1].set_weight_decay(1e-4f);
  specs[2].set_type(proto::OptimizerSpec::ADAM);
  specs[2].set_learning_rate(0.003f);
  specs[3].set_type(proto::OptimizerSpec::ADAM);
  specs[3].set_learning_rate(0.003f);
  specs[3].set_weight_decay(0.01f);
  for (size_t k = 0; k < specs.size(); ++k) {
    SCOPED_TRACE(specs[k].ShortDebugString());
    auto opt = Make(specs[k]);
    ASSERT_NE(opt, nullptr);
    std::vector<float> state_whole, state_halves, state_odd;
    const std::vector<float> whole = ApplySliced(*opt, w, g, {}, &state_whole);
    const std::vector<float> halves = ApplySliced(*opt, w, g, {n / 2}, &state_halves);
    const std::vector<float> odd = ApplySliced(*opt, w, g, {1, 3, 17, 500, 1036}, &state_odd);
    ASSERT_EQ(whole.size(), n);
    EXPECT_NE(std::memcmp(whole.data(), w.data(), n * sizeof(float)), 0) << "the steps changed nothing";
    EXPECT_EQ(std::memcmp(whole.data(), halves.data(), n * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(whole.data(), odd.data(), n * sizeof(float)), 0);
    ASSERT_EQ(state_whole.size(), state_halves.size());
    ASSERT_EQ(state_whole.size(), state_odd.size());
    EXPECT_EQ(std::memcmp(state_whole.data(), state_halves.data(), state_whole.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(state_whole.data(), state_odd.data(), state_whole.size() * sizeof(float)), 0);
  }
}

TEST(OptimizerTest, CreateRejectsNonPositiveLearningRate) {
  for (float lr : {0.0f, -0.1f, std::numeric_limits<float>::quiet_NaN()}) {
    for (auto type : {proto::OptimizerSpec::SGD, proto::OptimizerSpec::ADAM}) {
      proto::OptimizerSpec spec;
      spec.set_type(type);
      spec.set_learning_rate(lr);
      auto o = CreateOptimizer(spec);
      EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << "lr " << lr;
      EXPECT_NE(o.status().message().find("learning_rate"), std::string::npos) << o.status().ToString();
    }
  }
}

TEST(OptimizerTest, CreateAcceptsDefaults) {
  proto::OptimizerSpec spec;
  auto o = CreateOptimizer(spec);
  ASSERT_OK(o.status());
  EXPECT_EQ((*o)->state_per_param(), 0);  // plain SGD by default
}

#ifdef NDEBUG
TEST(OptimizerTest, CreateRejectsUnknownType) {
  proto::OptimizerSpec spec;
  // Only reachable by a cast (the parser keeps unknown enum values out); the
  // generated setter asserts in debug builds.
  spec.set_type(static_cast<proto::OptimizerSpec::Type>(7));
  auto o = CreateOptimizer(spec);
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
}
#endif

TEST(OptimizerTest, CreateRejectsBadHyperparameters) {
  struct Case {
    const char* field;
    proto::OptimizerSpec spec;
  };
  std::vector<Case> cases;
  auto add = [&](const char* field, auto mutate) {
    proto::OptimizerSpec s;
    s.set_learning_rate(0.1f);
    mutate(s);
    cases.push_back({field, s});
  };
  add("momentum", [](proto::OptimizerSpec& s) { s.set_momentum(1.0f); });
  add("momentum", [](proto::OptimizerSpec& s) { s.set_momentum(-0.5f); });
  add("weight_decay", [](proto::OptimizerSpec& s) { s.set_weight_decay(-1.0f); });
  add("beta1", [](proto::OptimizerSpec& s) {
    s.set_type(proto::OptimizerSpec::ADAM);
    s.set_beta1(1.0f);
  });
  add("beta2", [](proto::OptimizerSpec& s) {
    s.set_type(proto::OptimizerSpec::ADAM);
    s.set_beta2(1.0f);
  });
  add("epsilon", [](proto::OptimizerSpec& s) {
    s.set_type(proto::OptimizerSpec::ADAM);
    s.set_epsilon(0.0f);
  });
  add("step_epochs", [](proto::OptimizerSpec& s) { s.set_schedule(proto::OptimizerSpec::STEP); });
  add("gamma", [](proto::OptimizerSpec& s) { s.set_gamma(0.0f); });
  add("warmup_epochs", [](proto::OptimizerSpec& s) { s.set_warmup_epochs(-1.0f); });
  add("min_learning_rate", [](proto::OptimizerSpec& s) { s.set_min_learning_rate(0.2f); });
  for (const Case& c : cases) {
    auto o = CreateOptimizer(c.spec);
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << c.spec.ShortDebugString();
    EXPECT_NE(o.status().message().find(c.field), std::string::npos) << o.status().ToString();
  }
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Stepping a slice chunk by chunk, with the state blocks spanning the whole
// slice (stride), equals stepping it whole.
TEST(OptimizerTest, ChunksWithStrideEqualTheWholeSlice) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::ADAM);
  spec.set_learning_rate(0.01f);
  spec.set_weight_decay(0.001f);
  auto opt = CreateOptimizer(spec);
  ASSERT_TRUE(opt.ok());
  const size_t n = 10;
  std::vector<float> whole(n), chunked(n), g(n);
  for (size_t i = 0; i < n; ++i) {
    whole[i] = chunked[i] = 0.1f * static_cast<float>(i) - 0.3f;
    g[i] = 0.05f * static_cast<float>(i * i % 7) - 0.1f;
  }
  std::vector<float> state_whole(2 * n, 0.0f), state_chunked(2 * n, 0.0f);
  for (int64_t step = 1; step <= 3; ++step) {
    (*opt)->Apply(step, whole.data(), g.data(), state_whole.data(), n);
    (*opt)->Apply(step, chunked.data(), g.data(), state_chunked.data(), 4, n);
    (*opt)->Apply(step, chunked.data() + 4, g.data() + 4, state_chunked.data() + 4, 6, n);
  }
  EXPECT_EQ(whole, chunked);
  EXPECT_EQ(state_whole, state_chunked);
}

}  // namespace
}  // namespace tessera
