#include "core/data_plan.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
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
