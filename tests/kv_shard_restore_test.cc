// KvShard::Snapshot and KvShard::Restore: what a checkpoint stores of a
// shard, and loading it back, however the keys are split.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/key_range.h"
#include "models/model.h"
#include "server/kv_shard.h"
#include "server/optimizer.h"
#include "server/slice_store.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr uint64_t kSeed = 5;
constexpr uint64_t kKeys = 14;
constexpr int kWorkers = 2;

// Three tensors: keys [0, 6), [6, 10), [10, 14).
std::vector<TensorInfo> Tensors() {
  return {TensorInfo{.name = std::string("w"), .shape = {2, 3}, .offset = 0, .size = 6, .init_bound = 0.5f},
          TensorInfo{.name = std::string("b"), .shape = {4}, .offset = 6, .size = 4, .init_bound = 0.3f},
          TensorInfo{.name = std::string("c"), .shape = {4}, .offset = 10, .size = 4, .init_bound = 0.7f}};
}

const std::vector<KeyRange> kOriginal = {{0, 6}, {10, 14}};
const std::vector<std::vector<KeyRange>> kResplit = {{{0, 3}}, {{3, 6}, {10, 12}}, {{12, 14}}};

std::unique_ptr<Optimizer> MakeOptimizer(proto::OptimizerSpec::Type type, float momentum = 0.0f) {
  proto::OptimizerSpec spec;
  spec.set_type(type);
  spec.set_learning_rate(0.05f);
  spec.set_momentum(momentum);
  auto o = CreateOptimizer(spec);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return std::move(o).value();
}

struct NamedOptimizer {
  std::string name;
  std::unique_ptr<Optimizer> opt;
};

// Optimizers with state: SGD with momentum (1 float per parameter) and Adam (2).
std::vector<NamedOptimizer> StatefulOptimizers() {
  std::vector<NamedOptimizer> out;
  out.push_back({"sgd-momentum", MakeOptimizer(proto::OptimizerSpec::SGD, 0.9f)});
  out.push_back({"adam", MakeOptimizer(proto::OptimizerSpec::ADAM)});
  return out;
}

// A gradient over the whole key space, for worker `rank` at `step`.
std::vector<float> FullGrad(int64_t step, int rank) {
  std::mt19937 rng(static_cast<uint32_t>(1000 * step + rank + 1));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(kKeys);
  for (float& x : g) x = normal(rng);
  return g;
}

std::vector<zmq::message_t> Frames(const std::vector<float>& full, const std::vector<KeyRange>& ranges) {
  std::vector<zmq::message_t> frames;
  for (const KeyRange& r : ranges) frames.emplace_back(full.data() + r.begin, r.size() * sizeof(float));
  return frames;
}

// Both workers push `step`'s gradients for every owned slice; the step completes.
void RunStep(KvShard* shard, int64_t step) {
  for (int rank = 0; rank < kWorkers; ++rank) {
    auto applied = shard->AddPush(rank, step, 3 + 2 * rank, shard->ranges(), Frames(FullGrad(step, rank), shard->ranges()));
    ASSERT_OK(applied.status());
    EXPECT_EQ(*applied, rank == kWorkers - 1);
  }
}

std::vector<SliceRecord> ToRecords(const std::vector<SliceSnapshot>& snapshot, int per) {
  std::vector<SliceRecord> records;
  for (const SliceSnapshot& s : snapshot) {
    SliceRecord r;
    r.range = s.range;
    r.version = s.version;
    r.state_per_param = per;
    r.params = *s.params;
    r.state = s.state;
    records.push_back(std::move(r));
  }
  return records;
}

