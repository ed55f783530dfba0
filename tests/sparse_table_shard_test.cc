// SparseTableShard: BSP aggregation of sparse rows in rank order, work only
// on the rows pushed, refusals that change nothing, membership, ASP, and the
// same bits under a memory budget that spills rows to disk.
#include "server/sparse_table_shard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/id_partition.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr int kDim = 4;

SparseTableShardOptions Options(int workers, proto::SparseOptimizerSpec::Type type = proto::SparseOptimizerSpec::SGD) {
  SparseTableShardOptions o;
  o.spec.set_name("items");
  o.spec.set_dim(kDim);
  o.spec.set_init_bound(0.5f);
  o.spec.mutable_optimizer()->set_type(type);
  o.spec.mutable_optimizer()->set_learning_rate(0.25f);
  o.seed = 7;
  o.table = 1;
  o.workers = workers;
  return o;
}

std::unique_ptr<SparseTableShard> MakeShard(const SparseTableShardOptions& o) {
  auto shard = SparseTableShard::Create(o);
  EXPECT_TRUE(shard.ok()) << shard.status().ToString();
  return std::move(shard).value();
}

std::vector<float> Grads(size_t rows, float base) {
  std::vector<float> g(rows * kDim);
  for (size_t i = 0; i < g.size(); ++i) g[i] = base + 0.125f * static_cast<float>(i);
  return g;
}

