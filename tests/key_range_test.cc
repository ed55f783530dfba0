#include "core/key_range.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Tensors of the given sizes laid out back to back from key 0.
std::vector<TensorInfo> Tensors(const std::vector<uint64_t>& sizes) {
  std::vector<TensorInfo> tensors;
  uint64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    TensorInfo t;
    t.name = std::string("t").append(std::to_string(i));
    t.shape = {static_cast<int64_t>(sizes[i])};
    t.offset = offset;
    t.size = sizes[i];
    offset += sizes[i];
    tensors.push_back(t);
  }
  return tensors;
}

uint64_t TotalKeys(const std::vector<TensorInfo>& tensors) {
  uint64_t n = 0;
  for (const TensorInfo& t : tensors) n = std::max(n, t.offset + t.size);
  return n;
}

// The model shapes the partition must handle: an MLP's weights and biases,
// odd sizes, and tensors smaller than the server count.
const std::vector<std::vector<uint64_t>>& Layouts() {
  static const auto* layouts = new std::vector<std::vector<uint64_t>>{
      {784 * 256, 256, 256 * 128, 128, 128 * 10, 10},
      {1},
      {3, 1, 2, 7, 1000003},
      {5, 5, 5, 5},
      {17},
  };
  return *layouts;
}

TEST(KeyRangeTest, EveryKeyOwnedByExactlyOneServer) {
  for (const auto& sizes : Layouts()) {
    const std::vector<TensorInfo> tensors = Tensors(sizes);
    const uint64_t n = TotalKeys(tensors);
    for (int servers : {1, 2, 3, 4, 7, 16}) {
      SCOPED_TRACE("keys " + std::to_string(n) + ", servers " + std::to_string(servers));
      const auto owned = PartitionKeys(tensors, servers);
      ASSERT_EQ(owned.size(), static_cast<size_t>(servers));
      std::vector<int> owners(n, 0);
      for (const auto& ranges : owned) {
        for (const KeyRange& r : ranges) {
          ASSERT_LE(r.end, n) << ToString(r);
          for (uint64_t k = r.begin; k < r.end; ++k) ++owners[k];
        }
      }
      EXPECT_EQ(std::count(owners.begin(), owners.end(), 1), static_cast<int64_t>(n));
      uint64_t counted = 0;
      for (const auto& ranges : owned) counted += CountKeys(ranges);
      EXPECT_EQ(counted, n);
    }
  }
}

TEST(KeyRangeTest, RangesAreSortedNonEmptyAndValid) {
  for (const auto& sizes : Layouts()) {
    const std::vector<TensorInfo> tensors = Tensors(sizes);
    const uint64_t n = TotalKeys(tensors);
    for (int servers : {1, 2, 3, 5, 16}) {
      const auto owned = PartitionKeys(tensors, servers);
      for (size_t s = 0; s < owned.size(); ++s) {
        SCOPED_TRACE("server " + std::to_string(s) + " of " + std::to_string(servers));
        for (size_t i = 0; i < owned[s].size(); ++i) {
          EXPECT_FALSE(owned[s][i].empty()) << ToString(owned[s][i]);
          if (i > 0) {
            EXPECT_LE(owned[s][i - 1].end, owned[s][i].begin);
          }
        }
        EXPECT_OK(ValidateRanges(owned[s], n));
      }
    }
  }
}

TEST(KeyRangeTest, EveryServerOwnsASliceOfEveryLargeEnoughTensor) {
  const std::vector<TensorInfo> tensors = Tensors({784 * 256, 256, 128 * 10, 10, 3});
  for (int servers : {2, 3, 8, 10}) {
    const auto owned = PartitionKeys(tensors, servers);
    for (const TensorInfo& t : tensors) {
      if (t.size < static_cast<uint64_t>(servers)) continue;
      for (int s = 0; s < servers; ++s) {
        uint64_t inside = 0;
        for (const KeyRange& r : owned[s]) {
          if (r.begin >= t.offset && r.end <= t.offset + t.size) inside += r.size();
          // A range never straddles two tensors.
          EXPECT_FALSE(r.begin < t.offset && r.end > t.offset) << ToString(r) << " straddles " << t.name;
        }
        EXPECT_GE(inside, t.size / servers) << t.name << " on server " << s << " of " << servers;
        EXPECT_LE(inside, (t.size + servers - 1) / servers) << t.name << " on server " << s << " of " << servers;
      }
    }
  }
}

TEST(KeyRangeTest, SplitsByBytesWithinOneKeyPerTensor) {
  for (const auto& sizes : Layouts()) {
    const std::vector<TensorInfo> tensors = Tensors(sizes);
    for (int servers : {1, 2, 3, 4, 7, 16}) {
      const auto owned = PartitionKeys(tensors, servers);
      uint64_t most = 0;
      uint64_t least = UINT64_MAX;
      for (const auto& ranges : owned) {
        most = std::max(most, CountKeys(ranges));
        least = std::min(least, CountKeys(ranges));
      }
      EXPECT_LE(most - least, tensors.size()) << "servers " << servers << ", most " << most << ", least " << least;
    }
  }
}

