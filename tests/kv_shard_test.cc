#include "server/kv_shard.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/key_range.h"
#include "core/sparse_frame.h"
#include "models/model.h"
#include "server/optimizer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr uint64_t kSeed = 17;

// Two tensors, 7 and 5 keys. Server 0 of 2 owns [0, 3) and [7, 9).
std::vector<TensorInfo> Tensors() {
  return {TensorInfo{.name = std::string("a"), .shape = {7}, .offset = 0, .size = 7, .init_bound = 0.5f},
          TensorInfo{.name = std::string("b"), .shape = {5}, .offset = 7, .size = 5, .init_bound = 0.3f}};
}

const std::vector<KeyRange> kRanges = {{0, 3}, {7, 9}};
constexpr size_t kLocalKeys = 5;

std::vector<float> FullInit() {
  std::vector<float> full(12);
  InitializeParameters(Tensors(), kSeed, full.data());
  return full;
}

// The owned slices of `full`, back to back.
std::vector<float> Slice(const std::vector<float>& full, const std::vector<KeyRange>& ranges) {
  std::vector<float> out;
  for (const KeyRange& r : ranges) out.insert(out.end(), full.begin() + r.begin, full.begin() + r.end);
  return out;
}

// One frame per range from values in local layout.
std::vector<zmq::message_t> Frames(const std::vector<float>& local, const std::vector<KeyRange>& ranges = kRanges) {
  std::vector<zmq::message_t> frames;
  size_t at = 0;
  for (const KeyRange& r : ranges) {
    frames.emplace_back(local.data() + at, r.size() * sizeof(float));
    at += r.size();
  }
  return frames;
}

std::vector<float> RandomGrad(uint32_t seed, size_t n = kLocalKeys) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(n);
  for (float& x : g) x = normal(rng);
  return g;
}

std::unique_ptr<Optimizer> Sgd(float lr) {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(lr);
  auto o = CreateOptimizer(spec);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return std::move(o).value();
}

void ExpectParamsNear(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * std::fabs(want[i]) + 1e-7) << "key " << i;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(KvShardTest, InitializesItsSlicesOfTheFullModel) {
  auto sgd = Sgd(0.1f);
  const std::vector<float> full = FullInit();
  const auto owned = PartitionKeys(Tensors(), 2);
  ASSERT_EQ(owned[0], kRanges);
  KvShard s0(owned[0], Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  KvShard s1(owned[1], Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  EXPECT_EQ(s0.version(), 0);
  EXPECT_EQ(s0.num_keys(), kLocalKeys);
  EXPECT_EQ(s0.ranges(), kRanges);
  EXPECT_EQ(s0.params(), Slice(full, owned[0]));
  EXPECT_EQ(s1.num_keys(), 12 - kLocalKeys);
  EXPECT_EQ(s1.params(), Slice(full, owned[1]));
}

TEST(KvShardTest, BspAppliesOnceEveryWorkerPushed) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> g0 = RandomGrad(1), g1 = RandomGrad(2);

  auto first = shard.AddPush(0, 0, 3, kRanges, Frames(g0));
  ASSERT_OK(first.status());
  EXPECT_FALSE(*first);
  EXPECT_EQ(shard.version(), 0);
  EXPECT_EQ(shard.params(), w0);

  auto second = shard.AddPush(1, 0, 5, kRanges, Frames(g1));
  ASSERT_OK(second.status());
  EXPECT_TRUE(*second);
  EXPECT_EQ(shard.version(), 1);
  // SGD on the mean gradient over the step's 3 + 5 examples.
  std::vector<double> want(kLocalKeys);
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] = w0[i] - 0.1 * (double{g0[i]} + g1[i]) / 8.0;
  ExpectParamsNear(shard.params(), want);

  // The next step starts empty.
  auto third = shard.AddPush(1, 1, 1, kRanges, Frames(g0));
  ASSERT_OK(third.status());
  EXPECT_FALSE(*third);
  EXPECT_EQ(shard.version(), 1);
}

