// SSP's windows on the servers (JobSpec.staleness = s): a dense slice
// (KvShard) and a sparse table (SparseTableShard) hold pushes of up to s
// steps ahead of their version, apply each step in order once it is
// complete, with the bits BSP gives the same pushes, and refuse a push
// beyond the window without changing anything.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/spec.h"
#include "models/model.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "server/sparse_table_shard.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr uint64_t kSeed = 17;
constexpr int kStaleness = 2;
constexpr int kWorkers = 2;
const std::vector<KeyRange> kRanges = {{0, 3}, {3, 5}};

std::vector<TensorInfo> Tensors() {
  return {TensorInfo{.name = std::string("w"), .shape = {5}, .offset = 0, .size = 5, .init_bound = 0.5f}};
}

std::unique_ptr<Optimizer> Momentum() {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.1f);
  spec.set_momentum(0.9f);
  auto o = CreateOptimizer(spec);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return std::move(o).value();
}

// Rank r's gradient for step t, one frame per range: distinct for every (r, t).
std::vector<zmq::message_t> Grad(int rank, int64_t step) {
  std::vector<zmq::message_t> frames;
  for (const KeyRange& range : kRanges) {
    std::vector<float> g(range.size());
    for (size_t k = 0; k < g.size(); ++k) g[k] = 0.25f * rank - 0.5f * step + 0.125f * (range.begin + k);
    frames.emplace_back(g.data(), g.size() * sizeof(float));
  }
  return frames;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The parameters after `steps` BSP steps of every rank's Grad, 1 example each.
std::vector<float> BspParams(const Optimizer* optimizer, int steps) {
  KvShard bsp(kRanges, Tensors(), kSeed, optimizer, proto::BSP, kWorkers);
  for (int t = 0; t < steps; ++t) {
    for (int r = 0; r < kWorkers; ++r) EXPECT_OK(bsp.AddPush(r, t, 1, kRanges, Grad(r, t)).status());
  }
  EXPECT_EQ(bsp.version(), steps);
  return bsp.params();
}

TEST(SspWindowTest, KvShardHoldsPushesAheadAndAppliesTheStepsInOrder) {
  auto optimizer = Momentum();
  KvShard ssp(kRanges, Tensors(), kSeed, optimizer.get(), proto::SSP, kWorkers, /*freeze_zero_weights=*/false,
              kStaleness);
  const std::vector<float> initial = ssp.params();
  // Rank 0 runs s steps ahead: steps 0, 1 and 2 are held while step 0 waits for rank 1.
  for (int t = 0; t <= kStaleness; ++t) {
    auto held = ssp.AddPush(0, t, 1, kRanges, Grad(0, t));
    ASSERT_OK(held.status());
    EXPECT_FALSE(*held) << "step " << t;
  }
  EXPECT_EQ(ssp.version(), 0);
  EXPECT_EQ(ssp.params(), initial);
  // Rank 1's step 2 before its step 1: held, step 1 is not complete.
  ASSERT_OK(ssp.AddPush(1, 0, 1, kRanges, Grad(1, 0)).status());
  EXPECT_EQ(ssp.version(), 1);
  EXPECT_TRUE(SameBits(ssp.params(), BspParams(optimizer.get(), 1)));
  auto early = ssp.AddPush(1, 2, 1, kRanges, Grad(1, 2));
  ASSERT_OK(early.status());
  EXPECT_FALSE(*early);
  EXPECT_EQ(ssp.version(), 1);
  // Step 1 completes, and step 2 behind it: both applied, in order.
  auto both = ssp.AddPush(1, 1, 1, kRanges, Grad(1, 1));
  ASSERT_OK(both.status());
  EXPECT_TRUE(*both);
  EXPECT_EQ(ssp.version(), 3);
  EXPECT_TRUE(SameBits(ssp.params(), BspParams(optimizer.get(), 3)));
}

TEST(SspWindowTest, KvShardRefusesAPushBeyondTheWindowAndChangesNothing) {
  auto optimizer = Momentum();
  KvShard ssp(kRanges, Tensors(), kSeed, optimizer.get(), proto::SSP, kWorkers, /*freeze_zero_weights=*/false,
              kStaleness);
  for (int t = 0; t <= kStaleness; ++t) ASSERT_OK(ssp.AddPush(0, t, 1, kRanges, Grad(0, t)).status());
  auto beyond = ssp.AddPush(0, kStaleness + 1, 1, kRanges, Grad(0, kStaleness + 1));
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(beyond.status().message().find("more than the staleness bound 2 steps ahead"), std::string::npos)
      << beyond.status().ToString();
  auto again = ssp.AddPush(0, 1, 1, kRanges, Grad(0, 1));
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidArgument) << "a second push of one step";
  // The held steps are intact: rank 1 completes all three.
  for (int t = 0; t <= kStaleness; ++t) ASSERT_OK(ssp.AddPush(1, t, 1, kRanges, Grad(1, t)).status());
  EXPECT_EQ(ssp.version(), kStaleness + 1);
  EXPECT_TRUE(SameBits(ssp.params(), BspParams(optimizer.get(), kStaleness + 1)));
  // Now step 3 is inside the window, and an old step is refused.
  EXPECT_OK(ssp.AddPush(0, kStaleness + 1, 1, kRanges, Grad(0, kStaleness + 1)).status());
  EXPECT_EQ(ssp.AddPush(1, 0, 1, kRanges, Grad(1, 0)).status().code(), StatusCode::kInvalidArgument);
}