bool Bitwise(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// The shards' parameters by key.
std::map<uint64_t, float> ByKey(const std::vector<const KvShard*>& shards) {
  std::map<uint64_t, float> out;
  for (const KvShard* s : shards) {
    const std::vector<float> p = s->params();
    size_t at = 0;
    for (const KeyRange& r : s->ranges()) {
      for (uint64_t k = r.begin; k < r.end; ++k) {
        EXPECT_FALSE(out.count(k)) << "key " << k << " held twice";
        out[k] = p[at++];
      }
    }
  }
  return out;
}

void ExpectSameByKey(const std::map<uint64_t, float>& got, const std::map<uint64_t, float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, value] : want) {
    ASSERT_TRUE(got.count(key)) << "key " << key;
    EXPECT_EQ(std::memcmp(&got.at(key), &value, sizeof(float)), 0)
        << "key " << key << ": " << got.at(key) << " vs " << value;
  }
}

// A shard trained `steps` steps.
std::unique_ptr<KvShard> Trained(const Optimizer* opt, int steps, const std::vector<KeyRange>& ranges = kOriginal) {
  auto shard = std::make_unique<KvShard>(ranges, Tensors(), kSeed, opt, proto::BSP, kWorkers);
  for (int step = 0; step < steps; ++step) RunStep(shard.get(), step);
  return shard;
}

TEST(KvShardRestoreTest, SnapshotHoldsRangesVersionsParamsAndStateBlocks) {
  // One momentum step from zero state leaves v = the mean gradient; Adam's
  // moments are m = (1 - b1) g and v = (1 - b2) g^2, blocks back to back.
  for (const auto& [name, opt] : StatefulOptimizers()) {
    SCOPED_TRACE(name);
    auto shard = Trained(opt.get(), 1);
    const std::vector<SliceSnapshot> snap = shard->Snapshot();
    ASSERT_EQ(snap.size(), kOriginal.size());
    std::vector<float> params;
    const std::vector<float> g0 = FullGrad(0, 0), g1 = FullGrad(0, 1);
    for (size_t i = 0; i < snap.size(); ++i) {
      const SliceSnapshot& s = snap[i];
      EXPECT_EQ(s.range, kOriginal[i]);
      EXPECT_EQ(s.version, 1);
      ASSERT_NE(s.params, nullptr);
      params.insert(params.end(), s.params->begin(), s.params->end());
      const uint64_t n = s.range.size();
      ASSERT_EQ(s.state.size(), n * opt->state_per_param());
      for (uint64_t k = 0; k < n; ++k) {
        const uint64_t key = s.range.begin + k;
        const double g = (double{g0[key]} + g1[key]) / 8.0;  // 3 + 5 examples
        if (name == "adam") {
          EXPECT_NEAR(s.state[k], 0.1 * g, 1e-5) << "m, key " << key;
          EXPECT_NEAR(s.state[n + k], 0.001 * g * g, 1e-6) << "v, key " << key;
        } else {
          EXPECT_NEAR(s.state[k], g, 1e-5) << "key " << key;
        }
      }
    }
    EXPECT_TRUE(Bitwise(params, shard->params()));
  }
}

