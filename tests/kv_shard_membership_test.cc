// KvShard when workers leave and join (KvShard::SetActive): BSP steps stop
// waiting for a rank that left, its pushes that arrived still count, its
// later pushes are refused, and how far it pushed is reported.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/key_range.h"
#include "models/model.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr uint64_t kSeed = 5;
// Two tensors, 7 and 5 keys; this server owns slices A = [0, 3) and B = [7, 9).
const std::vector<KeyRange> kRanges = {{0, 3}, {7, 9}};
const std::vector<KeyRange> kA = {{0, 3}}, kB = {{7, 9}};

std::vector<TensorInfo> Tensors() {
  return {TensorInfo{.name = std::string("a"), .shape = {7}, .offset = 0, .size = 7, .init_bound = 0.5f},
          TensorInfo{.name = std::string("b"), .shape = {5}, .offset = 7, .size = 5, .init_bound = 0.3f}};
}

std::unique_ptr<Optimizer> Sgd() {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.1f);
  spec.set_momentum(0.9f);
  auto o = CreateOptimizer(spec);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return std::move(o).value();
}

// A gradient for `ranges` (one frame each) drawn from `seed`.
std::vector<zmq::message_t> Grad(uint32_t seed, const std::vector<KeyRange>& ranges = kRanges) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<zmq::message_t> frames;
  for (const KeyRange& r : ranges) {
    std::vector<float> g(r.size());
    for (float& x : g) x = normal(rng);
    frames.emplace_back(g.data(), g.size() * sizeof(float));
  }
  return frames;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(KvShardMembershipTest, ASliceWaitingOnlyForTheRankThatLeftIsAppliedAtOnce) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 3);
  ASSERT_OK(shard.AddPush(0, 0, 4, kRanges, Grad(1)).status());
  ASSERT_OK(shard.AddPush(1, 0, 4, kRanges, Grad(2)).status());
  // Rank 2 dies between its parts: only slice A got its push, and A's step completes.
  auto a = shard.AddPush(2, 0, 4, kA, Grad(3, kA));
  ASSERT_OK(a.status());
  EXPECT_TRUE(*a);
  EXPECT_EQ(shard.MinVersion({0}), 1);
  EXPECT_EQ(shard.MinVersion({1}), 0);

  std::vector<KvShard::Reach> left;
  auto applied = shard.SetActive({0, 1}, &left);
  ASSERT_OK(applied.status());
  EXPECT_TRUE(*applied) << "B waited only for rank 2";
  EXPECT_EQ(shard.version(), 1);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].rank, 2);
  EXPECT_EQ(left[0].min_step, -1) << "B never got rank 2's push";
  EXPECT_EQ(left[0].max_step, 0);
  EXPECT_FALSE(shard.active(2));
  EXPECT_TRUE(shard.active(0));
}

TEST(KvShardMembershipTest, PushesThatArrivedFromARankThatLeftCount) {
  auto sgd = Sgd();
  // The reference: all three push step 0.
  KvShard all(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 3);
  for (int r : {0, 1, 2}) ASSERT_OK(all.AddPush(r, 0, 5, kRanges, Grad(10 + r)).status());
  ASSERT_EQ(all.version(), 1);

  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 3);
  ASSERT_OK(shard.AddPush(2, 0, 5, kRanges, Grad(12)).status());
  ASSERT_OK(shard.AddPush(0, 0, 5, kRanges, Grad(10)).status());
  std::vector<KvShard::Reach> left;
  auto applied = shard.SetActive({0, 1}, &left);
  ASSERT_OK(applied.status());
  EXPECT_FALSE(*applied) << "rank 1 has not pushed yet";
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].min_step, 0);
  EXPECT_EQ(left[0].max_step, 0);
  auto last = shard.AddPush(1, 0, 5, kRanges, Grad(11));
  ASSERT_OK(last.status());
  EXPECT_TRUE(*last);
  EXPECT_TRUE(BitwiseEqual(shard.params(), all.params())) << "rank 2's push is summed in rank order as before";

  // From now on rank 2 is refused, and steps need ranks 0 and 1 only.
  auto refused = shard.AddPush(2, 1, 5, kRanges, Grad(13));
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("left the job"), std::string::npos) << refused.status().ToString();
  ASSERT_OK(shard.AddPush(0, 1, 5, kRanges, Grad(14)).status());
  auto second = shard.AddPush(1, 1, 0, kRanges, Grad(15));
  ASSERT_OK(second.status());
  EXPECT_TRUE(*second);
  EXPECT_EQ(shard.version(), 2);
}