TEST(KeyRangeTest, OneServerOwnsEverything) {
  const std::vector<TensorInfo> tensors = Tensors({6, 1, 20});
  const auto owned = PartitionKeys(tensors, 1);
  ASSERT_EQ(owned.size(), 1u);
  ASSERT_EQ(owned[0].size(), 3u);
  EXPECT_EQ(owned[0][0], (KeyRange{0, 6}));
  EXPECT_EQ(owned[0][1], (KeyRange{6, 7}));
  EXPECT_EQ(owned[0][2], (KeyRange{7, 27}));
  EXPECT_EQ(CountKeys(owned[0]), 27u);
}

TEST(KeyRangeTest, TensorsSmallerThanServerCount) {
  // Two tensors of 2 and 1 keys over 5 servers: 3 keys, so at least two
  // servers own nothing, and no server gets an empty range.
  const std::vector<TensorInfo> tensors = Tensors({2, 1});
  const auto owned = PartitionKeys(tensors, 5);
  ASSERT_EQ(owned.size(), 5u);
  int idle = 0;
  uint64_t total = 0;
  for (const auto& ranges : owned) {
    if (ranges.empty()) ++idle;
    for (const KeyRange& r : ranges) {
      EXPECT_EQ(r.size(), 1u) << ToString(r);
      total += r.size();
    }
  }
  EXPECT_EQ(total, 3u);
  EXPECT_GE(idle, 2);
}

TEST(KeyRangeTest, FollowsTheDocumentedChunkFormula) {
  // Chunk j of a tensor of n keys is [offset + n*j/S, offset + n*(j+1)/S).
  TensorInfo t;
  t.offset = 100;
  t.size = 10;
  const auto owned = PartitionKeys({t}, 3);
  ASSERT_EQ(owned.size(), 3u);
  ASSERT_EQ(owned[0].size(), 1u);
  ASSERT_EQ(owned[1].size(), 1u);
  ASSERT_EQ(owned[2].size(), 1u);
  EXPECT_EQ(owned[0][0], (KeyRange{100, 103}));
  EXPECT_EQ(owned[1][0], (KeyRange{103, 106}));
  EXPECT_EQ(owned[2][0], (KeyRange{106, 110}));
}

TEST(KeyRangeTest, NoTensorsGivesEmptyOwnership) {
  const auto owned = PartitionKeys({}, 3);
  ASSERT_EQ(owned.size(), 3u);
  for (const auto& ranges : owned) EXPECT_TRUE(ranges.empty());
}

TEST(KeyRangeTest, KeyRangeBasics) {
  EXPECT_EQ((KeyRange{3, 7}).size(), 4u);
  EXPECT_TRUE((KeyRange{5, 5}).empty());
  EXPECT_TRUE((KeyRange{6, 5}).empty());
  EXPECT_FALSE((KeyRange{5, 6}).empty());
  EXPECT_EQ(ToString(KeyRange{3, 7}), "[3, 7)");
  EXPECT_EQ(CountKeys({}), 0u);
  EXPECT_EQ(CountKeys({{0, 3}, {10, 12}}), 5u);
  TensorInfo t;
  t.offset = 8;
  t.size = 4;
  EXPECT_EQ(t.range(), (KeyRange{8, 12}));
}

TEST(KeyRangeTest, ValidateRangesAcceptsSortedDisjointRanges) {
  EXPECT_OK(ValidateRanges({{0, 3}, {3, 5}, {9, 10}}, 10));
  EXPECT_OK(ValidateRanges({{0, 10}}, 10));
}

TEST(KeyRangeTest, ValidateRangesRejectsEmptyRange) {
  const Status s = ValidateRanges({{0, 3}, {4, 4}}, 10);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("[4, 4)"));
  EXPECT_THAT(s.message(), HasSubstr("empty"));
  EXPECT_EQ(ValidateRanges({{5, 2}}, 10).code(), StatusCode::kInvalidArgument);
}

TEST(KeyRangeTest, ValidateRangesRejectsOverlap) {
  const Status s = ValidateRanges({{0, 5}, {4, 8}}, 10);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("[4, 8)"));
}

TEST(KeyRangeTest, ValidateRangesRejectsOutOfOrder) {
  const Status s = ValidateRanges({{6, 8}, {0, 2}}, 10);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("[0, 2)"));
  // Out of order even when the later range is far from the earlier one.
  EXPECT_EQ(ValidateRanges({{0, 1}, {6, 8}, {2, 3}}, 10).code(), StatusCode::kInvalidArgument);
}

TEST(KeyRangeTest, ValidateRangesRejectsRangePastNumKeys) {
  const Status s = ValidateRanges({{0, 5}, {8, 11}}, 10);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("[8, 11)"));
  EXPECT_THAT(s.message(), HasSubstr("10"));
  EXPECT_EQ(ValidateRanges({{0, 1}}, 0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