std::vector<float> Read(SparseTableShard* shard, std::vector<uint64_t> ids) {
  auto rows = shard->ReadRows(ids);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? *rows : std::vector<float>();
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(SparseTableShardTest, BspSumsTheRanksRowsInRankOrderAndStepsOnlyTouchedRows) {
  auto shard = MakeShard(Options(2));
  const std::vector<float> before = Read(shard.get(), {1, 5, 7, 9});
  const std::vector<float> g0 = Grads(2, 1.0f), g1 = Grads(2, -3.0f);
  ASSERT_FALSE(*shard->AddPush(0, 0, 3, std::vector<uint64_t>{1, 5}, g0));
  EXPECT_EQ(shard->version(), 0);
  ASSERT_TRUE(*shard->AddPush(1, 0, 5, std::vector<uint64_t>{5, 9}, g1));
  EXPECT_EQ(shard->version(), 1);

  const float scale = 1.0f / 8.0f, lr = 0.25f;
  std::vector<float> expected = before;
  for (int j = 0; j < kDim; ++j) {
    expected[0 * kDim + j] -= lr * (g0[j] * scale);                              // id 1: rank 0 only
    expected[1 * kDim + j] -= lr * ((g0[kDim + j] + g1[j]) * scale);             // id 5: both, rank order
    expected[3 * kDim + j] -= lr * (g1[kDim + j] * scale);                       // id 9: rank 1 only
  }
  EXPECT_TRUE(SameBits(Read(shard.get(), {1, 5, 7, 9}), expected));  // id 7 untouched
  EXPECT_EQ(shard->counts().rows, 3);  // only pushes make rows: id 7, only pulled, has none
}

TEST(SparseTableShardTest, ArrivalOrderDoesNotChangeTheBits) {
  auto a = MakeShard(Options(3, proto::SparseOptimizerSpec::ADAGRAD));
  auto b = MakeShard(Options(3, proto::SparseOptimizerSpec::ADAGRAD));
  const std::vector<std::vector<uint64_t>> ids = {{2, 3}, {3}, {1, 3, 4}};
  const std::vector<std::vector<float>> grads = {Grads(2, 0.3f), Grads(1, 1e7f), Grads(3, -1e-7f)};
  for (int step = 0; step < 3; ++step) {
    for (int r : {0, 1, 2}) ASSERT_TRUE(a->AddPush(r, step, 2, ids[r], grads[r]).ok());
    for (int r : {2, 0, 1}) ASSERT_TRUE(b->AddPush(r, step, 2, ids[r], grads[r]).ok());
  }
  EXPECT_TRUE(SameBits(Read(a.get(), {1, 2, 3, 4}), Read(b.get(), {1, 2, 3, 4})));
}

TEST(SparseTableShardTest, RefusedPushesChangeNothing) {
  SparseTableShardOptions o = Options(2);
  o.servers = 2;
  auto shard = MakeShard(o);
  uint64_t mine = 0, theirs = 0;
  while (ServerOfId(1, mine, 2) != 0) ++mine;
  while (ServerOfId(1, theirs, 2) != 1) ++theirs;
  const std::vector<float> before = Read(shard.get(), {mine});
  const std::vector<float> one = Grads(1, 1.0f);
  EXPECT_FALSE(shard->AddPush(0, 0, 1, std::vector<uint64_t>{theirs}, one).ok());      // another server's id
  EXPECT_FALSE(shard->AddPush(0, 1, 1, std::vector<uint64_t>{mine}, one).ok());        // a step ahead
  EXPECT_FALSE(shard->AddPush(2, 0, 1, std::vector<uint64_t>{mine}, one).ok());        // no such rank
  EXPECT_FALSE(shard->AddPush(0, 0, 1, std::vector<uint64_t>{mine}, Grads(2, 1)).ok());  // sizes
  EXPECT_FALSE(shard->AddPush(0, 0, -1, std::vector<uint64_t>{mine}, one).ok());       // examples
  std::vector<float> nan = one;
  nan[1] = std::nanf("");
  EXPECT_FALSE(shard->AddPush(0, 0, 1, std::vector<uint64_t>{mine}, nan).ok());
  uint64_t mine2 = mine + 1;
  while (ServerOfId(1, mine2, 2) != 0) ++mine2;
  EXPECT_FALSE(shard->AddPush(0, 0, 1, std::vector<uint64_t>{mine2, mine}, Grads(2, 1)).ok());  // order
  EXPECT_FALSE(shard->ReadRows(std::vector<uint64_t>{theirs}).ok());
  ASSERT_FALSE(*shard->AddPush(0, 0, 1, std::vector<uint64_t>{mine}, one));
  EXPECT_FALSE(shard->AddPush(0, 0, 1, std::vector<uint64_t>{mine}, one).ok());  // twice
  EXPECT_EQ(shard->version(), 0);
  EXPECT_TRUE(SameBits(Read(shard.get(), {mine}), before));
  ASSERT_TRUE(*shard->AddPush(1, 0, 1, std::vector<uint64_t>{}, {}));  // an empty push completes the step
  EXPECT_FALSE(SameBits(Read(shard.get(), {mine}), before));
}

TEST(SparseTableShardTest, ALeavingRankCompletesTheStepItWasAwaitedFor) {
  auto shard = MakeShard(Options(2));
  ASSERT_FALSE(*shard->AddPush(0, 0, 1, std::vector<uint64_t>{4}, Grads(1, 1.0f)));
  EXPECT_TRUE(*shard->SetActive({0}));
  EXPECT_EQ(shard->version(), 1);
  EXPECT_FALSE(shard->AddPush(1, 1, 1, std::vector<uint64_t>{4}, Grads(1, 1.0f)).ok());
  EXPECT_TRUE(*shard->AddPush(0, 1, 1, std::vector<uint64_t>{4}, Grads(1, 1.0f)));
  EXPECT_FALSE(shard->SetActive({2}).ok());
  ASSERT_TRUE(shard->AdvanceTo(5).ok());
  EXPECT_EQ(shard->version(), 5);
}

TEST(SparseTableShardTest, AspStepsEachPushOnArrival) {
  SparseTableShardOptions o = Options(2);
  o.consistency = proto::ASP;
  auto shard = MakeShard(o);
  const std::vector<float> before = Read(shard.get(), {3});
  EXPECT_TRUE(*shard->AddPush(1, 0, 2, std::vector<uint64_t>{3}, Grads(1, 1.0f)));
  EXPECT_EQ(shard->version(), 1);
  EXPECT_FALSE(SameBits(Read(shard.get(), {3}), before));
}

// A table 8x its memory budget trains to the bits of an unlimited one.
TEST(SparseTableShardTest, ABudgetThatSpillsRowsGivesTheSameBits) {
  SparseTableShardOptions unlimited = Options(2, proto::SparseOptimizerSpec::FTRL);
  unlimited.spec.mutable_optimizer()->set_ftrl_l1(0.01f);
  SparseTableShardOptions limited = unlimited;
  limited.spec.set_dim(256);  // 3 KiB a row with FTRL's state: 1 MiB holds ~330 rows
  unlimited.spec.set_dim(256);
  limited.spec.set_memory_budget_mb(1);
  limited.spill_dir = MakeTempDir("sparse_table_spill") + "/rows";
  auto a = MakeShard(unlimited);
  auto b = MakeShard(limited);
  const size_t rows = 2600, per = 256;
  std::vector<uint64_t> ids(rows);
  for (size_t i = 0; i < rows; ++i) ids[i] = i * 977;
  for (int step = 0; step < 3; ++step) {
    for (int r = 0; r < 2; ++r) {
      std::vector<uint64_t> some;
      for (size_t i = static_cast<size_t>(r + step) % 3; i < rows; i += 2) some.push_back(ids[i]);
      std::vector<float> g(some.size() * per);
      for (size_t k = 0; k < g.size(); ++k) g[k] = static_cast<float>((k * 31 + step) % 17) - 8.0f;
      ASSERT_TRUE(a->AddPush(r, step, 4, some, g).ok());
      auto pushed = b->AddPush(r, step, 4, some, g);
      ASSERT_TRUE(pushed.ok()) << pushed.status().ToString();
    }
  }
  EXPECT_GT(b->counts().evictions, 0);
  EXPECT_GT(b->counts().reloads, 0);
  auto ra = a->ReadRows(ids);
  auto rb = b->ReadRows(ids);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_TRUE(SameBits(*ra, *rb));
}

TEST(SparseTableShardTest, BadOptimizerSettingsAreRefusedByName) {
  SparseTableShardOptions o = Options(1);
  o.spec.mutable_optimizer()->set_learning_rate(0);
  auto shard = SparseTableShard::Create(o);
  ASSERT_FALSE(shard.ok());
  EXPECT_NE(shard.status().message().find("learning_rate"), std::string::npos) << shard.status().ToString();
  EXPECT_NE(shard.status().message().find("items"), std::string::npos);
}

}  // namespace
}  // namespace tessera