TEST(KvShardTest, BspSumsInRankOrderWhateverTheArrivalOrder) {
  auto sgd = Sgd(0.5f);
  KvShard forward(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 3);
  KvShard backward(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 3);
  const std::vector<float> w0 = forward.params();
  std::vector<std::vector<float>> g = {RandomGrad(10), RandomGrad(11), RandomGrad(12)};
  // Key 0 makes float addition order visible: rank order gives
  // (1 + 1e8) - 1e8 == 0 in float, arrival order 2, 1, 0 would give 1.
  g[0][0] = 1.0f;
  g[1][0] = 1e8f;
  g[2][0] = -1e8f;
  for (int r : {0, 1, 2}) ASSERT_OK(forward.AddPush(r, 0, 1, kRanges, Frames(g[r])).status());
  for (int r : {2, 1, 0}) ASSERT_OK(backward.AddPush(r, 0, 1, kRanges, Frames(g[r])).status());
  ASSERT_EQ(forward.version(), 1);
  ASSERT_EQ(backward.version(), 1);
  EXPECT_TRUE(BitwiseEqual(forward.params(), backward.params()));
  EXPECT_EQ(forward.params()[0], w0[0]) << "the rank-order float sum of key 0 is exactly 0";
  for (size_t i = 1; i < kLocalKeys; ++i) {
    const double want = w0[i] - 0.5 * (double{g[0][i]} + g[1][i] + g[2][i]) / 3.0;
    EXPECT_NEAR(forward.params()[i], want, 1e-6) << "key " << i;
  }
}

TEST(KvShardTest, BadPushesAreRejectedAndChangeNothing) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> g0 = RandomGrad(1), g1 = RandomGrad(2), other = RandomGrad(3);

  auto expect_invalid = [&](StatusOr<bool> result, const std::string& what) {
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << what << ": " << result.status().ToString();
    EXPECT_EQ(shard.version(), 0) << what;
    EXPECT_EQ(shard.params(), w0) << what;
  };
  expect_invalid(shard.AddPush(0, 1, 3, kRanges, Frames(g0)), "future step");
  expect_invalid(shard.AddPush(-1, 0, 3, kRanges, Frames(g0)), "rank -1");
  expect_invalid(shard.AddPush(2, 0, 3, kRanges, Frames(g0)), "rank 2 of 2");
  const std::vector<KeyRange> shifted = {{0, 3}, {8, 10}};
  expect_invalid(shard.AddPush(0, 0, 3, shifted, Frames(g0, shifted)), "ranges not owned");
  const std::vector<KeyRange> part_of_a_slice = {{0, 2}};
  expect_invalid(shard.AddPush(0, 0, 3, part_of_a_slice, Frames({1, 2}, part_of_a_slice)), "part of a slice");
  const std::vector<KeyRange> reversed = {{7, 9}, {0, 3}};
  std::vector<zmq::message_t> reversed_frames = Frames({1, 2}, {{7, 9}});
  reversed_frames.emplace_back(std::vector<float>{1, 2, 3}.data(), 12);
  expect_invalid(shard.AddPush(0, 0, 3, reversed, std::move(reversed_frames)), "slices out of order");
  expect_invalid(shard.AddPush(0, 0, -1, kRanges, Frames(g0)), "negative examples");
  std::vector<zmq::message_t> one_frame = Frames(g0);
  one_frame.pop_back();
  expect_invalid(shard.AddPush(0, 0, 3, kRanges, std::move(one_frame)), "frame missing");

  // None of those counted as rank 0's push: a real one still waits for rank 1.
  auto first = shard.AddPush(0, 0, 3, kRanges, Frames(g0));
  ASSERT_OK(first.status());
  EXPECT_FALSE(*first);
  expect_invalid(shard.AddPush(0, 0, 3, kRanges, Frames(other)), "second push from rank 0");
  expect_invalid(shard.AddPush(1, 1, 5, kRanges, Frames(g1)), "rank 1 ahead");

  auto second = shard.AddPush(1, 0, 5, kRanges, Frames(g1));
  ASSERT_OK(second.status());
  EXPECT_TRUE(*second);
  EXPECT_EQ(shard.version(), 1);
  std::vector<double> want(kLocalKeys);
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] = w0[i] - 0.1 * (double{g0[i]} + g1[i]) / 8.0;
  ExpectParamsNear(shard.params(), want);

  // A stale push for the step just applied.
  const std::vector<float> w1 = shard.params();
  auto stale = shard.AddPush(0, 0, 3, kRanges, Frames(g0));
  EXPECT_EQ(stale.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(shard.version(), 1);
  EXPECT_EQ(shard.params(), w1);
}

