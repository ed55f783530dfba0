// LeaseBook when workers are lost: leases handed back from the position the
// worker reached, dealt to the workers left, every position used once.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/data_plan.h"
#include "scheduler/lease_book.h"

namespace tessera {
namespace {

// 120 examples in 6 shards of 20; batch 8: 3 steps a shard (8, 8, 4).
constexpr int64_t kN = 120;
constexpr int kShards = 6;
constexpr int kBatch = 8;

// Takes every lease rank `rank` is given until none is left.
std::vector<proto::Lease> Drain(LeaseBook* book, int rank) {
  std::vector<proto::Lease> leases;
  for (proto::Lease l = book->Next(rank); l.shard() >= 0; l = book->Next(rank)) leases.push_back(l);
  return leases;
}

// Marks [begin, end) used in `seen`, counting positions used twice.
int MarkUsed(std::vector<int>* seen, int64_t begin, int64_t end) {
  int twice = 0;
  for (int64_t p = begin; p < end; ++p) twice += (*seen)[p]++ > 0;
  return twice;
}

TEST(LeaseHandBackTest, AllRanksIsTheFixedPlan) {
  LeaseBook a, b;
  a.StartTraining(3, kN, kShards, 3, true);
  b.StartTraining(3, kN, kShards, std::vector<int>{0, 1, 2}, true);
  for (int rank : {0, 1, 2}) {
    const std::vector<int> want = ShardsOfRank(kShards, 3, rank);
    std::vector<int> got;
    for (const proto::Lease& l : Drain(&b, rank)) got.push_back(l.shard());
    EXPECT_EQ(got, want) << "rank " << rank;
    EXPECT_EQ(Drain(&a, rank).size(), want.size());
  }
}

TEST(LeaseHandBackTest, FewerRanksShareEveryShard) {
  LeaseBook book;
  // Rank 1 is missing: shards go to 0 and 2 in turn.
  book.StartTraining(0, kN, kShards, std::vector<int>{0, 2}, true);
  EXPECT_EQ(book.StepsPerWorker(kBatch), 9);  // 3 shards each, 3 steps a shard
  std::vector<int> got0, got2;
  for (const proto::Lease& l : Drain(&book, 0)) got0.push_back(l.shard());
  for (const proto::Lease& l : Drain(&book, 2)) got2.push_back(l.shard());
  EXPECT_EQ(got0, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(got2, (std::vector<int>{1, 3, 5}));
  EXPECT_TRUE(Drain(&book, 1).empty());
}

TEST(LeaseHandBackTest, PartialShardGoesBackFromThePositionReached) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, true);  // rank 1: shards 1 (20..40) and 4 (80..100)
  const proto::Lease first = book.Next(1);
  ASSERT_EQ(first.shard(), 1);
  // Two steps done in shard 1 (16 examples); shard 4 never leased.
  EXPECT_EQ(book.HandBack(1, 2, kBatch), 16);
  EXPECT_EQ(book.returned_examples(), 4 + 20);
  EXPECT_TRUE(book.Next(1).shard() < 0) << "a lost rank's queue is empty";
  // The others finish their own shards, then share what came back.
  std::vector<int> seen(kN, 0);
  MarkUsed(&seen, 20, 36);
  for (int rank : {0, 2}) {
    for (const proto::Lease& l : Drain(&book, rank)) MarkUsed(&seen, l.begin(), l.end());
  }
  book.StartContinuation({0, 2});
  EXPECT_FALSE(book.has_returned());
  const std::vector<proto::Lease> to0 = Drain(&book, 0), to2 = Drain(&book, 2);
  ASSERT_EQ(to0.size(), 1u);
  ASSERT_EQ(to2.size(), 1u);
  EXPECT_EQ(to0[0].begin(), 36);  // the rest of shard 1 ...
  EXPECT_EQ(to0[0].end(), 40);
  EXPECT_EQ(to0[0].shard(), 1);
  EXPECT_EQ(to0[0].epoch(), 0);
  EXPECT_EQ(to2[0].begin(), 80);  // ... and shard 4, untouched
  EXPECT_EQ(to2[0].end(), 100);
  EXPECT_EQ(book.StepsPerWorker(kBatch), 3);
  for (const proto::Lease& l : to0) MarkUsed(&seen, l.begin(), l.end());
  for (const proto::Lease& l : to2) MarkUsed(&seen, l.begin(), l.end());
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; })) << "every position exactly once";
}

TEST(LeaseHandBackTest, StepsCountAcrossLeasesAndEmptyOnes) {
  // More shards than examples: 10 examples in 12 shards, some empty.
  LeaseBook book;
  book.StartTraining(0, 10, 12, 2, true);
  const std::vector<proto::Lease> leases = Drain(&book, 0);
  int64_t mine = 0;
  for (const proto::Lease& l : leases) mine += l.end() - l.begin();
  // Batch 1: every example is a step; empty shards take none.
  EXPECT_EQ(book.HandBack(0, 3, 1), 3);
  EXPECT_EQ(book.returned_examples(), mine - 3);
  // Steps past what it was given: everything used.
  LeaseBook again;
  again.StartTraining(0, kN, kShards, 3, true);
  Drain(&again, 2);
  EXPECT_EQ(again.HandBack(2, 100, kBatch), 40);
  EXPECT_FALSE(again.has_returned());
}

TEST(LeaseHandBackTest, ZeroStepsGivesBackEverythingItHad) {
  LeaseBook book;
  book.StartTest(1, 40, 4, 2, true);  // evaluation: a lost worker's results are lost with it
  book.Next(0);
  EXPECT_EQ(book.HandBack(0, 0, 1), 0);
  EXPECT_EQ(book.returned_examples(), 20);
  book.StartContinuation({1});
  const std::vector<proto::Lease> got = Drain(&book, 1);
  // The continuation holds rank 0's shards only (rank 1 has done its own).
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].test());
  EXPECT_EQ(got[0].shard(), 0);
  EXPECT_EQ(got[1].shard(), 2);
}

TEST(LeaseHandBackTest, AspHandsBackOnlyWhatTheLostRankLeased) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 3, /*per_rank=*/false);
  EXPECT_EQ(book.Next(2).shard(), 0);
  EXPECT_EQ(book.Next(1).shard(), 1);
  EXPECT_EQ(book.Next(2).shard(), 2);
  // Rank 2 finished shard 0 (3 steps) and one step of shard 2.
  EXPECT_EQ(book.HandBack(2, 4, kBatch), 28);
  EXPECT_EQ(book.returned_examples(), 12);
  // The shared queue is untouched.
  EXPECT_EQ(book.Next(0).shard(), 3);
  book.StartContinuation({0, 1});
  const proto::Lease piece = book.Next(1);
  EXPECT_EQ(piece.shard(), 2);
  EXPECT_EQ(piece.begin(), 48);
  EXPECT_EQ(piece.end(), 60);
  EXPECT_LT(book.Next(0).shard(), 0);
}

TEST(LeaseHandBackTest, ContinuationWithNobodyKeepsThePieces) {
  LeaseBook book;
  book.StartTraining(0, kN, kShards, 2, true);
  book.HandBack(0, 0, kBatch);
  const int64_t back = book.returned_examples();
  EXPECT_EQ(back, 60);
  book.StartContinuation({});
  EXPECT_EQ(book.returned_examples(), back);
  book.StartContinuation({1});
  EXPECT_EQ(book.StepsPerWorker(kBatch), 9);
}

}  // namespace
}  // namespace tessera