TEST(KvShardRestoreTest, RestoreIntoAFreshShardGivesTheSameParamsAndNextStep) {
  for (const auto& [name, opt] : StatefulOptimizers()) {
    SCOPED_TRACE(name);
    constexpr int kSteps = 4;
    auto trained = Trained(opt.get(), kSteps);
    KvShard fresh(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
    ASSERT_FALSE(Bitwise(fresh.params(), trained->params())) << "training changed nothing";
    const std::vector<SliceRecord> records = ToRecords(trained->Snapshot(), opt->state_per_param());

    ASSERT_OK(fresh.Restore(records, kSteps));
    EXPECT_TRUE(Bitwise(fresh.params(), trained->params()));
    EXPECT_EQ(fresh.version(), kSteps);
    EXPECT_EQ(fresh.MinVersion({0}), kSteps);
    EXPECT_EQ(fresh.MinVersion({1}), kSteps);

    // Same state too: the next steps agree bitwise.
    for (int step = kSteps; step < kSteps + 2; ++step) {
      RunStep(trained.get(), step);
      RunStep(&fresh, step);
      EXPECT_TRUE(Bitwise(fresh.params(), trained->params())) << "after step " << step;
      EXPECT_EQ(fresh.version(), trained->version());
    }

    // Without the state (zeroed), the next step differs: the test above can tell.
    auto again = Trained(opt.get(), kSteps);
    std::vector<SliceRecord> stateless = ToRecords(again->Snapshot(), opt->state_per_param());
    for (SliceRecord& r : stateless) std::fill(r.state.begin(), r.state.end(), 0.0f);
    KvShard zeroed(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
    ASSERT_OK(zeroed.Restore(stateless, kSteps));
    RunStep(again.get(), kSteps);
    RunStep(&zeroed, kSteps);
    EXPECT_FALSE(Bitwise(zeroed.params(), again->params()));
  }
}

TEST(KvShardRestoreTest, RestoreSetsTheVersionAndDropsPendingPushes) {
  auto opt = MakeOptimizer(proto::OptimizerSpec::SGD, 0.9f);
  auto trained = Trained(opt.get(), 2);
  const std::vector<SliceRecord> records = ToRecords(trained->Snapshot(), 1);
  KvShard shard(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
  // Rank 0's push for step 0 is pending when the restore comes.
  auto pending = shard.AddPush(0, 0, 1, kOriginal, Frames(FullGrad(99, 0), kOriginal));
  ASSERT_OK(pending.status());
  ASSERT_FALSE(*pending);

  // A checkpoint's step need not equal its records' versions.
  ASSERT_OK(shard.Restore(records, 7));
  EXPECT_EQ(shard.version(), 7);
  // The old step is gone; rank 0 may push step 7, and it waits for rank 1.
  EXPECT_FALSE(shard.AddPush(0, 0, 1, kOriginal, Frames(FullGrad(0, 0), kOriginal)).ok());
  auto first = shard.AddPush(0, 7, 3, kOriginal, Frames(FullGrad(7, 0), kOriginal));
  ASSERT_OK(first.status());
  EXPECT_FALSE(*first);
  EXPECT_TRUE(Bitwise(shard.params(), trained->params()));
  auto second = shard.AddPush(1, 7, 5, kOriginal, Frames(FullGrad(7, 1), kOriginal));
  ASSERT_OK(second.status());
  EXPECT_TRUE(*second);
  EXPECT_EQ(shard.version(), 8);
  EXPECT_FALSE(Bitwise(shard.params(), trained->params()));
}

TEST(KvShardRestoreTest, RestoreIntoDifferentlySplitShardsHoldsTheSameValues) {
  for (const auto& [name, opt] : StatefulOptimizers()) {
    SCOPED_TRACE(name);
    constexpr int kSteps = 3;
    auto trained = Trained(opt.get(), kSteps);
    const std::vector<SliceRecord> records = ToRecords(trained->Snapshot(), opt->state_per_param());

    std::vector<std::unique_ptr<KvShard>> split;
    for (const auto& ranges : kResplit) {
      split.push_back(std::make_unique<KvShard>(ranges, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers));
      ASSERT_OK(split.back()->Restore(records, kSteps));
      EXPECT_EQ(split.back()->version(), kSteps);
    }
    std::vector<const KvShard*> parts;
    for (const auto& s : split) parts.push_back(s.get());
    ExpectSameByKey(ByKey(parts), ByKey({trained.get()}));

    // The state was split with them: a step keeps them equal.
    RunStep(trained.get(), kSteps);
    for (auto& s : split) RunStep(s.get(), kSteps);
    ExpectSameByKey(ByKey(parts), ByKey({trained.get()}));

    // And back: the split shards' snapshots restore the original layout.
    std::vector<SliceRecord> merged;
    for (auto& s : split) {
      for (SliceRecord& r : ToRecords(s->Snapshot(), opt->state_per_param())) merged.push_back(std::move(r));
    }
    EXPECT_EQ(merged.size(), 4u);
    KvShard rejoined(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
    ASSERT_OK(rejoined.Restore(merged, kSteps + 1));
    EXPECT_TRUE(Bitwise(rejoined.params(), trained->params()));
    RunStep(trained.get(), kSteps + 1);
    RunStep(&rejoined, kSteps + 1);
    EXPECT_TRUE(Bitwise(rejoined.params(), trained->params()));
  }
}

TEST(KvShardRestoreTest, RecordsInAnyOrderRestoreTheSame) {
  auto opt = MakeOptimizer(proto::OptimizerSpec::ADAM);
  auto trained = Trained(opt.get(), 2);
  std::vector<SliceRecord> records = ToRecords(trained->Snapshot(), 2);
  std::reverse(records.begin(), records.end());
  KvShard shard(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
  ASSERT_OK(shard.Restore(records, 2));
  EXPECT_TRUE(Bitwise(shard.params(), trained->params()));
}

// Restore must fail with DataLoss and leave `shard` as `twin` (an identical
// shard that was not restored): same params, version, pending pushes and state.
void ExpectFailsAndChangesNothing(KvShard* shard, KvShard* twin, const std::vector<SliceRecord>& records,
                                  const std::string& what) {
  SCOPED_TRACE(what);
  const Status s = shard->Restore(records, 50);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_TRUE(Bitwise(shard->params(), twin->params()));
  EXPECT_EQ(shard->version(), twin->version());
}

// Finishes the step both shards have rank 0's push pending for, then runs one
// more; they must still agree (pending push and optimizer state untouched).
void ExpectSameFuture(KvShard* shard, KvShard* twin) {
  const int64_t step = shard->version();
  for (KvShard* s : {shard, twin}) {
    auto applied = s->AddPush(1, step, 5, s->ranges(), Frames(FullGrad(step, 1), s->ranges()));
    ASSERT_OK(applied.status());
    EXPECT_TRUE(*applied) << "the pending push was lost";
    RunStep(s, step + 1);
  }
  EXPECT_TRUE(Bitwise(shard->params(), twin->params()));
  EXPECT_EQ(shard->version(), twin->version());
}

struct Pair {
  std::unique_ptr<KvShard> shard, twin;
};

// Two identical trained shards, each with rank 0's push for the next step pending.
Pair TrainedPair(const Optimizer* opt, int steps) {
  Pair p{Trained(opt, steps), Trained(opt, steps)};
  for (KvShard* s : {p.shard.get(), p.twin.get()}) {
    auto applied = s->AddPush(0, steps, 3, s->ranges(), Frames(FullGrad(steps, 0), s->ranges()));
    EXPECT_TRUE(applied.ok() && !*applied);
  }
  return p;
}

TEST(KvShardRestoreTest, RecordsMissingAKeyAreDataLossAndChangeNothing) {
  auto opt = MakeOptimizer(proto::OptimizerSpec::SGD, 0.9f);
  const std::vector<SliceRecord> good = ToRecords(Trained(opt.get(), 5)->Snapshot(), 1);

  std::vector<std::pair<std::string, std::vector<SliceRecord>>> cases;
  cases.push_back({"no records", {}});
  {
    auto r = good;
    r.pop_back();  // [10, 14) missing
    cases.push_back({"a slice missing", r});
  }
  {
    auto r = good;
    r.erase(r.begin());  // [0, 6) missing
    cases.push_back({"the first slice missing", r});
  }
  {
    auto r = good;  // [0, 6) cut to [0, 5): key 5 missing
    r[0].range.end = 5;
    r[0].params.resize(5);
    r[0].state.resize(5);
    cases.push_back({"the last key of a slice missing", r});
  }
  {
    auto r = good;  // [10, 14) cut to [11, 14): key 10 missing
    r[1].range.begin = 11;
    r[1].params.erase(r[1].params.begin());
    r[1].state.erase(r[1].state.begin());
    cases.push_back({"the first key of a slice missing", r});
  }
  {
    // [0, 6) split into [0, 2) and [3, 6): key 2 missing in the middle.
    auto r = good;
    SliceRecord a = r[0], b = r[0];
    a.range = {0, 2};
    a.params.assign(r[0].params.begin(), r[0].params.begin() + 2);
    a.state.assign(r[0].state.begin(), r[0].state.begin() + 2);
    b.range = {3, 6};
    b.params.assign(r[0].params.begin() + 3, r[0].params.end());
    b.state.assign(r[0].state.begin() + 3, r[0].state.end());
    r[0] = a;
    r.push_back(b);
    cases.push_back({"a key missing inside a slice", r});
  }
  for (const auto& [what, records] : cases) {
    Pair p = TrainedPair(opt.get(), 5);
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), records, what);
    ExpectSameFuture(p.shard.get(), p.twin.get());
  }
}

TEST(KvShardRestoreTest, OverlappingRecordsAreDataLossAndChangeNothing) {
  auto opt = MakeOptimizer(proto::OptimizerSpec::SGD, 0.9f);
  const std::vector<SliceRecord> good = ToRecords(Trained(opt.get(), 3)->Snapshot(), 1);

  std::vector<std::pair<std::string, std::vector<SliceRecord>>> cases;
  {
    auto r = good;
    r.push_back(good[0]);
    cases.push_back({"a record twice", r});
  }
  {
    auto r = good;  // [4, 8) overlaps [0, 6)
    SliceRecord extra;
    extra.range = {4, 8};
    extra.state_per_param = 1;
    extra.params.assign(4, 1.0f);
    extra.state.assign(4, 1.0f);
    r.push_back(extra);
    cases.push_back({"a record overlapping another's end", r});
  }
  {
    auto r = good;  // [12, 13) inside [10, 14)
    SliceRecord inner;
    inner.range = {12, 13};
    inner.state_per_param = 1;
    inner.params.assign(1, 2.0f);
    inner.state.assign(1, 2.0f);
    r.insert(r.begin(), inner);
    cases.push_back({"a record inside another", r});
  }
  for (const auto& [what, records] : cases) {
    Pair p = TrainedPair(opt.get(), 3);
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), records, what);
    ExpectSameFuture(p.shard.get(), p.twin.get());
  }
}

TEST(KvShardRestoreTest, AnotherOptimizersStateIsDataLossAndChangesNothing) {
  auto plain = MakeOptimizer(proto::OptimizerSpec::SGD);
  auto momentum = MakeOptimizer(proto::OptimizerSpec::SGD, 0.9f);
  auto adam = MakeOptimizer(proto::OptimizerSpec::ADAM);
  ASSERT_EQ(plain->state_per_param(), 0);
  ASSERT_EQ(momentum->state_per_param(), 1);
  ASSERT_EQ(adam->state_per_param(), 2);

  const std::vector<SliceRecord> from_plain = ToRecords(Trained(plain.get(), 2)->Snapshot(), 0);
  const std::vector<SliceRecord> from_momentum = ToRecords(Trained(momentum.get(), 2)->Snapshot(), 1);
  const std::vector<SliceRecord> from_adam = ToRecords(Trained(adam.get(), 2)->Snapshot(), 2);
  {
    Pair p = TrainedPair(adam.get(), 3);
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), from_plain, "plain SGD into Adam");
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), from_momentum, "momentum SGD into Adam");
    ExpectSameFuture(p.shard.get(), p.twin.get());
  }
  {
    Pair p = TrainedPair(plain.get(), 3);
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), from_adam, "Adam into plain SGD");
    ExpectSameFuture(p.shard.get(), p.twin.get());
  }
  {
    // One record of the wrong kind among good ones.
    Pair p = TrainedPair(momentum.get(), 3);
    std::vector<SliceRecord> mixed = from_momentum;
    mixed[1] = from_adam[1];
    ExpectFailsAndChangesNothing(p.shard.get(), p.twin.get(), mixed, "one Adam record among momentum ones");
    ExpectSameFuture(p.shard.get(), p.twin.get());
  }
  // The right kind restores.
  KvShard ok(kOriginal, Tensors(), kSeed, plain.get(), proto::BSP, kWorkers);
  EXPECT_OK(ok.Restore(from_plain, 2));
}