// A push may carry any subset of the slices: each slice steps when every
// worker's push of it is in, whatever the parts each worker sent.
TEST(KvShardTest, BspSlicesStepOnTheirOwn) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> g0 = RandomGrad(1), g1 = RandomGrad(2);
  const std::vector<KeyRange> first = {kRanges[0]}, second = {kRanges[1]};
  // Rank 0 in two parts, rank 1 whole.
  auto a = shard.AddPush(0, 0, 3, first, Frames({g0[0], g0[1], g0[2]}, first));
  ASSERT_OK(a.status());
  EXPECT_FALSE(*a);
  auto b = shard.AddPush(1, 0, 5, kRanges, Frames(g1));
  ASSERT_OK(b.status());
  EXPECT_TRUE(*b) << "slice 0 had both pushes";
  EXPECT_EQ(shard.MinVersion({0}), 1);
  EXPECT_EQ(shard.MinVersion({1}), 0);
  EXPECT_EQ(shard.version(), 0);
  // Slice 0 stepped, slice 1 did not yet.
  std::vector<float> now = shard.params();
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(now[i], w0[i] - 0.1 * (double{g0[i]} + g1[i]) / 8.0, 1e-6);
  for (size_t i = 3; i < kLocalKeys; ++i) EXPECT_EQ(now[i], w0[i]);
  // Slice 0 is at step 1 now: a push of it for step 0 is refused.
  EXPECT_EQ(shard.AddPush(0, 0, 3, kRanges, Frames(g0)).status().code(), StatusCode::kInvalidArgument);
  auto c = shard.AddPush(0, 0, 3, second, Frames({g0[3], g0[4]}, second));
  ASSERT_OK(c.status());
  EXPECT_TRUE(*c);
  EXPECT_EQ(shard.version(), 1);
  std::vector<double> want(kLocalKeys);
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] = w0[i] - 0.1 * (double{g0[i]} + g1[i]) / 8.0;
  ExpectParamsNear(shard.params(), want);
}

TEST(KvShardTest, BspEmptyContributionFromOneWorker) {
  auto sgd = Sgd(0.2f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> g1 = RandomGrad(5);
  ASSERT_OK(shard.AddPush(0, 0, 0, kRanges, Frames(std::vector<float>(kLocalKeys, 0.0f))).status());
  auto done = shard.AddPush(1, 0, 4, kRanges, Frames(g1));
  ASSERT_OK(done.status());
  EXPECT_TRUE(*done);
  std::vector<double> want(kLocalKeys);
  // The mean is over worker 1's 4 examples only.
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] = w0[i] - 0.2 * g1[i] / 4.0;
  ExpectParamsNear(shard.params(), want);
}

