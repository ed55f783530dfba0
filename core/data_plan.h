// The data plan: which examples each shard holds in each epoch. A pure
// function of (seed, epoch, dataset size, shard count), so the scheduler
// (which leases shard ids) and the workers (which read the examples) agree
// without the scheduler ever sending examples, and a single-process reference
// can replay the same order.
#ifndef TESSERA_CORE_DATA_PLAN_H_
#define TESSERA_CORE_DATA_PLAN_H_

#include <cstdint>
#include <vector>

namespace tessera {

// Positions [begin, end) in an epoch's order.
struct Shard {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// The order in which epoch `epoch` visits the `n` training examples:
// a permutation seeded by (seed, epoch).
std::vector<int64_t> EpochOrder(uint64_t seed, int epoch, int64_t n);

// Cuts n positions into `num_shards` contiguous shards whose sizes differ by
// at most one. REQUIRES: num_shards >= 1.
std::vector<Shard> CutShards(int64_t n, int num_shards);

// Under BSP, worker `rank` of `workers` trains on shards rank, rank+W, ...
// in that order. Returns those shard indices.
std::vector<int> ShardsOfRank(int num_shards, int workers, int rank);

// Steps a worker needs for `shards` at `batch` examples per step, batches
// never spanning two shards.
int64_t StepsForShards(const std::vector<Shard>& shards, const std::vector<int>& indices, int batch);

}  // namespace tessera

#endif  // TESSERA_CORE_DATA_PLAN_H_
