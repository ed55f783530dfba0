// LeaseBook: which shard a worker gets next in the current phase.
//
// Training under BSP: worker r trains on shards r, r+W, r+2W, ... of the
// epoch (a fixed assignment, so runs are reproducible and every worker runs
// the same number of steps). Under ASP: one queue, first come first served.
// Evaluation: the test set's shards, first come first served.
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
  // Starts epoch `epoch`'s training over n examples cut into num_shards shards.
  void StartTraining(int epoch, int64_t n, int num_shards, int workers, bool per_rank);
  // Starts an evaluation over n test examples cut into num_shards shards,
  // per rank as in training when per_rank, else first come first served.
  void StartTest(int epoch, int64_t n, int num_shards, int workers, bool per_rank);

  // The next lease for worker `rank`; shard -1 when none is left for it.
  proto::Lease Next(int rank);

  // BSP: the steps every worker runs this phase (the most any rank needs),
  // however many leases have gone out.
  int64_t StepsPerWorker(int batch) const;

 private:
  int epoch_ = 0;
  bool test_ = false;
  bool per_rank_ = false;
  std::vector<Shard> shards_;
  std::vector<std::deque<int>> queues_;  // per rank, or one shared queue
  std::vector<std::vector<int>> assigned_;  // the phase's whole assignment, per queue
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_LEASE_BOOK_H_
