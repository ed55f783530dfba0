// The sparse tables' optimizers (server/sparse_optimizer.h) against steps
// worked out by hand, and against PyTorch: SGD, Adagrad and SparseAdam on a
// two-row table with sparse gradients, three steps (row 0, row 1, row 0),
// values from Debian's python3-torch 1.13 (the script is in the comment of
// PyTorchsSparsePathsGiveTheSameRows).
#include "server/sparse_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr int kDim = 3;

std::unique_ptr<SparseOptimizer> Make(SparseOptimizerOptions options) {
  auto optimizer = SparseOptimizer::Create(options);
  EXPECT_OK(optimizer.status());
  return optimizer.ok() ? std::move(*optimizer) : nullptr;
}

SparseOptimizerOptions Of(SparseOptimizerType type) {
  SparseOptimizerOptions options;
  options.type = type;
  return options;
}

// A table of rows with their state, stepped as a server steps it: a step
// passes the touched rows only.
struct Table {
  Table(const SparseOptimizer& optimizer, std::vector<std::vector<float>> rows) : optimizer(optimizer), w(rows) {
    for (size_t r = 0; r < rows.size(); ++r) {
      state.emplace_back(optimizer.state_per_value() * kDim);
      optimizer.InitState(state.back().data(), kDim);
    }
  }
  void Step(int64_t step, float lr, int row, const std::vector<float>& g) {
    optimizer.ApplyRow(step, lr, w[row].data(), g.data(), state[row].data(), kDim);
  }
  const SparseOptimizer& optimizer;
  std::vector<std::vector<float>> w, state;
};

const std::vector<std::vector<float>> kStart = {{0.5f, -1.25f, 2.0f}, {1.0f, 0.75f, -0.5f}};
const std::vector<float> kG1 = {0.1f, -0.2f, 0.3f}, kG2 = {0.0f, 0.5f, -1.5f}, kG3 = {-0.25f, 0.125f, 4.0f};

// Steps 1 and 3 on row 0, step 2 on row 1.
Table ThreeSteps(const SparseOptimizer& optimizer, float lr) {
  Table table(optimizer, kStart);
  table.Step(1, lr, 0, kG1);
  table.Step(2, lr, 1, kG2);
  table.Step(3, lr, 0, kG3);
  return table;
}

TEST(SparseOptimizerTest, StateSizesAndInitialState) {
  EXPECT_EQ(Make(Of(SparseOptimizerType::kSgd))->state_per_value(), 0);
  EXPECT_EQ(Make(Of(SparseOptimizerType::kAdagrad))->state_per_value(), 1);
  EXPECT_EQ(Make(Of(SparseOptimizerType::kFtrl))->state_per_value(), 2);
  EXPECT_EQ(Make(Of(SparseOptimizerType::kAdam))->state_per_value(), 2);
  SparseOptimizerOptions adagrad = Of(SparseOptimizerType::kAdagrad);
  adagrad.initial_accumulator = 0.1f;
  std::vector<float> state(kDim, -1);
  Make(adagrad)->InitState(state.data(), kDim);
  EXPECT_EQ(state, std::vector<float>(kDim, 0.1f));
  std::vector<float> adam_state(2 * kDim, -1);
  Make(Of(SparseOptimizerType::kAdam))->InitState(adam_state.data(), kDim);
  EXPECT_EQ(adam_state, std::vector<float>(2 * kDim, 0.0f));
}

