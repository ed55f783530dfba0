// The phase a job goes on with once nothing holds it back: held as data by
// the scheduler and the checkpoint coordinator, never as a stored continuation.
#ifndef TESSERA_SCHEDULER_NEXT_PHASE_H_
#define TESSERA_SCHEDULER_NEXT_PHASE_H_

#include <cstdint>

namespace tessera {

struct NextPhase {
  enum class Kind { kTraining, kEvaluation, kContinuation };
  Kind kind = Kind::kTraining;
  int epoch = 0;           // training, evaluation
  int64_t skip_steps = 0;  // training resumed inside the epoch: its steps done before
  int part = 0;            // a continuation over the positions lost workers left
  bool validation = false;  // an evaluation of the validation set (else of the test set)
  static NextPhase Training(int epoch, int64_t skip_steps = 0) { return {Kind::kTraining, epoch, skip_steps, 0}; }
  static NextPhase Evaluation(int epoch) { return {Kind::kEvaluation, epoch, 0, 0}; }
  static NextPhase Validation(int epoch) { return {Kind::kEvaluation, epoch, 0, 0, true}; }
  static NextPhase Continuation(int part) { return {Kind::kContinuation, 0, 0, part}; }
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_NEXT_PHASE_H_