TEST(KvShardMembershipTest, ARankJoinsAgainAndIsWaitedFor) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  std::vector<KvShard::Reach> left;
  ASSERT_OK(shard.SetActive({0}, &left).status());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].rank, 1);
  EXPECT_EQ(left[0].min_step, -1);
  auto alone = shard.AddPush(0, 0, 3, kRanges, Grad(1));
  ASSERT_OK(alone.status());
  EXPECT_TRUE(*alone);
  // A new worker takes rank 1 at a phase start.
  left.clear();
  auto joined = shard.SetActive({0, 1}, &left);
  ASSERT_OK(joined.status());
  EXPECT_FALSE(*joined);
  EXPECT_TRUE(left.empty());
  auto first = shard.AddPush(1, 1, 3, kRanges, Grad(2));
  ASSERT_OK(first.status());
  EXPECT_FALSE(*first);
  auto both = shard.AddPush(0, 1, 3, kRanges, Grad(3));
  ASSERT_OK(both.status());
  EXPECT_TRUE(*both);
  EXPECT_EQ(shard.version(), 2);
}

TEST(KvShardMembershipTest, BadMembershipChangesNothing) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  std::vector<KvShard::Reach> left;
  EXPECT_EQ(shard.SetActive({0, 2}, &left).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(shard.SetActive({-1}, &left).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(left.empty());
  EXPECT_TRUE(shard.active(0));
  EXPECT_TRUE(shard.active(1));
}

TEST(KvShardMembershipTest, EveryRankGoneStillAppliesWhatArrived) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  ASSERT_OK(shard.AddPush(1, 0, 2, kB, Grad(7, kB)).status());
  std::vector<KvShard::Reach> left;
  auto applied = shard.SetActive({}, &left);
  ASSERT_OK(applied.status());
  EXPECT_TRUE(*applied);
  EXPECT_EQ(shard.MinVersion({1}), 1) << "B had rank 1's push";
  EXPECT_EQ(shard.MinVersion({0}), 0) << "A had nothing: it does not move";
  EXPECT_EQ(left.size(), 2u);
}

TEST(KvShardMembershipTest, AspTracksHowFarARankPushed) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::ASP, 2);
  ASSERT_OK(shard.AddPush(1, 7, 2, kRanges, Grad(1)).status());
  ASSERT_OK(shard.AddPush(1, 8, 2, kA, Grad(2, kA)).status());
  std::vector<KvShard::Reach> left;
  auto applied = shard.SetActive({0}, &left);
  ASSERT_OK(applied.status());
  EXPECT_FALSE(*applied);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].min_step, 7);
  EXPECT_EQ(left[0].max_step, 8);
  EXPECT_EQ(shard.AddPush(1, 9, 2, kRanges, Grad(3)).status().code(), StatusCode::kInvalidArgument);
}

// Every rank gone mid-step leaves the slices one step apart; AdvanceTo brings
// the lagging ones up, parameters unchanged, so the next part's first step
// is the same step on every slice.
TEST(KvShardMembershipTest, AdvanceToMovesLaggingSlicesUpWithTheirParametersUnchanged) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  ASSERT_OK(shard.AddPush(1, 0, 2, kB, Grad(7, kB)).status());
  std::vector<KvShard::Reach> left;
  ASSERT_OK(shard.SetActive({}, &left).status());
  ASSERT_EQ(shard.MinVersion({0}), 0);
  const std::vector<float> before = shard.params();
  auto moved = shard.AdvanceTo(1);
  ASSERT_OK(moved.status());
  EXPECT_TRUE(*moved);
  EXPECT_EQ(shard.MinVersion({0}), 1);
  EXPECT_EQ(shard.MinVersion({1}), 1);
  EXPECT_TRUE(BitwiseEqual(shard.params(), before));
  auto again = shard.AdvanceTo(1);
  ASSERT_OK(again.status());
  EXPECT_FALSE(*again) << "nothing below 1 any more";

  // A new worker takes rank 0: step 1 completes on both slices with its push alone.
  ASSERT_OK(shard.SetActive({0}, &left).status());
  auto step = shard.AddPush(0, 1, 2, kRanges, Grad(8));
  ASSERT_OK(step.status());
  EXPECT_TRUE(*step);
  EXPECT_EQ(shard.version(), 2);
}

TEST(KvShardMembershipTest, AdvanceToRefusesToPassAStepThatHoldsPushes) {
  auto sgd = Sgd();
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  ASSERT_OK(shard.AddPush(0, 0, 2, kA, Grad(7, kA)).status());  // A waits for rank 1
  auto refused = shard.AdvanceTo(1);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(shard.MinVersion({0}), 0);
  EXPECT_EQ(shard.MinVersion({1}), 0) << "nothing changed";
}

}  // namespace
}  // namespace tessera