// By hand, in double, from the header's formulas; a float32 step is within
// a few units in the last place of it.
TEST(SparseOptimizerTest, EachStepIsTheFormulaForTheRowsItTouches) {
  const double lr = 0.1;
  {
    Table t = ThreeSteps(*Make(Of(SparseOptimizerType::kSgd)), 0.1f);
    for (int i = 0; i < kDim; ++i) EXPECT_NEAR(t.w[0][i], kStart[0][i] - lr * kG1[i] - lr * kG3[i], 1e-6) << i;
  }
  {
    Table t = ThreeSteps(*Make(Of(SparseOptimizerType::kAdagrad)), 0.1f);
    for (int i = 0; i < kDim; ++i) {
      double w = kStart[0][i], a = 0;
      for (const std::vector<float>* g : {&kG1, &kG3}) {
        a += (*g)[i] * (*g)[i];
        w -= lr * ((*g)[i] / (std::sqrt(a) + 1e-10));
      }
      EXPECT_NEAR(t.w[0][i], w, 1e-6) << i;
      EXPECT_NEAR(t.state[0][i], a, 1e-6) << i;
    }
  }
  {
    SparseOptimizerOptions options = Of(SparseOptimizerType::kAdam);
    Table t = ThreeSteps(*Make(options), 0.01f);
    for (int i = 0; i < kDim; ++i) {
      double w = kStart[0][i], m = 0, v = 0;
      // The float hyperparameters, exactly (0.999f is 0.99900001...).
      const double beta1 = 0.9f, beta2 = 0.999f;
      const std::pair<int, const std::vector<float>*> steps[] = {{1, &kG1}, {3, &kG3}};
      for (const auto& [step, g] : steps) {
        m += ((*g)[i] - m) * (1 - beta1);
        v += ((*g)[i] * (*g)[i] - v) * (1 - beta2);
        const double size = 0.01 * std::sqrt(1 - std::pow(beta2, step)) / (1 - std::pow(beta1, step));
        w -= size * (m / (std::sqrt(v) + 1e-8));
      }
      EXPECT_NEAR(t.w[0][i], w, 1e-6) << i;
      EXPECT_NEAR(t.state[0][i], m, 1e-7) << i;
      EXPECT_NEAR(t.state[0][kDim + i], v, 1e-7) << i;
    }
  }
}

// FTRL-Proximal by hand: with l1 large enough every weight is exactly 0;
// otherwise the closed form of the paper's algorithm 1.
TEST(SparseOptimizerTest, FtrlIsTheProximalClosedFormAndL1MakesZeros) {
  SparseOptimizerOptions options = Of(SparseOptimizerType::kFtrl);
  options.ftrl_beta = 1.0f;
  options.ftrl_l1 = 0.05f;
  options.ftrl_l2 = 0.5f;
  const double alpha = 0.1;
  Table t = ThreeSteps(*Make(options), static_cast<float>(alpha));
  for (int i = 0; i < kDim; ++i) {
    double w = kStart[0][i], z = 0, n = 0;
    for (const std::vector<float>* g : {&kG1, &kG3}) {
      const double gi = (*g)[i];
      const double sigma = (std::sqrt(n + gi * gi) - std::sqrt(n)) / alpha;
      z += gi - sigma * w;
      n += gi * gi;
      w = std::fabs(z) <= 0.05 ? 0.0 : -(z - std::copysign(0.05, z)) / ((1.0 + std::sqrt(n)) / alpha + 0.5);
    }
    EXPECT_NEAR(t.w[0][i], w, 1e-6) << i;
    EXPECT_NEAR(t.state[0][i], z, 1e-5) << i;
    EXPECT_NEAR(t.state[0][kDim + i], n, 1e-6) << i;
  }
  options.ftrl_l1 = 100;
  Table sparse = ThreeSteps(*Make(options), static_cast<float>(alpha));
  EXPECT_EQ(sparse.w[0], std::vector<float>(kDim, 0.0f));
  EXPECT_EQ(sparse.w[1], std::vector<float>(kDim, 0.0f));
}