// A step while a snapshot holds the buffers runs out of place (into spare
// buffers, Optimizer::ApplyMeanFrom); it must give the bits of a step in place,
// parameters and state, the first time (new spares) and later (reused ones).
TEST(KvShardRestoreTest, StepsAfterSnapshotsGiveTheBitsOfStepsWithout) {
  for (const auto& [name, opt] : StatefulOptimizers()) {
    SCOPED_TRACE(name);
    auto held = Trained(opt.get(), 2);
    auto plain = Trained(opt.get(), 2);
    for (int64_t step = 2; step < 6; ++step) {
      std::vector<SliceSnapshot> snap;
      if (step % 2 == 0) snap = held->Snapshot();  // odd steps: in place again
      RunStep(held.get(), step);
      RunStep(plain.get(), step);
      ASSERT_TRUE(Bitwise(held->params(), plain->params())) << "step " << step;
      const std::vector<SliceSnapshot> a = held->Snapshot(), b = plain->Snapshot();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(Bitwise(a[i].state, b[i].state)) << "step " << step;
    }
  }
}

// The same on slices longer than the optimizer's chunks, with tails that are
// not a multiple of 4 (the out-of-place step fuses the mean into one pass
// over a whole slice), with one worker (the mean of one push) and three (a
// sum), weight decay, and frozen zero weights.
TEST(KvShardRestoreTest, OutOfPlaceStepsOnLongSlicesGiveTheBitsOfInPlaceOnes) {
  const std::vector<TensorInfo> tensors = {
      TensorInfo{.name = std::string("w"), .shape = {7, 1001}, .offset = 0, .size = 7007, .init_bound = 0.5f}};
  const std::vector<KeyRange> slices = {{0, 4099}, {4099, 7007}};
  std::vector<NamedOptimizer> optimizers;
  for (proto::OptimizerSpec::Type type : {proto::OptimizerSpec::SGD, proto::OptimizerSpec::ADAM}) {
    proto::OptimizerSpec spec;
    spec.set_type(type);
    spec.set_learning_rate(0.05f);
    spec.set_momentum(type == proto::OptimizerSpec::SGD ? 0.9f : 0.0f);
    spec.set_weight_decay(0.01f);
    auto o = CreateOptimizer(spec);
    ASSERT_OK(o.status());
    optimizers.push_back({type == proto::OptimizerSpec::SGD ? "sgd-momentum" : "adam", std::move(o).value()});
  }
  for (const auto& [name, opt] : optimizers) {
    for (int workers : {1, 3}) {
      SCOPED_TRACE(name + ", " + std::to_string(workers) + " workers");
      KvShard held(slices, tensors, kSeed, opt.get(), proto::BSP, workers, /*freeze_zero_weights=*/true);
      KvShard plain(slices, tensors, kSeed, opt.get(), proto::BSP, workers, /*freeze_zero_weights=*/true);
      // Some weights exactly 0, to be held there.
      std::vector<SliceRecord> records = ToRecords(plain.Snapshot(), opt->state_per_param());
      for (SliceRecord& r : records) {
        for (size_t k = 3; k < r.params.size(); k += 97) r.params[k] = 0.0f;
      }
      ASSERT_OK(held.Restore(records, 0));
      ASSERT_OK(plain.Restore(records, 0));
      std::mt19937 rng(17);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (int64_t step = 0; step < 5; ++step) {
        std::vector<SliceSnapshot> snap;
        if (step % 2 == 1) snap = held.Snapshot();  // even steps: in place
        for (int rank = 0; rank < workers; ++rank) {
          std::vector<float> g(7007);
          for (float& x : g) x = normal(rng);
          ASSERT_OK(held.AddPush(rank, step, 2 + rank, slices, Frames(g, slices)).status());
          ASSERT_OK(plain.AddPush(rank, step, 2 + rank, slices, Frames(g, slices)).status());
        }
        ASSERT_EQ(held.version(), step + 1);
        ASSERT_TRUE(Bitwise(held.params(), plain.params())) << "step " << step;
        const std::vector<SliceSnapshot> a = held.Snapshot(), b = plain.Snapshot();
        for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(Bitwise(a[i].state, b[i].state)) << "step " << step;
      }
      EXPECT_EQ(held.params()[3], 0.0f);
    }
  }
}