TEST(KvShardTest, BspAllEmptyContributionsStillAdvanceTheStep) {
  auto sgd = Sgd(0.2f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> zeros(kLocalKeys, 0.0f);
  ASSERT_OK(shard.AddPush(1, 0, 0, kRanges, Frames(zeros)).status());
  auto done = shard.AddPush(0, 0, 0, kRanges, Frames(zeros));
  ASSERT_OK(done.status());
  EXPECT_TRUE(*done);
  EXPECT_EQ(shard.version(), 1);
  EXPECT_EQ(shard.params(), w0);
  for (float w : shard.params()) EXPECT_FALSE(std::isnan(w));
  // And the next step is accepted.
  auto next = shard.AddPush(0, 1, 2, kRanges, Frames(RandomGrad(6)));
  ASSERT_OK(next.status());
  EXPECT_FALSE(*next);
}

TEST(KvShardTest, AspAppliesEveryPushAtOnce) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::ASP, 2);
  const std::vector<float> w0 = shard.params();
  const std::vector<float> g0 = RandomGrad(7), g1 = RandomGrad(8);

  auto a = shard.AddPush(1, 0, 2, kRanges, Frames(g1));
  ASSERT_OK(a.status());
  EXPECT_TRUE(*a);
  EXPECT_EQ(shard.version(), 1);
  std::vector<double> want(kLocalKeys);
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] = w0[i] - 0.1 * g1[i] / 2.0;
  ExpectParamsNear(shard.params(), want);

  // The same worker again, with a step it computed on older parameters.
  auto b = shard.AddPush(1, 0, 4, kRanges, Frames(g0));
  ASSERT_OK(b.status());
  EXPECT_TRUE(*b);
  EXPECT_EQ(shard.version(), 2);
  for (size_t i = 0; i < kLocalKeys; ++i) want[i] -= 0.1 * g0[i] / 4.0;
  ExpectParamsNear(shard.params(), want);

  // An empty contribution bumps the version only.
  const std::vector<float> w2 = shard.params();
  auto c = shard.AddPush(0, 2, 0, kRanges, Frames(std::vector<float>(kLocalKeys, 0.0f)));
  ASSERT_OK(c.status());
  EXPECT_TRUE(*c);
  EXPECT_EQ(shard.version(), 3);
  EXPECT_EQ(shard.params(), w2);

  // Ranks and ranges are still checked.
  EXPECT_EQ(shard.AddPush(2, 3, 1, kRanges, Frames(g0)).status().code(), StatusCode::kInvalidArgument);
  const std::vector<KeyRange> part_of_a_slice = {{0, 2}};
  EXPECT_EQ(shard.AddPush(0, 3, 1, part_of_a_slice, Frames({1, 2}, part_of_a_slice)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(shard.version(), 3);
  EXPECT_EQ(shard.params(), w2);
}

// A worker lost in the middle of an ASP push reached some slices only: they
// are a push ahead of the others. A cut (between phases) takes every slice as
// it is, labelled with the cut's step, instead of refusing or waiting.
TEST(KvShardTest, AspCutTakesSlicesThatAPartialPushLeftAhead) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::ASP, 2);
  const std::vector<KeyRange> first = {kRanges[0]};
  ASSERT_OK(shard.AddPush(0, 0, 1, kRanges, Frames(RandomGrad(1))).status());
  ASSERT_OK(shard.AddPush(1, 0, 1, first, Frames(RandomGrad(2, first[0].size()), first)).status());
  EXPECT_EQ(shard.MaxVersion(), 2);
  const std::vector<float> params = shard.params();
  ASSERT_OK(shard.ArmSnapshot(1));
  ASSERT_TRUE(shard.SnapshotReady());
  const std::vector<SliceSnapshot> cut = shard.TakeSnapshot();
  ASSERT_EQ(cut.size(), 2u);
  std::vector<float> captured;
  for (const SliceSnapshot& s : cut) {
    EXPECT_EQ(s.version, 1);
    captured.insert(captured.end(), s.params->begin(), s.params->end());
  }
  EXPECT_TRUE(BitwiseEqual(captured, params)) << "the partial push is part of the cut";
}

TEST(KvShardTest, BspCutRefusesASlicePastIt) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 1);
  ASSERT_OK(shard.AddPush(0, 0, 1, kRanges, Frames(RandomGrad(1))).status());
  ASSERT_OK(shard.AddPush(0, 1, 1, kRanges, Frames(RandomGrad(2))).status());
  EXPECT_EQ(shard.ArmSnapshot(1).code(), StatusCode::kFailedPrecondition);
}

