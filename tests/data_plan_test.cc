#include "core/data_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "scheduler/lease_book.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

bool IsPermutation(std::vector<int64_t> order, int64_t n) {
  if (static_cast<int64_t>(order.size()) != n) return false;
  std::sort(order.begin(), order.end());
  for (int64_t i = 0; i < n; ++i) {
    if (order[i] != i) return false;
  }
  return true;
}

TEST(DataPlanTest, EpochOrderIsAPermutation) {
  for (int64_t n : {0, 1, 2, 7, 1000, 60000}) {
    EXPECT_TRUE(IsPermutation(EpochOrder(1, 0, n), n)) << "n " << n;
    EXPECT_TRUE(IsPermutation(EpochOrder(99, 5, n), n)) << "n " << n;
  }
}

TEST(DataPlanTest, EpochOrderIsDeterministic) {
  EXPECT_EQ(EpochOrder(3, 2, 5000), EpochOrder(3, 2, 5000));
}

TEST(DataPlanTest, EpochOrderDiffersAcrossEpochsAndSeeds) {
  const std::vector<int64_t> base = EpochOrder(1, 0, 1000);
  EXPECT_NE(base, EpochOrder(1, 1, 1000));
  EXPECT_NE(base, EpochOrder(2, 0, 1000));
  EXPECT_NE(EpochOrder(1, 1, 1000), EpochOrder(2, 0, 1000));
  // And it actually shuffles.
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(base, identity);
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += base[i] == i;
  EXPECT_LT(fixed, 20) << "a random permutation fixes about one point";
}

TEST(DataPlanTest, CutShardsCoversEverythingEvenly) {
  for (int64_t n : {0, 1, 5, 7, 100, 60000, 60001}) {
    for (int shards : {1, 2, 3, 8, 13, 200}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", shards " + std::to_string(shards));
      const std::vector<Shard> cut = CutShards(n, shards);
      ASSERT_EQ(cut.size(), static_cast<size_t>(shards));
      EXPECT_EQ(cut.front().begin, 0);
      EXPECT_EQ(cut.back().end, n);
      int64_t smallest = INT64_MAX, largest = 0;
      for (size_t i = 0; i < cut.size(); ++i) {
        if (i > 0) {
          EXPECT_EQ(cut[i].begin, cut[i - 1].end) << "shard " << i;
        }
        EXPECT_GE(cut[i].size(), 0);
        smallest = std::min(smallest, cut[i].size());
        largest = std::max(largest, cut[i].size());
      }
      EXPECT_LE(largest - smallest, 1);
    }
  }
}

TEST(DataPlanTest, ShardsOfRankPartitionTheShards) {
  for (int shards : {1, 4, 8, 9}) {
    for (int workers : {1, 2, 3, 4, 12}) {
      SCOPED_TRACE("shards " + std::to_string(shards) + ", workers " + std::to_string(workers));
      std::vector<int> seen(shards, 0);
      for (int r = 0; r < workers; ++r) {
        const std::vector<int> mine = ShardsOfRank(shards, workers, r);
        for (size_t i = 0; i < mine.size(); ++i) {
          ASSERT_GE(mine[i], 0);
          ASSERT_LT(mine[i], shards);
          EXPECT_EQ(mine[i] % workers, r);
          if (i > 0) {
            EXPECT_EQ(mine[i], mine[i - 1] + workers);
          }
          ++seen[mine[i]];
        }
        if (r < shards) {
          ASSERT_FALSE(mine.empty());
          EXPECT_EQ(mine.front(), r);
        } else {
          EXPECT_TRUE(mine.empty());
        }
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), shards);
    }
  }
  EXPECT_EQ(ShardsOfRank(8, 3, 1), (std::vector<int>{1, 4, 7}));
}

TEST(DataPlanTest, StepsForShardsNeverSpansTwoShards) {
  const std::vector<Shard> shards = {{0, 10}, {10, 17}, {17, 20}, {20, 20}};
  // ceil(10/4) + ceil(3/4) = 3 + 1: a batch does not take 2 from shard 0 and 2 from shard 2.
  EXPECT_EQ(StepsForShards(shards, {0, 2}, 4), 4);
  EXPECT_EQ(StepsForShards(shards, {0, 1, 2}, 4), 3 + 2 + 1);
  EXPECT_EQ(StepsForShards(shards, {3}, 4), 0);
  EXPECT_EQ(StepsForShards(shards, {}, 4), 0);
  EXPECT_EQ(StepsForShards(shards, {0}, 1), 10);
  EXPECT_EQ(StepsForShards(shards, {0}, 10), 1);
  EXPECT_EQ(StepsForShards(shards, {0}, 64), 1);
}