TEST(SspWindowTest, KvShardCutInsideAppliedStepsSeesItsOwnStep) {
  auto optimizer = Momentum();
  KvShard ssp(kRanges, Tensors(), kSeed, optimizer.get(), proto::SSP, kWorkers, /*freeze_zero_weights=*/false,
              kStaleness);
  for (int t = 0; t <= kStaleness; ++t) ASSERT_OK(ssp.AddPush(0, t, 1, kRanges, Grad(0, t)).status());
  ASSERT_OK(ssp.ArmSnapshot(2));
  // Rank 1's pushes in reverse: the last one applies steps 0, 1 and 2 at once.
  for (int t = kStaleness; t >= 0; --t) ASSERT_OK(ssp.AddPush(1, t, 1, kRanges, Grad(1, t)).status());
  EXPECT_EQ(ssp.version(), 3);
  ASSERT_TRUE(ssp.SnapshotReady());
  std::vector<float> cut;
  for (const SliceSnapshot& s : ssp.TakeSnapshot()) {
    EXPECT_EQ(s.version, 2);
    cut.insert(cut.end(), s.params->begin(), s.params->end());
  }
  EXPECT_TRUE(SameBits(cut, BspParams(optimizer.get(), 2)));
}

TEST(SspWindowTest, KvShardWithStalenessZeroIsBsp) {
  auto optimizer = Momentum();
  KvShard ssp(kRanges, Tensors(), kSeed, optimizer.get(), proto::SSP, kWorkers, /*freeze_zero_weights=*/false,
              /*staleness=*/0);
  ASSERT_OK(ssp.AddPush(0, 0, 1, kRanges, Grad(0, 0)).status());
  EXPECT_EQ(ssp.AddPush(0, 1, 1, kRanges, Grad(0, 1)).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK(ssp.AddPush(1, 0, 1, kRanges, Grad(1, 0)).status());
  EXPECT_TRUE(SameBits(ssp.params(), BspParams(optimizer.get(), 1)));
}

constexpr int kDim = 3;

SparseTableShardOptions TableOptions(proto::Consistency consistency, int staleness) {
  SparseTableShardOptions o;
  o.spec.set_name("items");
  o.spec.set_dim(kDim);
  o.spec.set_init_bound(0.5f);
  o.spec.mutable_optimizer()->set_type(proto::SparseOptimizerSpec::ADAGRAD);
  o.spec.mutable_optimizer()->set_learning_rate(0.25f);
  o.seed = 7;
  o.workers = kWorkers;
  o.consistency = consistency;
  o.staleness = staleness;
  return o;
}

std::unique_ptr<SparseTableShard> MakeTable(proto::Consistency consistency, int staleness) {
  auto shard = SparseTableShard::Create(TableOptions(consistency, staleness));
  EXPECT_TRUE(shard.ok()) << shard.status().ToString();
  return std::move(shard).value();
}

// Rank r's rows for step t: ids that overlap between ranks and steps.
std::vector<uint64_t> RowIds(int rank, int64_t step) {
  return {static_cast<uint64_t>(1 + step), static_cast<uint64_t>(5 + rank), 9};
}
std::vector<float> RowGrads(int rank, int64_t step) {
  std::vector<float> g(3 * kDim);
  for (size_t k = 0; k < g.size(); ++k) g[k] = 0.5f * rank - 0.25f * step + 0.0625f * k;
  return g;
}

// Applies every step the table holds complete (as SparseTables does).
void ApplyHeld(SparseTableShard* table) {
  while (true) {
    auto applied = table->ApplyNextStep();
    ASSERT_OK(applied.status());
    if (!*applied) return;
  }
}

std::vector<float> Rows(SparseTableShard* table) {
  auto rows = table->ReadRows(std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 9});
  EXPECT_OK(rows.status());
  return rows.ok() ? *rows : std::vector<float>();
}

