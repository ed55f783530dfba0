// The best epoch by a validation metric, and the early-stopping rule
// (JobSpec.early_stopping). Every evaluation of the validation set is one
// Observe: the first value (not NaN), and after it any value that beats the
// best by more than min_delta in the metric's direction (loss, log loss,
// RMSE, MAE: lower; accuracy, macro F1, AUC: higher), makes its epoch the best; any other adds one
// to the evaluations without improvement. With patience >= 1 the job stops
// once that count reaches patience. A NaN never improves.
//
// Its state (BestSoFar) is a few numbers that each metrics.jsonl line of a
// validation evaluation records, so a resumed job restores it
// (ReadJobHistory) and decides as a job that never stopped would.
// A value type; not thread-safe.
#ifndef TESSERA_SCHEDULER_EARLY_STOPPING_H_
#define TESSERA_SCHEDULER_EARLY_STOPPING_H_

#include <cstdint>
#include <optional>
#include <string>

#include "proto/job.pb.h"
#include "scheduler/eval_figures.h"

namespace tessera {

struct BestSoFar {
  int epoch = -1;    // the best epoch (0-based); -1: none yet
  int64_t step = 0;  // the global step at its end: the checkpoint cut there
  double value = 0;  // its metric
  // Evaluations since the best that did not improve on it.
  int evaluations_without_improvement = 0;
};

class EarlyStopping {
 public:
  explicit EarlyStopping(const proto::EarlyStoppingSpec& spec);

  // "validation_loss", "validation_accuracy", "validation_macro_f1",
  // "validation_auc", "validation_log_loss", "validation_rmse" or
  // "validation_mae".
  std::string metric_name() const;
  // Lower values are better (loss, log loss, RMSE, MAE).
  bool lower_is_better() const;
  // The metric's value among an evaluation's figures (NaN for a macro F1
  // that is unknown: some worker's class counts were unusable).
  double MetricOf(double loss, double accuracy, std::optional<double> macro_f1) const;
  // The same of all an evaluation's figures: NaN for a task metric that is
  // unknown (some worker's part was unusable, an AUC of one class only).
  double MetricOf(const EvalFigures& figures) const;

  // The evaluation after epoch `epoch` (0-based), at global step `step`,
  // scored `value`. True when it is the new best.
  bool Observe(int epoch, int64_t step, double value);
  // Patience is set and used up: the job stops.
  bool ShouldStop() const;

  bool has_best() const { return best_.epoch >= 0; }
  const BestSoFar& best() const { return best_; }
  // A resumed job goes on from the state an earlier run recorded.
  void Restore(const BestSoFar& state) { best_ = state; }

 private:
  // `value` beats the best by more than min_delta.
  bool Beats(double value) const;

  proto::EarlyStoppingSpec spec_;
  BestSoFar best_;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_EARLY_STOPPING_H_