TEST(KvShardTest, AdamStateIsKeptPerKeyAcrossRanges) {
  proto::OptimizerSpec spec;
  spec.set_type(proto::OptimizerSpec::ADAM);
  spec.set_learning_rate(0.01f);
  spec.set_epsilon(1e-3f);
  auto adam = CreateOptimizer(spec);
  ASSERT_OK(adam.status());
  KvShard shard(kRanges, Tensors(), kSeed, adam->get(), proto::BSP, 1);
  const std::vector<float> w0 = shard.params();
  std::vector<double> w(w0.begin(), w0.end()), m(kLocalKeys, 0.0), v(kLocalKeys, 0.0);
  const double b1 = spec.beta1(), b2 = spec.beta2(), eps = spec.epsilon(), lr = spec.learning_rate();
  for (int step = 1; step <= 3; ++step) {
    const std::vector<float> g = RandomGrad(20 + step);
    ASSERT_OK(shard.AddPush(0, step - 1, 2, kRanges, Frames(g)).status());
    const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    for (size_t i = 0; i < kLocalKeys; ++i) {
      const double d = static_cast<double>(g[i] * 0.5f);
      m[i] = b1 * m[i] + (1 - b1) * d;
      v[i] = b2 * v[i] + (1 - b2) * d * d;
      w[i] -= lr / c1 * m[i] / (std::sqrt(v[i]) / std::sqrt(c2) + eps);
    }
    SCOPED_TRACE("step " + std::to_string(step));
    ExpectParamsNear(shard.params(), w);
  }
}

TEST(KvShardTest, ResultsDoNotDependOnHowKeysAreSplit) {
  auto sgd = Sgd(0.3f);
  const std::vector<KeyRange> all = {{0, 7}, {7, 12}};
  KvShard whole(all, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  KvShard part(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> g0 = RandomGrad(30, 12), g1 = RandomGrad(31, 12);
  ASSERT_OK(whole.AddPush(0, 0, 3, all, Frames(g0, all)).status());
  ASSERT_OK(whole.AddPush(1, 0, 2, all, Frames(g1, all)).status());
  ASSERT_OK(part.AddPush(0, 0, 3, kRanges, Frames(Slice(g0, kRanges))).status());
  ASSERT_OK(part.AddPush(1, 0, 2, kRanges, Frames(Slice(g1, kRanges))).status());
  EXPECT_TRUE(BitwiseEqual(Slice(whole.params(), kRanges), part.params()));
}

TEST(KvShardTest, HeldParamFramesKeepTheirValues) {
  auto sgd = Sgd(0.1f);
  auto shard = std::make_unique<KvShard>(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 1);
  const std::vector<float> w0 = shard->params();
  const std::vector<OutFrame> held = shard->ParamFrames();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].size, 3 * sizeof(float));
  EXPECT_EQ(held[1].size, 2 * sizeof(float));
  ASSERT_NE(held[0].owner, nullptr);
  auto contents = [](const std::vector<OutFrame>& frames) {
    std::vector<float> out;
    for (const OutFrame& f : frames) {
      const float* p = static_cast<const float*>(f.data);
      out.insert(out.end(), p, p + f.size / sizeof(float));
    }
    return out;
  };
  EXPECT_EQ(contents(held), w0);

  ASSERT_OK(shard->AddPush(0, 0, 1, kRanges, Frames(RandomGrad(40))).status());
  ASSERT_EQ(shard->version(), 1);
  EXPECT_NE(shard->params(), w0);
  EXPECT_EQ(contents(held), w0) << "a step wrote into a buffer a PARAMS reply still holds";
  EXPECT_EQ(contents(shard->ParamFrames()), shard->params());

  // The frames keep their buffer alive on their own.
  shard.reset();
  EXPECT_EQ(contents(held), w0);
}

