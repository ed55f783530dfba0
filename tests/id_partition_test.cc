// Sparse rows spread over servers by id (core/id_partition.h).
#include "core/id_partition.h"

#include <gtest/gtest.h>

#include <vector>

namespace tessera {
namespace {

TEST(IdPartitionTest, OneServerHoldsEverything) {
  for (uint64_t id : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}}) EXPECT_EQ(ServerOfId(0, id, 1), 0);
}

// Sequential ids, the usual hot ones, spread evenly: each of 8 servers gets
// its eighth of 80,000 within 3%.
TEST(IdPartitionTest, SequentialIdsSpreadEvenly) {
  std::vector<int> counts(8, 0);
  for (uint64_t id = 0; id < 80000; ++id) ++counts[ServerOfId(1, id, 8)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 300);
}

// From N to N+1 servers an id stays or moves to the new server, and about
// 1/(N+1) of them move.
TEST(IdPartitionTest, AddingAServerMovesOnlyItsShareAndOnlyToIt) {
  for (int n = 1; n <= 6; ++n) {
    int moved = 0;
    for (uint64_t id = 0; id < 60000; ++id) {
      const int before = ServerOfId(3, id, n), after = ServerOfId(3, id, n + 1);
      if (before != after) {
        ++moved;
        EXPECT_EQ(after, n) << id;
      }
    }
    EXPECT_NEAR(moved, 60000.0 / (n + 1), 60000.0 * 0.02) << n;
  }
}

// Another table, another spread; pinned, so that a change of the function
// (which would strand checkpointed rows on the wrong servers) is caught.
TEST(IdPartitionTest, TablesSpreadIndependentlyAndTheFunctionIsPinned) {
  int same = 0;
  for (uint64_t id = 0; id < 10000; ++id) same += ServerOfId(1, id, 4) == ServerOfId(2, id, 4);
  EXPECT_NEAR(same, 2500, 250);
  EXPECT_EQ((std::vector<int>{ServerOfId(0, 0, 16), ServerOfId(0, 1, 16), ServerOfId(7, uint64_t{1} << 40, 16),
                              ServerOfId(7, ~uint64_t{0}, 1000)}),
            (std::vector<int>{9, 7, 5, 937}));
}

}  // namespace
}  // namespace tessera
