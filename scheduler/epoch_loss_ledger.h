// The training loss of the running BSP epoch, step by step and worker by
// worker, as the workers' PROGRESS reports give it (each step's loss sum and
// examples, in step order). A checkpoint cut inside the epoch keeps every
// worker's sums over the steps before the cut in its manifest; a job resumed
// from it gives each worker its own sum to go on from, so the epoch's
// train_loss adds up the same numbers in the same order as a job that never
// stopped, and comes out the same to the last bit.
//
// A worker sums its steps' losses in step order into one double; the
// ledger repeats the same additions in the same order, so its sum at any
// step is the worker's, bit for bit.
//
// Holds every step of the epoch (16 bytes per step and worker): a cut may
// land at any step ahead of the workers, and a cut a server refused moves
// further ahead, so which steps are needed is known only once it is taken.
// Not thread-safe: the scheduler's event loop owns it.
#ifndef TESSERA_SCHEDULER_EPOCH_LOSS_LEDGER_H_
#define TESSERA_SCHEDULER_EPOCH_LOSS_LEDGER_H_

#include <cstdint>
#include <vector>

#include "proto/wire.pb.h"

namespace tessera {

// A worker's training loss over some steps: the sum of its examples' losses
// and their count.
struct LossSums {
  double loss_sum = 0;
  int64_t examples = 0;

  friend bool operator==(const LossSums&, const LossSums&) = default;
};

class EpochLossLedger {
 public:
  // What At() knows about a step.
  enum class State {
    kKnown,       // every worker has reported past it: `ranks` holds their sums
    kPending,     // some worker has not reported that far yet
    kUnknowable,  // never: another epoch, a step before the ledger's start, or a worker's reports broke off
  };
  struct SumsAt {
    State state = State::kUnknowable;
    std::vector<LossSums> ranks;  // kKnown: by worker rank
  };

  // A training epoch's first part begins: from global step `from_step`,
  // worker rank r's sums start at `start[r]` (zeros for a fresh epoch; a
  // resumed one starts after the steps its checkpoint holds, from their sums).
  void Begin(int epoch, int64_t from_step, std::vector<LossSums> start);
  // Nothing is tracked any more (a continuation part or an evaluation runs;
  // no cut comes inside an epoch that lost a worker).
  void Stop();
  // A PROGRESS from worker `rank` in the epoch. Its steps must continue where
  // that rank's last report ended; a report that does not (or whose lists
  // differ in length) is dropped and that rank's sums are unknowable from then on.
  void Report(int rank, const proto::Progress& progress);
  // Every worker's sums over the steps of epoch `epoch` before global step
  // `step`, from the ledger's start.
  SumsAt At(int epoch, int64_t step) const;

 private:
  struct Rank {
    std::vector<LossSums> after;  // after[i]: the sums once steps [from_step, from_step + i) are done
    bool broken = false;
  };

  bool tracking_ = false;
  int epoch_ = -1;
  int64_t from_step_ = 0;
  std::vector<Rank> ranks_;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_EPOCH_LOSS_LEDGER_H_