std::vector<float> BspRows(int steps) {
  auto bsp = MakeTable(proto::BSP, 0);
  for (int t = 0; t < steps; ++t) {
    for (int r = 0; r < kWorkers; ++r) EXPECT_OK(bsp->AddPush(r, t, 1, RowIds(r, t), RowGrads(r, t)).status());
  }
  EXPECT_EQ(bsp->version(), steps);
  return Rows(bsp.get());
}

TEST(SspWindowTest, SparseTableHoldsPushesAheadAndAppliesTheStepsInOrder) {
  auto ssp = MakeTable(proto::SSP, kStaleness);
  for (int t = 0; t <= kStaleness; ++t) {
    auto held = ssp->AddPush(0, t, 1, RowIds(0, t), RowGrads(0, t));
    ASSERT_OK(held.status());
    EXPECT_FALSE(*held) << "step " << t;
  }
  EXPECT_EQ(ssp->version(), 0);
  ASSERT_OK(ssp->AddPush(1, 2, 1, RowIds(1, 2), RowGrads(1, 2)).status());
  ASSERT_OK(ssp->AddPush(1, 1, 1, RowIds(1, 1), RowGrads(1, 1)).status());
  EXPECT_EQ(ssp->version(), 0) << "steps 1 and 2 wait for step 0";
  auto first = ssp->AddPush(1, 0, 1, RowIds(1, 0), RowGrads(1, 0));
  ASSERT_OK(first.status());
  EXPECT_TRUE(*first);
  EXPECT_EQ(ssp->version(), 1) << "one step per AddPush";
  EXPECT_TRUE(SameBits(Rows(ssp.get()), BspRows(1)));
  ApplyHeld(ssp.get());
  EXPECT_EQ(ssp->version(), 3);
  EXPECT_TRUE(SameBits(Rows(ssp.get()), BspRows(3)));
}

TEST(SspWindowTest, SparseTableRefusesAPushBeyondTheWindowAndChangesNothing) {
  auto ssp = MakeTable(proto::SSP, kStaleness);
  for (int t = 0; t <= kStaleness; ++t) ASSERT_OK(ssp->AddPush(0, t, 1, RowIds(0, t), RowGrads(0, t)).status());
  auto beyond = ssp->AddPush(0, kStaleness + 1, 1, RowIds(0, 3), RowGrads(0, 3));
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(beyond.status().message().find("more than the staleness bound 2 steps ahead"), std::string::npos)
      << beyond.status().ToString();
  EXPECT_EQ(ssp->AddPush(0, 1, 1, RowIds(0, 1), RowGrads(0, 1)).status().code(), StatusCode::kInvalidArgument);
  for (int t = 0; t <= kStaleness; ++t) ASSERT_OK(ssp->AddPush(1, t, 1, RowIds(1, t), RowGrads(1, t)).status());
  ApplyHeld(ssp.get());
  EXPECT_EQ(ssp->version(), kStaleness + 1);
  EXPECT_TRUE(SameBits(Rows(ssp.get()), BspRows(kStaleness + 1)));
}

TEST(SspWindowTest, TheSpecChecksTheStaleness) {
  proto::JobSpec spec;
  spec.set_consistency(proto::SSP);
  spec.set_staleness(-1);
  EXPECT_NE(ValidateJobSpec(spec).message().find("staleness must be >= 0"), std::string::npos);
  spec.set_staleness(1001);
  EXPECT_NE(ValidateJobSpec(spec).message().find("staleness must be <= 1000"), std::string::npos);
  spec.set_consistency(proto::BSP);
  spec.set_staleness(2);
  EXPECT_NE(ValidateJobSpec(spec).message().find("staleness needs consistency: SSP"), std::string::npos);
}

}  // namespace
}  // namespace tessera