// Block-size lists for BlockedOrder: empty, single records, one block, equal
// and unequal sizes, a table's 4096/4096/1808, and many blocks of mixed sizes.
std::vector<std::vector<int64_t>> BlockSizeLists() {
  std::vector<std::vector<int64_t>> lists = {
      {}, {1}, {7}, {1, 1, 1, 1, 1}, {3, 1, 4, 1, 5, 9, 2, 6}, {1, 100, 1, 37}, {4096, 4096, 1808}, {10, 10, 10, 10},
  };
  std::vector<int64_t> mixed;
  for (int b = 0; b < 60; ++b) mixed.push_back(1 + (b * 37) % 23);
  lists.push_back(mixed);
  return lists;
}

std::string Describe(const std::vector<int64_t>& sizes) {
  std::string text = "block sizes {";
  for (size_t i = 0; i < sizes.size() && i < 12; ++i) text += (i > 0 ? ", " : "") + std::to_string(sizes[i]);
  return text + (sizes.size() > 12 ? ", ...}" : "}");
}

// Every position's record, in position order.
std::vector<int64_t> RecordsOf(const BlockedOrder& order) {
  std::vector<int64_t> records;
  for (int64_t p = 0; p < order.size(); ++p) records.push_back(order.RecordAt(p));
  return records;
}

// The block (index in file order) holding `record`.
int64_t BlockOf(const std::vector<int64_t>& sizes, int64_t record) {
  for (size_t b = 0; b < sizes.size(); ++b) {
    if (record < sizes[b]) return static_cast<int64_t>(b);
    record -= sizes[b];
  }
  return -1;
}

TEST(BlockedOrderTest, IsAPermutationOfTheRecords) {
  for (const std::vector<int64_t>& sizes : BlockSizeLists()) {
    SCOPED_TRACE(Describe(sizes));
    const int64_t n = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    for (const auto& [seed, epoch] : std::vector<std::pair<uint64_t, int>>{{1, 0}, {1, 3}, {42, 0}, {7, 100}}) {
      const BlockedOrder order(seed, epoch, sizes);
      EXPECT_EQ(order.size(), n);
      EXPECT_TRUE(IsPermutation(RecordsOf(order), n)) << "seed " << seed << " epoch " << epoch;
    }
  }
}

TEST(BlockedOrderTest, IsDeterministicWhateverTheOrderOfLookups) {
  for (const std::vector<int64_t>& sizes : BlockSizeLists()) {
    SCOPED_TRACE(Describe(sizes));
    const BlockedOrder a(5, 2, sizes), b(5, 2, sizes);
    const std::vector<int64_t> forward = RecordsOf(a);
    EXPECT_EQ(forward, RecordsOf(b));
    EXPECT_EQ(forward, RecordsOf(a)) << "asked again";
    // Backwards and at random positions (each a different block from the last
    // one, mostly): the same records.
    for (int64_t p = a.size() - 1; p >= 0; --p) ASSERT_EQ(b.RecordAt(p), forward[p]) << "position " << p;
    std::mt19937_64 rng(9);
    for (int i = 0; i < 500 && a.size() > 0; ++i) {
      const int64_t p = static_cast<int64_t>(rng() % static_cast<uint64_t>(a.size()));
      ASSERT_EQ(a.RecordAt(p), forward[p]) << "position " << p;
    }
  }
}

