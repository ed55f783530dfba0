#include "scheduler/lease_book.h"

#include <algorithm>
#include <numeric>

namespace tessera {
namespace {

std::vector<int> AllRanks(int workers) {
  std::vector<int> ranks(std::max(0, workers));
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

}  // namespace

void LeaseBook::StartTraining(int epoch, int64_t n, int num_shards, int workers, bool per_rank) {
  StartTraining(epoch, n, num_shards, AllRanks(workers), per_rank);
}

void LeaseBook::StartTraining(int epoch, int64_t n, int num_shards, const std::vector<int>& ranks, bool per_rank) {
  epoch_ = epoch;
  test_ = false;
  per_rank_ = per_rank;
  returned_.clear();
  returned_ids_.clear();
  std::vector<int> ids(num_shards);
  std::iota(ids.begin(), ids.end(), 0);
  Deal(CutShards(n, num_shards), std::move(ids), ranks);
}

void LeaseBook::StartTest(int epoch, int64_t n, int num_shards, int workers, bool per_rank) {
  StartTest(epoch, n, num_shards, AllRanks(workers), per_rank);
}

void LeaseBook::StartTest(int epoch, int64_t n, int num_shards, const std::vector<int>& ranks, bool per_rank) {
  StartTraining(epoch, n, num_shards, ranks, per_rank);
  test_ = true;
}

void LeaseBook::StartContinuation(const std::vector<int>& ranks) {
  if (ranks.empty()) return;  // nobody to deal to: the pieces stay handed back
  std::vector<Shard> pieces = std::move(returned_);
  std::vector<int> ids = std::move(returned_ids_);
  returned_.clear();
  returned_ids_.clear();
  Deal(std::move(pieces), std::move(ids), ranks);
}

void LeaseBook::Deal(std::vector<Shard> pieces, std::vector<int> ids, const std::vector<int>& ranks) {
  pieces_ = std::move(pieces);
  ids_ = std::move(ids);
  queues_.clear();
  assigned_.clear();
  given_.clear();
  const int most = ranks.empty() ? 0 : *std::max_element(ranks.begin(), ranks.end()) + 1;
  given_.resize(most);
  if (per_rank_) {
    queues_.resize(most);
    assigned_.resize(most);
    // Piece i to ranks[i mod L]: with ranks 0..W-1 this is ShardsOfRank.
    for (size_t i = 0; i < pieces_.size() && !ranks.empty(); ++i) {
      const int r = ranks[i % ranks.size()];
      queues_[r].push_back(static_cast<int>(i));
      assigned_[r].push_back(static_cast<int>(i));
    }
  } else {
    queues_.emplace_back();
    assigned_.emplace_back();
    for (size_t i = 0; i < pieces_.size(); ++i) {
      queues_[0].push_back(static_cast<int>(i));
      assigned_[0].push_back(static_cast<int>(i));
    }
  }
}

proto::Lease LeaseBook::Next(int rank) {
  proto::Lease lease;
  lease.set_epoch(epoch_);
  lease.set_test(test_);
  if (rank < 0) return lease;
  const size_t q = per_rank_ ? static_cast<size_t>(rank) : 0;
  if (q >= queues_.size() || queues_[q].empty()) return lease;  // shard -1: none left
  const int i = queues_[q].front();
  queues_[q].pop_front();
  if (static_cast<size_t>(rank) >= given_.size()) given_.resize(rank + 1);
  given_[rank].push_back(i);
  lease.set_shard(ids_[i]);
  lease.set_begin(pieces_[i].begin);
  lease.set_end(pieces_[i].end);
  return lease;
}

int64_t LeaseBook::StepsPerWorker(int batch) const {
  // From the phase's whole assignment, not what is still queued.
  int64_t most = 0;
  for (const std::vector<int>& assigned : assigned_) most = std::max(most, StepsForShards(pieces_, assigned, batch));
  return most;
}

int64_t LeaseBook::HandBack(int rank, int64_t steps, int batch) {
  if (rank < 0) return 0;
  int64_t used = 0;
  auto give_back = [&](int i, int64_t from) {
    if (from < pieces_[i].end) {
      returned_.push_back({from, pieces_[i].end});
      returned_ids_.push_back(ids_[i]);
    }
  };
  if (static_cast<size_t>(rank) < given_.size()) {
    for (int i : given_[rank]) {
      const Shard& p = pieces_[i];
      const int64_t need = (p.size() + batch - 1) / batch;
      const int64_t done = std::min(std::max<int64_t>(steps, 0), need);
      steps -= done;
      const int64_t reached = std::min(p.end, p.begin + done * batch);
      used += reached - p.begin;
      give_back(i, reached);
    }
    given_[rank].clear();
  }
  if (per_rank_ && static_cast<size_t>(rank) < queues_.size()) {
    for (int i : queues_[rank]) give_back(i, pieces_[i].begin);
    queues_[rank].clear();
  }
  return used;
}

int64_t LeaseBook::returned_examples() const {
  int64_t n = 0;
  for (const Shard& s : returned_) n += s.size();
  return n;
}

}  // namespace tessera
