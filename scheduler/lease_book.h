// LeaseBook: which shard a worker gets next in the current phase, what each
// worker has been given, and what goes back to the queue when a worker is lost.
//
// Training under BSP: the taking-part ranks r0 < r1 < ... < r(L-1) get shard
// i in turn (shard i to rank r(i mod L)); with every rank of the job taking
// part, worker r trains on shards r, r+W, r+2W, ... of the epoch (a fixed
// assignment, so runs are reproducible and every worker runs the same number
// of steps). Under ASP: one queue, first come first served. Evaluation: the
// test set's shards, the same two ways.
//
// A lost worker's leases are handed back from the position it reached: the
// examples of its first `steps` batches are used, the rest of its leased
// shards and every shard still queued for it become pieces (position ranges)
// of a continuation phase, which StartContinuation deals out to the workers
// left. So every position of the phase is used exactly once.
//
// Not thread-safe.
#ifndef TESSERA_SCHEDULER_LEASE_BOOK_H_
#define TESSERA_SCHEDULER_LEASE_BOOK_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "core/data_plan.h"
#include "proto/wire.pb.h"

namespace tessera {

class LeaseBook {
 public:
  // Starts epoch `epoch`'s training over n examples cut into num_shards
  // shards, for worker ranks 0 .. workers-1.
  void StartTraining(int epoch, int64_t n, int num_shards, int workers, bool per_rank);
  // The same for the ranks `ranks` (sorted, distinct, non-negative) only.
  void StartTraining(int epoch, int64_t n, int num_shards, const std::vector<int>& ranks, bool per_rank);
  // Starts an evaluation over n test examples cut into num_shards shards,
  // per rank as in training when per_rank, else first come first served.
  void StartTest(int epoch, int64_t n, int num_shards, int workers, bool per_rank);
  void StartTest(int epoch, int64_t n, int num_shards, const std::vector<int>& ranks, bool per_rank);

  // A continuation of the current phase (same epoch, training or test): the
  // pieces handed back so far, dealt to `ranks` in turn (per rank) or queued
  // (first come first served). Clears what was handed back.
  void StartContinuation(const std::vector<int>& ranks);

  // The next lease for worker `rank`; shard -1 when none is left for it.
  proto::Lease Next(int rank);

  // BSP: the steps every worker runs this phase (the most any rank needs),
  // however many leases have gone out.
  int64_t StepsPerWorker(int batch) const;

  // Worker `rank` is lost after `steps` steps of this phase at `batch`
  // examples a step (batches never span two leases; an empty lease takes no
  // step). Returns the examples of those steps (used); the rest of its
  // leases and its queued shards are handed back. Its queue empties.
  int64_t HandBack(int rank, int64_t steps, int batch);

  // Positions handed back and not yet dealt out again.
  int64_t returned_examples() const;
  bool has_returned() const { return returned_examples() > 0; }

  int epoch() const { return epoch_; }
  bool test() const { return test_; }

 private:
  void Deal(std::vector<Shard> pieces, std::vector<int> ids, const std::vector<int>& ranks);

  int epoch_ = 0;
  bool test_ = false;
  bool per_rank_ = false;
  // The phase's pieces (whole shards, or what a lost worker handed back) and their shard ids.
  std::vector<Shard> pieces_;
  std::vector<int> ids_;
  std::vector<std::deque<int>> queues_;     // per rank, or one shared queue; indices into pieces_
  std::vector<std::vector<int>> assigned_;  // the phase's whole assignment, per queue
  std::vector<std::vector<int>> given_;     // per rank: what it has leased, in order
  std::vector<Shard> returned_;
  std::vector<int> returned_ids_;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_LEASE_BOOK_H_