TEST(KvShardRestoreTest, SnapshotParamsAndStateStayAsTheyWere) {
  for (const auto& [name, opt] : StatefulOptimizers()) {
    SCOPED_TRACE(name);
    auto shard = Trained(opt.get(), 2);
    const std::vector<SliceSnapshot> snap = shard->Snapshot();
    std::vector<std::vector<float>> saved_params;
    std::vector<std::vector<float>> saved_state;
    for (const SliceSnapshot& s : snap) {
      saved_params.push_back(*s.params);
      saved_state.push_back(s.state);
    }
    const std::vector<float> before = shard->params();

    // Both workers push: the step completes and writes new parameters.
    RunStep(shard.get(), 2);
    ASSERT_FALSE(Bitwise(shard->params(), before)) << "the step changed nothing";
    for (size_t i = 0; i < snap.size(); ++i) {
      EXPECT_TRUE(Bitwise(*snap[i].params, saved_params[i])) << "slice " << i << " changed under the snapshot";
      EXPECT_TRUE(Bitwise(snap[i].state, saved_state[i]));
      EXPECT_EQ(snap[i].version, 2);
    }

    // A second snapshot sees the new values, and the first still restores the old ones.
    const std::vector<SliceSnapshot> later = shard->Snapshot();
    std::vector<float> later_params;
    for (const SliceSnapshot& s : later) later_params.insert(later_params.end(), s.params->begin(), s.params->end());
    EXPECT_TRUE(Bitwise(later_params, shard->params()));
    KvShard restored(kOriginal, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers);
    ASSERT_OK(restored.Restore(ToRecords(snap, opt->state_per_param()), 2));
    EXPECT_TRUE(Bitwise(restored.params(), before));
  }
}

TEST(KvShardRestoreTest, SnapshotThroughTheStoreEncodingRestoresTheSame) {
  // Snapshot -> record bytes -> decoded records -> Restore, as a checkpoint does.
  auto opt = MakeOptimizer(proto::OptimizerSpec::ADAM);
  auto trained = Trained(opt.get(), 3);
  std::vector<SliceRecord> records;
  for (const SliceSnapshot& s : trained->Snapshot()) {
    auto r = DecodeSliceRecord(SliceKey(s.range.begin), EncodeSliceRecord(s, opt->state_per_param()));
    ASSERT_OK(r.status());
    records.push_back(std::move(r).value());
  }
  std::vector<std::unique_ptr<KvShard>> split;
  std::vector<const KvShard*> parts;
  for (const auto& ranges : kResplit) {
    split.push_back(std::make_unique<KvShard>(ranges, Tensors(), kSeed, opt.get(), proto::BSP, kWorkers));
    ASSERT_OK(split.back()->Restore(records, 3));
    parts.push_back(split.back().get());
  }
  ExpectSameByKey(ByKey(parts), ByKey({trained.get()}));
}

}  // namespace
}  // namespace tessera
