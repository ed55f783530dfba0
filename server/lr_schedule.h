// The learning rate of each update, from the global step: a schedule
// (constant, step, cosine) times a linear warm-up, as OptimizerSpec documents.
// A pure function of the step, computed in double and rounded to float, so
// every server gives every slice the same rate at the same step and BSP runs
// stay bitwise reproducible.
#ifndef TESSERA_SERVER_LR_SCHEDULE_H_
#define TESSERA_SERVER_LR_SCHEDULE_H_

#include <cstdint>
#include <string>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

// Where the servers' steps sit in the job (from the cluster map).
struct ScheduleClock {
  // Updates per epoch as slices count them: global steps (BSP), pushes summed
  // over workers (ASP). 0: unknown, which only a CONSTANT schedule without
  // warm-up accepts.
  int64_t steps_per_epoch = 0;
  // Epochs of the job; the schedule spans epochs * steps_per_epoch updates.
  int64_t epochs = 0;
  // Added to a step before the schedule reads it (a resume that changed
  // steps_per_epoch). Default 0.
  int64_t step_offset = 0;
};

// Immutable after construction; thread-safe.
class LrSchedule {
 public:
  // InvalidArgument for a bad spec (ValidateOptimizerSpec) or when the
  // schedule needs steps_per_epoch or epochs and `clock` lacks them.
  static StatusOr<LrSchedule> Create(const proto::OptimizerSpec& spec, const ScheduleClock& clock);

  // The rate of update `step` (1-based: the slice's version + 1), i.e.
  // update t = step - 1 + step_offset of the job. Steps past the end of the
  // job keep the last update's rate; steps before the first, the first's.
  float At(int64_t step) const;

  // The same, before rounding to float.
  double AtDouble(int64_t step) const;

  // The same schedule with another step offset (ScheduleClock::step_offset):
  // the scheduler re-anchors it at an epoch start after a lost worker made
  // an epoch longer than steps_per_epoch.
  LrSchedule WithStepOffset(int64_t offset) const {
    LrSchedule s = *this;
    s.offset_ = offset;
    return s;
  }
  int64_t step_offset() const { return offset_; }

  // True when every step gets learning_rate (CONSTANT, no warm-up).
  bool constant() const { return constant_; }

  // The schedule in words, for the log: "COSINE from 0.1 to 0 over 48
  // steps (24 per epoch), warm-up 12 steps".
  std::string ToString() const;

 private:
  LrSchedule() = default;

  proto::OptimizerSpec::Schedule schedule_ = proto::OptimizerSpec::CONSTANT;
  bool constant_ = true;
  double lr_ = 0, min_lr_ = 0, gamma_ = 1;
  int64_t offset_ = 0;
  int64_t per_epoch_ = 0;
  int64_t total_ = 0;        // T: updates in the job
  int64_t warmup_ = 0;       // W: warm-up updates
  int64_t decay_every_ = 0;  // STEP: updates between decays
};

}  // namespace tessera

#endif  // TESSERA_SERVER_LR_SCHEDULE_H_