TEST(KvShardTest, RejectsFramesOfTheWrongSize) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::ASP, 1);
  std::vector<zmq::message_t> frames;
  frames.emplace_back(size_t{4});  // range [0, 3) needs 12 bytes
  frames.emplace_back(size_t{8});
  EXPECT_EQ(shard.AddPush(0, 0, 1, kRanges, std::move(frames)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(KvShardTest, AStepAfterASnapshotWritesIntoTheSparesMadeAhead) {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.1f);
  spec.set_momentum(0.9f);
  auto momentum = CreateOptimizer(spec);
  ASSERT_TRUE(momentum.ok());
  KvShard shard(kRanges, Tensors(), kSeed, momentum->get(), proto::BSP, 1);
  const auto sizes = shard.SpareSizes();
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], (std::pair<uint64_t, uint64_t>{3, 3}));  // params, one momentum float each
  EXPECT_EQ(sizes[1], (std::pair<uint64_t, uint64_t>{2, 2}));
  KvShard::Spares spares = KvShard::MakeSpares(sizes);
  const float* spare_params = spares.params[0]->data();
  shard.AdoptSpares(std::move(spares));

  // The reference: the same steps with no snapshot and no spares.
  KvShard reference(kRanges, Tensors(), kSeed, momentum->get(), proto::BSP, 1);
  const std::vector<float> g = RandomGrad(3);
  ASSERT_OK(shard.AddPush(0, 0, 1, kRanges, Frames(g)).status());
  ASSERT_OK(reference.AddPush(0, 0, 1, kRanges, Frames(g)).status());
  ASSERT_OK(shard.ArmSnapshot(1));
  ASSERT_TRUE(shard.SnapshotReady());
  const std::vector<SliceSnapshot> held = shard.TakeSnapshot();
  ASSERT_OK(shard.AddPush(0, 1, 1, kRanges, Frames(g)).status());
  ASSERT_OK(reference.AddPush(0, 1, 1, kRanges, Frames(g)).status());
  // The step went into the spare made ahead, not a new buffer, and is right.
  EXPECT_EQ(shard.ParamFrames({0})[0].data, spare_params);
  EXPECT_TRUE(BitwiseEqual(shard.params(), reference.params()));
  EXPECT_NE(held[0].params->data(), spare_params) << "the snapshot keeps its own buffer";

  // Spares of the wrong size are dropped, not adopted.
  KvShard other(kRanges, Tensors(), kSeed, momentum->get(), proto::BSP, 1);
  KvShard::Spares wrong = KvShard::MakeSpares({{4, 4}, {1, 1}});
  const std::shared_ptr<std::vector<float>> wrong_params = wrong.params[0];  // kept alive: its address stays taken
  other.AdoptSpares(std::move(wrong));
  ASSERT_OK(other.AddPush(0, 0, 1, kRanges, Frames(g)).status());
  ASSERT_OK(other.ArmSnapshot(1));
  const std::vector<SliceSnapshot> held_too = other.TakeSnapshot();
  ASSERT_OK(other.AddPush(0, 1, 1, kRanges, Frames(g)).status());
  EXPECT_EQ(other.ParamFrames({0})[0].size, 3 * sizeof(float));
  EXPECT_NE(other.ParamFrames({0})[0].data, wrong_params->data());
  EXPECT_TRUE(BitwiseEqual(other.params(), reference.params()));
}

// One sparse frame per range of the values in local layout, holding `runs`
// (per range, relative to it).
std::vector<zmq::message_t> SparseFrames(const std::vector<float>& local,
                                         const std::vector<std::vector<KeyRange>>& runs) {
  std::vector<zmq::message_t> frames;
  size_t at = 0;
  for (size_t i = 0; i < kRanges.size(); ++i) {
    const std::string frame = EncodeSparseFrame(local.data() + at, runs[i]);
    frames.emplace_back(frame.data(), frame.size());
    at += kRanges[i].size();
  }
  return frames;
}

