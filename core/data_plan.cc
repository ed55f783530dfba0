#include "core/data_plan.h"

#include <glog/logging.h>

#include "core/random.h"

namespace tessera {

std::vector<int64_t> EpochOrder(uint64_t seed, int epoch, int64_t n) {
  return Permutation(n, MixSeed(seed, 0x5eed0f0da7aULL, static_cast<uint64_t>(epoch)));
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