TEST(BlockedOrderTest, DiffersAcrossEpochsAndSeeds) {
  std::vector<int64_t> sizes;
  for (int b = 0; b < 40; ++b) sizes.push_back(20 + b % 7);
  const std::vector<int64_t> base = RecordsOf(BlockedOrder(1, 0, sizes));
  EXPECT_NE(base, RecordsOf(BlockedOrder(1, 1, sizes)));
  EXPECT_NE(base, RecordsOf(BlockedOrder(2, 0, sizes)));
  EXPECT_NE(RecordsOf(BlockedOrder(1, 1, sizes)), RecordsOf(BlockedOrder(2, 0, sizes)));
  // Both levels shuffle: the blocks' order, and the records inside one block.
  const std::vector<int64_t> one_block = {1000};
  const std::vector<int64_t> inside = RecordsOf(BlockedOrder(1, 0, one_block));
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += inside[i] == i;
  EXPECT_LT(fixed, 20) << "a random permutation fixes about one point";
  EXPECT_NE(inside, RecordsOf(BlockedOrder(1, 1, one_block)));
  EXPECT_NE(inside, RecordsOf(BlockedOrder(2, 0, one_block)));
  std::vector<int64_t> first_blocks;  // the block at each slot, from the first position of each run
  for (int64_t p = 0; p < static_cast<int64_t>(base.size()); ++p) {
    const int64_t block = BlockOf(sizes, base[p]);
    if (first_blocks.empty() || first_blocks.back() != block) first_blocks.push_back(block);
  }
  ASSERT_EQ(first_blocks.size(), sizes.size());
  std::vector<int64_t> file_order(sizes.size());
  std::iota(file_order.begin(), file_order.end(), 0);
  EXPECT_NE(first_blocks, file_order);
  // The same block sizes under another seed visit the blocks in another order.
  std::vector<int64_t> other_blocks;
  for (int64_t record : RecordsOf(BlockedOrder(2, 0, sizes))) {
    const int64_t block = BlockOf(sizes, record);
    if (other_blocks.empty() || other_blocks.back() != block) other_blocks.push_back(block);
  }
  EXPECT_NE(first_blocks, other_blocks);
}

TEST(BlockedOrderTest, EachBlockIsOneRunOfConsecutivePositions) {
  for (const std::vector<int64_t>& sizes : BlockSizeLists()) {
    SCOPED_TRACE(Describe(sizes));
    for (int epoch : {0, 1, 2}) {
      const std::vector<int64_t> records = RecordsOf(BlockedOrder(3, epoch, sizes));
      // Cut the positions into runs of one block; each run must be a whole block.
      std::vector<int> runs_of_block(sizes.size(), 0);
      int64_t p = 0;
      while (p < static_cast<int64_t>(records.size())) {
        const int64_t block = BlockOf(sizes, records[p]);
        ASSERT_GE(block, 0);
        int64_t end = p;
        while (end < static_cast<int64_t>(records.size()) && BlockOf(sizes, records[end]) == block) ++end;
        EXPECT_EQ(end - p, sizes[block]) << "epoch " << epoch << ": the run at position " << p << " of block "
                                         << block;
        ++runs_of_block[block];
        p = end;
      }
      for (size_t b = 0; b < sizes.size(); ++b) {
        EXPECT_EQ(runs_of_block[b], 1) << "epoch " << epoch << ", block " << b;
      }
    }
  }
}

// 100 examples in 8 shards: positions 0, 12, 25, 37, 50, 62, 75, 87, 100.
constexpr int64_t kN = 100;
constexpr int kShards = 8;

TEST(LeaseBookTest, BspHandsEachRankItsOwnShards) {
  LeaseBook book;
  book.StartTraining(/*epoch=*/2, kN, kShards, /*workers=*/3, /*per_rank=*/true);
  const std::vector<Shard> cut = CutShards(kN, kShards);
  const std::vector<std::vector<int>> want = {{0, 3, 6}, {1, 4, 7}, {2, 5}};
  std::vector<std::vector<int>> got(3);
  // Interleave the ranks unevenly: one rank's requests never take another's shards.
  for (int rank : {2, 0, 0, 1, 2, 0, 2, 2, 1, 1, 1, 0}) {
    const proto::Lease lease = book.Next(rank);
    EXPECT_EQ(lease.epoch(), 2);
    EXPECT_FALSE(lease.test());
    if (lease.shard() < 0) continue;
    got[rank].push_back(lease.shard());
    EXPECT_EQ(lease.begin(), cut[lease.shard()].begin);
    EXPECT_EQ(lease.end(), cut[lease.shard()].end);
  }
  EXPECT_EQ(got, want);
  for (int rank = 0; rank < 3; ++rank) {
    const proto::Lease done = book.Next(rank);
    EXPECT_EQ(done.shard(), -1) << "rank " << rank;
    EXPECT_EQ(done.epoch(), 2);
  }
  EXPECT_EQ(book.Next(3).shard(), -1) << "a rank past the worker count gets nothing";
  EXPECT_EQ(book.Next(-1).shard(), -1);
}

TEST(LeaseBookTest, BspLeasesAreExplicitPositions) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, true);
  const proto::Lease first = book.Next(1);
  EXPECT_EQ(first.shard(), 1);
  EXPECT_EQ(first.begin(), 12);
  EXPECT_EQ(first.end(), 25);
}