// A sparse push is made dense (zeros outside its runs) by the shard itself:
// the step is bitwise the one the dense push would have made, under BSP
// (mixed with a dense push) and ASP.
TEST(KvShardTest, SparsePushesStepExactlyAsTheirDenseFrames) {
  const std::vector<std::vector<KeyRange>> runs = {{{1, 3}}, {}};
  const std::vector<bool> sparse = {true, true};
  for (proto::Consistency consistency : {proto::BSP, proto::ASP}) {
    auto sgd = Sgd(0.25f);
    KvShard dense(kRanges, Tensors(), kSeed, sgd.get(), consistency, 2);
    KvShard mixed(kRanges, Tensors(), kSeed, sgd.get(), consistency, 2);
    for (int64_t step = 0; step < 3; ++step) {
      std::vector<float> g0 = RandomGrad(20 + step), g1 = RandomGrad(30 + step);
      g0[0] = 0.0f;  // outside the runs: [0, 1) and all of [7, 9)
      g0[3] = g0[4] = 0.0f;
      const int64_t version = consistency == proto::BSP ? step : 2 * step;
      ASSERT_OK(dense.AddPush(0, version, 2, kRanges, Frames(g0)).status());
      ASSERT_OK(mixed.AddPush(0, version, 2, kRanges, SparseFrames(g0, runs), sparse).status());
      const int64_t next = consistency == proto::BSP ? step : 2 * step + 1;
      ASSERT_OK(dense.AddPush(1, next, 3, kRanges, Frames(g1)).status());
      ASSERT_OK(mixed.AddPush(1, next, 3, kRanges, Frames(g1), {false, false}).status());
      ASSERT_TRUE(BitwiseEqual(dense.params(), mixed.params())) << "step " << step;
    }
    EXPECT_EQ(mixed.version(), dense.version());
    EXPECT_GT(mixed.version(), 0);
  }
}

// The hostile tester's PUSH (issue 19, item 7): one sparse range claiming
// 2^28 floats (1 GiB dense) with an 8-byte frame. The shard checks the
// sender and the range against its slices first and refuses it: nothing is
// made dense at the size a message claims. A malformed sparse frame for a
// real slice is refused too, with nothing held.
TEST(KvShardTest, AForgedSparsePushIsRefusedBeforeAnythingIsMadeDense) {
  auto sgd = Sgd(0.1f);
  KvShard shard(kRanges, Tensors(), kSeed, sgd.get(), proto::BSP, 2);
  const std::vector<float> w0 = shard.params();
  const uint64_t no_runs = 0;
  auto forged = [&] {
    std::vector<zmq::message_t> frames;
    frames.emplace_back(&no_runs, sizeof(no_runs));
    return frames;
  };
  auto huge = shard.AddPush(0, 0, 1, {{0, uint64_t{1} << 28}}, forged(), {true});
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), ::testing::HasSubstr("is not a slice this server owns"));

  const std::vector<std::vector<KeyRange>> runs = {{{0, 3}}, {{0, 2}}};
  auto stranger = shard.AddPush(7, 0, 1, kRanges, SparseFrames(RandomGrad(3), runs), {true, true});
  ASSERT_FALSE(stranger.ok());
  EXPECT_THAT(stranger.status().message(), ::testing::HasSubstr("worker rank 7"));

  std::vector<zmq::message_t> past_the_slice = SparseFrames(RandomGrad(3), runs);
  const std::string bad = EncodeSparseFrame(RandomGrad(4).data(), {{1, 4}});  // 4 > the slice's 3 keys
  past_the_slice[0] = zmq::message_t(bad.data(), bad.size());
  auto malformed = shard.AddPush(0, 0, 1, kRanges, std::move(past_the_slice), {true, true});
  ASSERT_FALSE(malformed.ok());
  EXPECT_THAT(malformed.status().message(), ::testing::HasSubstr("push frame 0"));

  // Nothing was held: both ranks' pushes of step 0 are still welcome.
  ASSERT_OK(shard.AddPush(0, 0, 1, kRanges, SparseFrames(RandomGrad(5), runs), {true, true}).status());
  EXPECT_EQ(shard.params(), w0);
  auto last = shard.AddPush(1, 0, 1, kRanges, Frames(RandomGrad(6)));
  ASSERT_OK(last.status());
  EXPECT_TRUE(*last);
}

}  // namespace
}  // namespace tessera
