// A sparse table's rows (server/sparse_row_store.h): rows made from (seed,
// table, id) alone, and a memory budget that moves rows to disk and back
// without changing a bit of what training computes.
#include "server/sparse_row_store.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "core/random.h"
#include "server/sparse_optimizer.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr int kDim = 4;

SparseRowStoreOptions Options(int state_floats = 0) {
  SparseRowStoreOptions options;
  options.dim = kDim;
  options.state_floats = state_floats;
  options.seed = 7;
  options.table = 1;
  options.init_bound = 0.5f;
  return options;
}

std::unique_ptr<SparseRowStore> OpenStore(SparseRowStoreOptions options) {
  auto store = SparseRowStore::Open(std::move(options));
  EXPECT_OK(store.status());
  return store.ok() ? std::move(*store) : nullptr;
}

std::vector<float> RowOf(SparseRowStore& store, uint64_t id) {
  auto row = store.Row(id, /*step=*/0);
  EXPECT_OK(row.status());
  return row.ok() ? std::vector<float>(*row, *row + store.row_floats()) : std::vector<float>();
}

// Every row the store holds, by id.
std::map<uint64_t, std::vector<float>> AllRows(const SparseRowStore& store) {
  std::map<uint64_t, std::vector<float>> rows;
  EXPECT_OK(store.ForEachRow([&](uint64_t id, const float* row, int64_t) {
    EXPECT_TRUE(rows.emplace(id, std::vector<float>(row, row + store.row_floats())).second) << "twice: " << id;
    return OkStatus();
  }));
  return rows;
}

TEST(SparseRowStoreTest, ARowStartsFromTheSeedTheTableAndTheIdAlone) {
  auto a = OpenStore(Options());
  auto b = OpenStore(Options());
  const uint64_t big = uint64_t{1} << 63;
  const std::vector<float> first = RowOf(*a, big);
  RowOf(*b, 3);  // another order of first touches
  RowOf(*b, 12345);
  EXPECT_EQ(RowOf(*b, big), first);
  EXPECT_EQ(RowOf(*a, big), first);  // and touching it again changes nothing
  for (float v : first) EXPECT_LE(std::abs(v), 0.5f);
  EXPECT_NE(RowOf(*a, big + 1), first);
  SparseRowStoreOptions other_table = Options();
  other_table.table = 2;
  EXPECT_NE(RowOf(*OpenStore(other_table), big), first);
  EXPECT_EQ(a->counts().rows, 2);
}

TEST(SparseRowStoreTest, StateStartsAsTheOptimizerSays) {
  SparseRowStoreOptions options = Options(kDim);
  EXPECT_EQ(RowOf(*OpenStore(options), 9).back(), 0.0f);
  options.init_state = [](float* state) {
    for (int i = 0; i < kDim; ++i) state[i] = 0.1f;
  };
  const std::vector<float> row = RowOf(*OpenStore(options), 9);
  EXPECT_EQ(std::vector<float>(row.begin() + kDim, row.end()), std::vector<float>(kDim, 0.1f));
}

// Runs `steps` AdaGrad steps of rows drawn from a skewed distribution over
// `ids` ids (a few hot, most cold) through `store`.
void Train(SparseRowStore& store, const SparseOptimizer& optimizer, int ids, int steps) {
  SplitMix64 rng(99);
  std::vector<float> g(kDim);
  for (int step = 1; step <= steps; ++step) {
    for (int k = 0; k < 8; ++k) {
      const uint64_t u = rng.NextBelow(ids);
      const uint64_t id = (u * u / ids) * 0x9E3779B97F4A7C15ULL;  // skewed to small u, spread over 64 bits
      for (float& x : g) x = 2.0f * rng.NextFloat() - 1.0f;
      auto row = store.Row(id, step);
      ASSERT_OK(row.status());
      optimizer.ApplyRow(step, 0.1f, *row, g.data(), *row + kDim, kDim);
    }
  }
}

