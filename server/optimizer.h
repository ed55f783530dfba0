// Optimizers, applied by the servers to their slices of the parameters.
// Each keeps its state (momentum, moments) in a buffer the caller owns, laid
// out beside the parameters, so it can be checkpointed with them.
// Elementwise only: splitting the keys differently gives bitwise-equal results.
// The learning rate of each step comes from an LrSchedule.
#ifndef TESSERA_SERVER_OPTIMIZER_H_
#define TESSERA_SERVER_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>

#include "core/status.h"
#include "proto/job.pb.h"
#include "server/lr_schedule.h"

namespace tessera {

// Immutable after construction; Apply may run on many threads at once (on
// disjoint parameters and state).
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // The learning rate of each step.
  const LrSchedule& schedule() const { return schedule_; }
  // Re-anchors the schedule (LrSchedule::WithStepOffset) between steps.
  void set_schedule_step_offset(int64_t offset) { schedule_ = schedule_.WithStepOffset(offset); }

  // Floats of state per parameter.
  virtual int state_per_param() const = 0;

  // One step on n parameters w with gradient g (already averaged over the
  // step's examples). `state` holds state_per_param() blocks of n floats,
  // zero at the start; block j starts at state + j * stride (stride >= n),
  // so a caller can step a chunk of a larger slice in place. `step` counts
  // from 1 (a slice's version + 1) and picks the learning rate.
  void Apply(int64_t step, float* w, const float* g, float* state, size_t n, size_t stride) const {
    ApplyFrom(step, w, state, stride, w, g, state, n, stride);
  }

  // Apply out of place: reads the parameters and state from w_old and
  // state_old (blocks at old_stride) and writes the stepped ones to w and
  // state, leaving the old ones as they were (a checkpoint's snapshot holds
  // them). The same bits as Apply. In place when w_old == w and
  // state_old == state; otherwise they must not overlap, and w and state may
  // be written with streaming (non-temporal) stores, which this thread reads
  // back as usual but which are weakly ordered for other threads: call
  // FenceStores() once the outputs are complete, before they are published
  // (KvShard fences once per slice: a fence per call, on the 8 KB chunks it
  // used to pass, made the step after a snapshot a tenth of a step slower).
  virtual void ApplyFrom(int64_t step, const float* w_old, const float* state_old, size_t old_stride, float* w,
                         const float* g, float* state, size_t n, size_t stride) const = 0;

  // ApplyFrom on a whole slice (state blocks at stride n on both sides, the
  // outputs not overlapping the inputs), with the gradient given as KvShard
  // averages a step's pushes: the sum of `gradients` (n floats each, added in
  // the order given to the first) times `scale`. The same bits as computing
  // that mean first and calling ApplyFrom. The default does just that, a
  // chunk at a time; SGD with momentum fuses the mean into its one streaming
  // pass over memory (the separate pass over a chunk's mean made the step
  // after a snapshot about a tenth of a step slower than an in-place one).
  // Streaming stores as ApplyFrom's: FenceStores() before publishing.
  virtual void ApplyMeanFrom(int64_t step, const float* w_old, const float* state_old,
                             std::span<const float* const> gradients, float scale, float* w, float* state,
                             size_t n) const;

  // Orders this thread's earlier streaming stores (ApplyFrom) before its
  // later stores, so whoever it publishes the outputs to sees them.
  static void FenceStores();

  // Apply with the state blocks back to back (stride n).
  void Apply(int64_t step, float* w, const float* g, float* state, size_t n) const {
    Apply(step, w, g, state, n, n);
  }

 protected:
  explicit Optimizer(LrSchedule schedule) : schedule_(std::move(schedule)) {}

  LrSchedule schedule_;
};

// InvalidArgument for an unknown type or a bad hyperparameter, or a schedule
// that needs what `clock` lacks (see LrSchedule::Create). The default clock
// serves a CONSTANT schedule without warm-up.
StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const proto::OptimizerSpec& spec,
                                                     const ScheduleClock& clock = {});

}  // namespace tessera

#endif  // TESSERA_SERVER_OPTIMIZER_H_