// A row no step touched keeps its values and its state bit for bit; the
// rows of one step give the same bits in any order.
TEST(SparseOptimizerTest, UntouchedRowsAreLeftExactlyAsTheyWere) {
  for (const SparseOptimizerType type : {SparseOptimizerType::kSgd, SparseOptimizerType::kAdagrad,
                                         SparseOptimizerType::kFtrl, SparseOptimizerType::kAdam}) {
    auto optimizer = Make(Of(type));
    Table table(*optimizer, kStart);
    const std::vector<float> before = table.state[1];
    table.Step(1, 0.1f, 0, kG1);
    table.Step(2, 0.1f, 0, kG3);
    EXPECT_EQ(table.w[1], kStart[1]) << static_cast<int>(type);
    EXPECT_EQ(table.state[1], before) << static_cast<int>(type);

    Table forward(*optimizer, kStart), backward(*optimizer, kStart);
    forward.Step(1, 0.1f, 0, kG1);
    forward.Step(1, 0.1f, 1, kG2);
    backward.Step(1, 0.1f, 1, kG2);
    backward.Step(1, 0.1f, 0, kG1);
    EXPECT_EQ(forward.w, backward.w) << static_cast<int>(type);
    EXPECT_EQ(forward.state, backward.state) << static_cast<int>(type);
  }
}

// PyTorch 1.13 (Debian's python3-torch), a parameter of kStart with sparse
// gradients, row 0 (kG1), row 1 (kG2), row 0 (kG3), one optimizer.step()
// each:
//   torch.optim.SGD(lr=0.1), torch.optim.Adagrad(lr=0.1),
//   torch.optim.SparseAdam(lr=0.01)
// The rows after the three steps, as it printed them (float32 values):
//   p = torch.nn.Parameter(kStart); opt = OPTIMIZER([p])
//   for row, g in ((0, kG1), (1, kG2), (0, kG3)):
//     p.grad = torch.sparse_coo_tensor([[row]], [g], (2, 3)); opt.step()
TEST(SparseOptimizerTest, PyTorchsSparsePathsGiveTheSameRows) {
  struct Case {
    SparseOptimizerType type;
    float lr;
    std::vector<float> row0, row1;
  };
  const Case cases[] = {
      {SparseOptimizerType::kSgd, 0.1f, {0.5149999856948853f, -1.2425000667572021f, 1.5700000524520874f},
       {1.0f, 0.699999988079071f, -0.3499999940395355f}},
      {SparseOptimizerType::kAdagrad, 0.1f, {0.4928476810455322f, -1.2029998302459717f, 1.8002800941467285f},
       {1.0f, 0.6499999761581421f, -0.4000000059604645f}},
      {SparseOptimizerType::kAdam, 0.01f, {0.49379628896713257f, -1.2385097742080688f, 1.9831997156143188f},
       {1.0f, 0.7425586581230164f, -0.49255862832069397f}},
  };
  for (const Case& c : cases) {
    Table t = ThreeSteps(*Make(Of(c.type)), c.lr);
    for (int i = 0; i < kDim; ++i) {
      // Bit for bit (PyTorch's kernels could fuse a multiply-add where ours
      // do not; on these rows they did not).
      EXPECT_EQ(t.w[0][i], c.row0[i]) << static_cast<int>(c.type) << " " << i;
      EXPECT_EQ(t.w[1][i], c.row1[i]) << static_cast<int>(c.type) << " " << i;
    }
  }
}

TEST(SparseOptimizerTest, HyperparametersOutOfRangeAreNamed) {
  SparseOptimizerOptions options = Of(SparseOptimizerType::kAdam);
  options.beta1 = 1.0f;
  EXPECT_EQ(SparseOptimizer::Create(options).status().message(),
            "sparse optimizer: beta1 must be in [0, 1), got 1.000000");
  options = Of(SparseOptimizerType::kFtrl);
  options.ftrl_l1 = -1;
  EXPECT_EQ(SparseOptimizer::Create(options).status().message(), "sparse optimizer: ftrl l1 must be >= 0, got -1.000000");
  options = Of(SparseOptimizerType::kAdagrad);
  options.initial_accumulator = NAN;
  EXPECT_EQ(SparseOptimizer::Create(options).status().code(), StatusCode::kInvalidArgument);
  options = Of(SparseOptimizerType::kAdam);
  options.adam_epsilon = 0;
  EXPECT_EQ(SparseOptimizer::Create(options).status().message(), "sparse optimizer: adam epsilon must be > 0, got 0.000000");
}

}  // namespace
}  // namespace tessera