// The promise: a table many times the budget trains to the same
// bits as with no budget.
TEST(SparseRowStoreTest, ABudgetFarBelowTheTableChangesNoBit) {
  SparseOptimizerOptions adagrad;
  adagrad.type = SparseOptimizerType::kAdagrad;
  adagrad.initial_accumulator = 0.1f;
  auto optimizer = SparseOptimizer::Create(adagrad);
  ASSERT_OK(optimizer.status());
  SparseRowStoreOptions options = Options((*optimizer)->state_per_value() * kDim);
  options.init_state = [&](float* state) { (*optimizer)->InitState(state, kDim); };
  auto unlimited = OpenStore(options);
  ScopedTestDir dir;
  options.memory_budget_bytes = 50 * (4 * 2 * kDim + SparseRowStore::kRowOverheadBytes);  // 50 rows
  options.spill_dir = dir.File("spill");
  auto limited = OpenStore(options);
  Train(*unlimited, **optimizer, 2000, 400);
  Train(*limited, **optimizer, 2000, 400);

  const SparseRowStoreCounts counts = limited->counts();
  EXPECT_EQ(counts.rows, unlimited->counts().rows);
  EXPECT_GT(counts.rows, 4 * 50);  // the table is more than 4 times the budget
  EXPECT_EQ(counts.rows_in_memory, 50);
  EXPECT_GT(counts.evictions, 0);
  EXPECT_GT(counts.reloads, 0);
  EXPECT_LE(counts.spill_writes, counts.evictions);
  EXPECT_EQ(unlimited->counts().evictions, 0);
  const auto expected = AllRows(*unlimited);
  const auto got = AllRows(*limited);
  EXPECT_EQ(got.size(), static_cast<size_t>(counts.rows));
  EXPECT_TRUE(got == expected) << "the rows differ";
}

// A row read back and only read (a pull) is not written again; one read
// back to change is.
TEST(SparseRowStoreTest, ARowReadBackIsWrittenAgainOnlyWhenItMayHaveChanged) {
  ScopedTestDir dir;
  SparseRowStoreOptions options = Options();
  options.memory_budget_bytes = 2 * (4 * kDim + SparseRowStore::kRowOverheadBytes);
  options.spill_dir = dir.File("spill");
  auto store = OpenStore(options);
  for (uint64_t id : {1, 2, 3}) ASSERT_OK(store->Row(id, 0).status());  // made: changed
  for (uint64_t id : {1, 2, 3}) ASSERT_OK(store->ReadRow(id).status());
  EXPECT_EQ(store->counts().rows, 3);
  EXPECT_EQ(store->counts().reloads, 3);
  EXPECT_EQ(store->counts().evictions, 4);
  EXPECT_EQ(store->counts().spill_writes, 3);  // each new row once; rows read back stay clean
  ASSERT_OK(store->Row(1, 0).status());           // read back to change: 2 goes out, clean
  ASSERT_OK(store->ReadRow(2).status());       // 3 goes out, clean
  ASSERT_OK(store->Row(4, 0).status());        // 1 goes out, changed
  EXPECT_EQ(store->counts().evictions, 7);
  EXPECT_EQ(store->counts().spill_writes, 4);
}

// Only updates make rows: a read of an id without one gives the row an
// update would start from, and the table stays as it was.
TEST(SparseRowStoreTest, AReadMakesNoRowAndGivesTheRowAnUpdateStartsFrom) {
  auto store = OpenStore(Options());
  auto read = store->ReadRow(7);
  ASSERT_OK(read.status());
  const std::vector<float> seen(*read, *read + store->row_floats());
  EXPECT_EQ(store->counts().rows, 0);
  EXPECT_EQ(store->counts().rows_in_memory, 0);
  auto made = store->Row(7, 0);
  ASSERT_OK(made.status());
  EXPECT_EQ(std::memcmp(seen.data(), *made, sizeof(float) * seen.size()), 0);
  EXPECT_EQ(store->counts().rows, 1);
}

