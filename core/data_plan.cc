#include "core/data_plan.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

#include "core/random.h"

namespace tessera {

std::vector<int64_t> EpochOrder(uint64_t seed, int epoch, int64_t n) {
  return Permutation(n, MixSeed(seed, 0x5eed0f0da7aULL, static_cast<uint64_t>(epoch)));
}

BlockedOrder::BlockedOrder(uint64_t seed, int epoch, const std::vector<int64_t>& block_sizes)
    : epoch_seed_(MixSeed(seed, 0xb10c0da7aULL, static_cast<uint64_t>(epoch))) {
  const int64_t blocks = static_cast<int64_t>(block_sizes.size());
  int64_t first = 0;
  for (int64_t size : block_sizes) {
    CHECK_GE(size, 1);
    block_first_.push_back(first);
    first += size;
  }
  block_first_.push_back(first);
  slot_block_ = Permutation(blocks, epoch_seed_);
  slot_start_.push_back(0);
  for (int64_t block : slot_block_) slot_start_.push_back(slot_start_.back() + block_sizes[block]);
}

int64_t BlockedOrder::RecordAt(int64_t position) const {
  CHECK(position >= 0 && position < size()) << position;
  const int64_t slot = std::upper_bound(slot_start_.begin(), slot_start_.end(), position) - slot_start_.begin() - 1;
  const int64_t block = slot_block_[slot];
  if (block != cached_block_) {
    cached_permutation_ = Permutation(block_first_[block + 1] - block_first_[block],
                                      MixSeed(epoch_seed_, static_cast<uint64_t>(block)));
    cached_block_ = block;
  }
  return block_first_[block] + cached_permutation_[position - slot_start_[slot]];
}

int64_t ValidationCount(double fraction, int64_t n) { return std::llround(fraction * static_cast<double>(n)); }

HeldOutSplit HoldOut(uint64_t seed, int64_t n, int64_t held_out) {
  CHECK(held_out >= 0 && held_out <= n) << held_out << " of " << n;
  std::vector<bool> validation(n, false);
  const std::vector<int64_t> order = Permutation(n, MixSeed(seed, 0x5a11da7e0ULL));
  for (int64_t i = 0; i < held_out; ++i) validation[order[i]] = true;
  HeldOutSplit split;
  split.training.reserve(n - held_out);
  split.validation.reserve(held_out);
  for (int64_t e = 0; e < n; ++e) (validation[e] ? split.validation : split.training).push_back(e);
  return split;
}

std::vector<Shard> CutShards(int64_t n, int num_shards) {
  CHECK_GE(num_shards, 1);
  std::vector<Shard> shards(num_shards);
  for (int i = 0; i < num_shards; ++i) {
    shards[i].begin = n * i / num_shards;
    shards[i].end = n * (i + 1) / num_shards;
  }
  return shards;
}

std::vector<int> ShardsOfRank(int num_shards, int workers, int rank) {
  std::vector<int> mine;
  for (int s = rank; s < num_shards; s += workers) mine.push_back(s);
  return mine;
}

int64_t StepsForShards(const std::vector<Shard>& shards, const std::vector<int>& indices, int batch) {
  int64_t steps = 0;
  for (int i : indices) steps += (shards[i].size() + batch - 1) / batch;
  return steps;
}

}  // namespace tessera
