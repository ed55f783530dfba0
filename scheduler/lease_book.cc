#include "scheduler/lease_book.h"

#include <algorithm>

namespace tessera {

void LeaseBook::StartTraining(int epoch, int64_t n, int num_shards, int workers, bool per_rank) {
  epoch_ = epoch;
  test_ = false;
  per_rank_ = per_rank;
  shards_ = CutShards(n, num_shards);
  queues_.clear();
  assigned_.clear();
  if (per_rank) {
    for (int r = 0; r < workers; ++r) {
      std::vector<int> mine = ShardsOfRank(num_shards, workers, r);
      queues_.emplace_back(mine.begin(), mine.end());
      assigned_.push_back(std::move(mine));
    }
  } else {
    queues_.emplace_back();
    assigned_.emplace_back();
    for (int s = 0; s < num_shards; ++s) {
      queues_[0].push_back(s);
      assigned_[0].push_back(s);
    }
  }
}

void LeaseBook::StartTest(int epoch, int64_t n, int num_shards, int workers, bool per_rank) {
  StartTraining(epoch, n, num_shards, workers, per_rank);
  test_ = true;
}

proto::Lease LeaseBook::Next(int rank) {
  proto::Lease lease;
  lease.set_epoch(epoch_);
  lease.set_test(test_);
  const size_t q = per_rank_ ? static_cast<size_t>(rank) : 0;
  if (q >= queues_.size() || queues_[q].empty()) return lease;  // shard -1: none left
  const int s = queues_[q].front();
  queues_[q].pop_front();
  lease.set_shard(s);
  lease.set_begin(shards_[s].begin);
  lease.set_end(shards_[s].end);
  return lease;
}

int64_t LeaseBook::StepsPerWorker(int batch) const {
  // From the phase's whole assignment, not what is still queued.
  int64_t most = 0;
  for (const std::vector<int>& assigned : assigned_) most = std::max(most, StepsForShards(shards_, assigned, batch));
  return most;
}

}  // namespace tessera