TEST(SparseRowStoreTest, AnEarlierRunsSpilledRowsAreNotReadBack) {
  ScopedTestDir dir;
  SparseRowStoreOptions options = Options();
  options.memory_budget_bytes = 1 * (4 * kDim + SparseRowStore::kRowOverheadBytes);
  options.spill_dir = dir.File("spill");
  std::vector<float> fresh;
  {
    auto store = OpenStore(options);
    fresh = RowOf(*store, 5);
    auto row = store->Row(5, 0);
    ASSERT_OK(row.status());
    (*row)[0] = 1000;  // trained
    RowOf(*store, 6);  // 5 goes to disk, changed
  }
  auto again = OpenStore(options);
  EXPECT_EQ(RowOf(*again, 5), fresh);
  EXPECT_EQ(again->counts().reloads, 0);
}

// admit_after 3: the first two updates of an id find no row (their
// gradients dropped), the third makes it; pulls before that read zeros and
// count nothing.
TEST(SparseRowStoreTest, AnIdGetsItsRowAtItsAdmitAfterThUpdate) {
  ScopedTestDir dir;
  for (const bool spill : {false, true}) {
    SparseRowStoreOptions options = Options();
    options.admit_after = 3;
    options.admission_log2_width = 8;
    if (spill) {
      options.memory_budget_bytes = 2 * (4 * kDim + SparseRowStore::kRowOverheadBytes);
      options.spill_dir = dir.File("spill");
    }
    auto store = OpenStore(options);
    auto pulled = store->ReadRow(11);
    ASSERT_OK(pulled.status());
    EXPECT_EQ(std::vector<float>(*pulled, *pulled + kDim), std::vector<float>(kDim, 0.0f));
    for (int step = 1; step <= 2; ++step) {
      auto row = store->Row(11, step);
      ASSERT_OK(row.status());
      EXPECT_EQ(*row, nullptr) << step;
    }
    ASSERT_OK(store->ReadRow(11).status());  // still not a sighting
    EXPECT_EQ(store->counts().sightings_filtered, 2);
    EXPECT_EQ(store->counts().rows, 0);
    auto row = store->Row(11, 3);
    ASSERT_OK(row.status());
    ASSERT_NE(*row, nullptr);
    EXPECT_EQ(store->counts().rows_created, 1);
    // Its values are the id's own, whenever it was admitted.
    EXPECT_EQ(std::vector<float>(*row, *row + kDim), RowOf(*OpenStore(Options()), 11));
    // Once made, a row needs no more sightings, also after a trip to disk.
    for (uint64_t other : {12, 13, 14}) {
      for (int k = 0; k < 3; ++k) ASSERT_OK(store->Row(other, 4).status());
    }
    auto again = store->Row(11, 5);
    ASSERT_OK(again.status());
    EXPECT_NE(*again, nullptr) << spill;
    ASSERT_NE(store->admission(), nullptr);
    EXPECT_GE(store->admission()->Count(12), 3u);
  }
}

