// BatchPrefetcher serves exactly what BatchReader reads, whatever the order of
// requests, and serves a shard's batches in sequence from its thread. (Table
// readers under it: table_data_test.)
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "worker/batch_prefetcher.h"
#include "worker/batch_reader.h"

namespace tessera {
namespace {

ImageDataset SmallDataset(int64_t count) {
  ImageDataset d;
  d.count = count;
  d.rows = 3;
  d.cols = 2;
  d.pixels.resize(count * 6);
  for (size_t i = 0; i < d.pixels.size(); ++i) d.pixels[i] = static_cast<uint8_t>(i * 7 + 3);
  d.labels.resize(count);
  for (int64_t i = 0; i < count; ++i) d.labels[i] = static_cast<uint8_t>(i % 10);
  return d;
}

void ExpectSameAsReader(const ImageDataset& d, BatchPrefetcher& prefetcher, const std::vector<int64_t>& order,
                        int64_t begin, int64_t count, int64_t limit) {
  BatchReader reader(&d, 0.25f, 0.5f);
  std::vector<float> want_x, x;
  std::vector<float> want_labels, labels;
  reader.Read(order, begin, count, &want_x, &want_labels);
  ASSERT_TRUE(prefetcher.Read(ExampleOrder::Shuffled(order), begin, count, limit, &x, &labels).ok());
  EXPECT_EQ(x, want_x) << "begin " << begin << " count " << count;
  EXPECT_EQ(labels, want_labels) << "begin " << begin << " count " << count;
}

TEST(BatchPrefetcherTest, ShardInSequenceIsServedFromPrefetchedBatches) {
  const ImageDataset d = SmallDataset(100);
  std::vector<int64_t> order(100);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  ImageExampleReader examples(d, 0.25f, 0.5f);
  BatchPrefetcher prefetcher(&examples);
  // Shard [10, 47) in batches of 8: the last one is 5 long.
  for (int64_t p = 10; p < 47; p += 8) ExpectSameAsReader(d, prefetcher, order, p, std::min<int64_t>(8, 47 - p), 47);
  EXPECT_EQ(prefetcher.misses(), 1);  // only the first
  EXPECT_EQ(prefetcher.hits(), 4);
}

TEST(BatchPrefetcherTest, AnyOtherRequestIsReadOnTheSpot) {
  const ImageDataset d = SmallDataset(60);
  std::vector<int64_t> order(60);
  std::iota(order.begin(), order.end(), 0);
  ImageExampleReader examples(d, 0.25f, 0.5f);
  BatchPrefetcher prefetcher(&examples);
  ExpectSameAsReader(d, prefetcher, order, 0, 10, 60);
  // A new epoch's order in the same vector: the guess (positions 10..19 of
  // the old order) must not be served for positions 10..19 of the new one.
  std::reverse(order.begin(), order.end());
  ExpectSameAsReader(d, prefetcher, order, 10, 10, 60);
  EXPECT_EQ(prefetcher.hits(), 0);
  // A jump, a different count, the identity order.
  ExpectSameAsReader(d, prefetcher, order, 40, 10, 60);
  ExpectSameAsReader(d, prefetcher, order, 50, 4, 60);
  ExpectSameAsReader(d, prefetcher, {}, 5, 6, 60);
  ExpectSameAsReader(d, prefetcher, {}, 11, 6, 60);
  EXPECT_EQ(prefetcher.hits(), 1);  // the identity order's second batch
}

TEST(BatchPrefetcherTest, RandomRequestsMatchTheReader) {
  const ImageDataset d = SmallDataset(200);
  std::vector<int64_t> order(200);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(5);
  std::shuffle(order.begin(), order.end(), rng);
  ImageExampleReader examples(d, 0.25f, 0.5f);
  BatchPrefetcher prefetcher(&examples);
  int64_t position = 0, count = 4;
  for (int i = 0; i < 300; ++i) {
    if (rng() % 4 == 0) {  // mostly sequential, sometimes a jump to another batch size
      position = rng() % 190;
      count = 1 + rng() % 8;
    }
    const int64_t limit = std::min<int64_t>(200, position + count + rng() % 20);
    ExpectSameAsReader(d, prefetcher, order, position, count, limit);
    position = position + count >= 190 ? 0 : position + count;
  }
  EXPECT_GT(prefetcher.hits(), 50);
  EXPECT_EQ(prefetcher.hits() + prefetcher.misses(), 300);
}

}  // namespace
}  // namespace tessera
