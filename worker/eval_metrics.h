// The metrics one worker accumulates over the examples it evaluates in a
// phase, of its model's task (core/task.h): the confusion counts of a
// multi-class task, the (label, probability) pairs of a binary one, the
// (target, prediction) pairs of a regression (core/task_metrics.h). They go
// to the scheduler in PHASE_DONE, which merges every worker's in rank order.
// Value type; thread-compatible.
#ifndef TESSERA_WORKER_EVAL_METRICS_H_
#define TESSERA_WORKER_EVAL_METRICS_H_

#include <cstdint>
#include <optional>

#include "core/status.h"
#include "core/task.h"
#include "core/task_metrics.h"
#include "proto/wire.pb.h"

namespace tessera {

class EvalMetrics {
 public:
  // REQUIRES: num_classes >= 1 for a multi-class task.
  EvalMetrics(Task task, int64_t num_classes);

  // One batch: labels[count] and the model's outputs[count * outputs per
  // example] (EvaluateBatch's). InvalidArgument for a label the task cannot
  // take or an output it cannot score (a NaN prediction); OutOfRange when full.
  Status AddBatch(const float* labels, const float* outputs, int64_t count);

  // Sets the task's field of *done (class_metrics, binary_metrics or
  // regression_metrics).
  void Fill(proto::PhaseDone* done) const;

 private:
  Task task_;
  int64_t num_classes_;
  std::optional<ClassificationMetrics> classes_;
  BinaryMetrics binary_;
  RegressionMetrics regression_;
};

}  // namespace tessera

#endif  // TESSERA_WORKER_EVAL_METRICS_H_