// expire_after_steps 10: a row last updated more than 10 steps ago goes, in
// memory or on disk; its id seen again starts afresh.
TEST(SparseRowStoreTest, RowsUntouchedForTheirStepsExpire) {
  ScopedTestDir dir;
  for (const bool spill : {false, true}) {
    SparseRowStoreOptions options = Options();
    options.expire_after_steps = 10;
    if (spill) {
      options.memory_budget_bytes = 1 * (4 * kDim + SparseRowStore::kRowOverheadBytes);
      options.spill_dir = dir.File("spill");
    }
    auto store = OpenStore(options);
    const std::vector<float> fresh = RowOf(*OpenStore(Options()), 1);
    auto old_row = store->Row(1, 1);
    ASSERT_OK(old_row.status());
    (*old_row)[0] = 99;  // trained
    ASSERT_OK(store->Row(2, 5).status());   // with spill: 1 goes to disk
    ASSERT_OK(store->Row(3, 20).status());  // with spill: 2 goes to disk
    auto expired = store->ExpireRows(16);   // 1 (15 steps) goes; 2 (11 steps) too; 3 stays
    ASSERT_OK(expired.status());
    EXPECT_EQ(*expired, 2) << spill;
    EXPECT_EQ(store->counts().rows, 1);
    EXPECT_EQ(store->counts().rows_expired, 2);
    EXPECT_EQ(AllRows(*store).size(), 1u) << spill;
    EXPECT_EQ(AllRows(*store).count(3), 1u) << spill;
    // The ids dropped, for an incremental checkpoint's tombstones; once.
    EXPECT_EQ(store->TakeExpiredIds(), (std::vector<uint64_t>{1, 2})) << spill;
    EXPECT_TRUE(store->TakeExpiredIds().empty());
    EXPECT_EQ(store->latest_step(), 20);
    auto back = store->Row(1, 21);
    ASSERT_OK(back.status());
    EXPECT_EQ(std::vector<float>(*back, *back + kDim), fresh) << spill;
    EXPECT_EQ(store->counts().rows_created, 4);
    auto none = store->ExpireRows(25);  // 3 at 20 and 1 at 21: within 10 steps
    ASSERT_OK(none.status());
    EXPECT_EQ(*none, 0);
  }
}

// A snapshot is the rows of its moment, in id order, whatever the store
// does afterwards: rows stepped, moved to disk over their old copies, read
// back, made.
TEST(SparseRowStoreTest, ASnapshotKeepsItsMomentWhileTheStoreGoesOn) {
  SparseRowStoreOptions options = Options();
  options.memory_budget_bytes = 10 * (kDim * 4 + SparseRowStore::kRowOverheadBytes);  // 10 rows
  options.spill_dir = MakeTempDir("sparse_row_snapshot") + "/spill";
  auto store = OpenStore(options);
  for (uint64_t id = 0; id < 50; ++id) RowOf(*store, id * 1000003);
  const std::map<uint64_t, std::vector<float>> before = AllRows(*store);
  auto snapshot = store->Snapshot();
  for (int step = 1; step <= 3; ++step) {
    for (uint64_t id = 0; id < 60; ++id) {
      auto row = store->Row(id * 1000003, step);
      ASSERT_OK(row.status());
      (*row)[0] += 1.0f;
    }
  }
  std::map<uint64_t, std::vector<float>> seen;
  uint64_t previous = 0;
  ASSERT_OK(snapshot->ForEachRow([&](uint64_t id, const float* row, int64_t last_step) {
    EXPECT_TRUE(seen.empty() || id > previous) << "out of order at " << id;
    previous = id;
    EXPECT_EQ(last_step, 0);
    seen.emplace(id, std::vector<float>(row, row + snapshot->row_floats()));
    return OkStatus();
  }));
  EXPECT_EQ(seen, before);
  EXPECT_NE(AllRows(*store), before);
}

TEST(SparseRowStoreTest, BadOptionsAreNamed) {
  SparseRowStoreOptions options = Options();
  options.dim = 0;
  EXPECT_EQ(SparseRowStore::Open(options).status().message(), "sparse table: dim must be in [1, 65536], got 0");
  options = Options();
  options.memory_budget_bytes = 10;
  options.spill_dir = "/tmp/x";
  EXPECT_EQ(SparseRowStore::Open(options).status().message(),
            "sparse table: a memory budget of 10 bytes holds no row of 64 bytes");
  options.memory_budget_bytes = 1 << 20;
  options.spill_dir.clear();
  EXPECT_EQ(SparseRowStore::Open(options).status().message(),
            "sparse table: a memory budget needs a directory for the rows beyond it");
}

}  // namespace
}  // namespace tessera