TEST(LeaseBookTest, StepsPerWorkerIsTheMostAnyRankNeeds) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, true);
  // Sizes 12, 13, 12, 13, 12, 13, 12, 13. Rank 1 has shards 1, 4, 7 (13, 12, 13).
  EXPECT_EQ(book.StepsPerWorker(4), 4 + 3 + 4);
  EXPECT_EQ(book.StepsPerWorker(5), 3 + 3 + 3);
  EXPECT_EQ(book.StepsPerWorker(100), 3);
  book.StartTraining(0, kN, kShards, 1, true);
  EXPECT_EQ(book.StepsPerWorker(5), 4 * 3 + 4 * 3);
  // More workers than shards: the busiest rank has one shard.
  book.StartTraining(0, kN, kShards, 12, true);
  EXPECT_EQ(book.StepsPerWorker(5), 3);
}

TEST(LeaseBookTest, StepsPerWorkerDoesNotChangeAsLeasesGoOut) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, true);
  const int64_t before = book.StepsPerWorker(4);
  book.Next(1);
  EXPECT_EQ(book.StepsPerWorker(4), before);
}

TEST(LeaseBookTest, AspSharesOneQueue) {
  LeaseBook book;
  book.StartTraining(1, kN, kShards, 3, /*per_rank=*/false);
  const std::vector<Shard> cut = CutShards(kN, kShards);
  std::vector<int> got;
  for (int rank : {2, 2, 2, 0, 1, 2, 0, 2}) {
    const proto::Lease lease = book.Next(rank);
    EXPECT_EQ(lease.epoch(), 1);
    EXPECT_FALSE(lease.test());
    ASSERT_GE(lease.shard(), 0);
    EXPECT_EQ(lease.begin(), cut[lease.shard()].begin);
    EXPECT_EQ(lease.end(), cut[lease.shard()].end);
    got.push_back(lease.shard());
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  for (int rank : {0, 1, 2}) EXPECT_EQ(book.Next(rank).shard(), -1);
}

TEST(LeaseBookTest, TestPhasePerRankUnderBsp) {
  LeaseBook book;
  book.StartTest(/*epoch=*/2, /*n=*/40, /*num_shards=*/4, /*workers=*/2, /*per_rank=*/true);
  EXPECT_EQ(book.Next(1).shard(), 1);
  EXPECT_EQ(book.Next(1).shard(), 3);
  EXPECT_EQ(book.Next(1).shard(), -1);
  const proto::Lease lease = book.Next(0);
  EXPECT_TRUE(lease.test());
  EXPECT_EQ(lease.shard(), 0);
}

TEST(LeaseBookTest, TestPhaseIsFirstComeFirstServed) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, true);
  book.Next(0);
  book.StartTest(/*epoch=*/4, /*n=*/50, /*num_shards=*/4, /*workers=*/3, /*per_rank=*/false);
  const std::vector<Shard> cut = CutShards(50, 4);
  std::vector<int> got;
  for (int rank : {2, 2, 1, 2}) {
    const proto::Lease lease = book.Next(rank);
    EXPECT_TRUE(lease.test());
    EXPECT_EQ(lease.epoch(), 4);
    ASSERT_GE(lease.shard(), 0);
    EXPECT_EQ(lease.begin(), cut[lease.shard()].begin);
    EXPECT_EQ(lease.end(), cut[lease.shard()].end);
    got.push_back(lease.shard());
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
  const proto::Lease done = book.Next(0);
  EXPECT_EQ(done.shard(), -1);
  EXPECT_TRUE(done.test());

  // Training after a test phase is per rank again, with fresh queues.
  book.StartTraining(5, kN, kShards, 2, true);
  const proto::Lease lease = book.Next(1);
  EXPECT_FALSE(lease.test());
  EXPECT_EQ(lease.epoch(), 5);
  EXPECT_EQ(lease.shard(), 1);
  EXPECT_EQ(book.Next(0).shard(), 0);
}

TEST(LeaseBookTest, StartTrainingRefillsTheQueues) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 2, true);
  while (book.Next(0).shard() >= 0) {
  }
  book.StartTraining(1, kN, kShards, 2, true);
  EXPECT_EQ(book.Next(0).shard(), 0);
  EXPECT_EQ(book.Next(0).shard(), 2);
}

TEST(LeaseBookTest, NoLeaseBeforeAnyPhase) {
  LeaseBook book;
  EXPECT_EQ(book.Next(0).shard(), -1);
}

}  // namespace
}  // namespace tessera
