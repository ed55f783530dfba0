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

// The order of an epoch of a streamed data set (CSV/TSV tables): its blocks
// (runs of consecutive records, in file order) in a permutation seeded by
// (seed, epoch), and each block's records in a permutation seeded by (seed,
// epoch, block). Consecutive positions thus lie in few blocks, so a worker
// reads only the blocks of its shards, one at a time. Holds O(blocks)
// numbers, plus one block's permutation.
class BlockedOrder {
 public:
  // block_sizes: records per block, in file order; each >= 1.
  BlockedOrder(uint64_t seed, int epoch, const std::vector<int64_t>& block_sizes);

  int64_t size() const { return slot_start_.back(); }

  // The record (its index in file order) at `position` in [0, size()).
  // Not thread-safe: it keeps the permutation of the last block it used.
  int64_t RecordAt(int64_t position) const;

 private:
  uint64_t epoch_seed_;
  std::vector<int64_t> block_first_;  // by block: its first record
  std::vector<int64_t> slot_block_;   // by slot of the epoch: the block there
  std::vector<int64_t> slot_start_;   // by slot: its first position; then size()
  mutable int64_t cached_block_ = -1;
  mutable std::vector<int64_t> cached_permutation_;
};

// The validation split (data.validation_fraction) of n training examples:
// how many it holds out, round(fraction * n).
int64_t ValidationCount(double fraction, int64_t n);

// The examples (indexes in file order, each list ascending) of the training
// and the validation set when `held_out` of n examples are held out by
// `seed` (IDX data): the first `held_out` of a permutation seeded by the job
// seed alone, so the choice is the same in every epoch and after a resume.
// The training set's epochs then shuffle positions 0..training.size()-1
// (EpochOrder), each standing for training[position].
// REQUIRES: 0 <= held_out <= n.
struct HeldOutSplit {
  std::vector<int64_t> training, validation;
};
HeldOutSplit HoldOut(uint64_t seed, int64_t n, int64_t held_out);

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
