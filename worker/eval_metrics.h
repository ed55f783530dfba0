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
  // example] (EvaluateBatch's). An example the metrics cannot take (a NaN or
  // infinite prediction of a model that diverged; a full accumulator) makes
  // them unusable: problem() says why, and no more are added. The
  // evaluation's loss still counts; only its metrics are lost.
  void AddBatch(const float* labels, const float* outputs, int64_t count);

  // OK, or why the metrics are unusable.
  const Status& problem() const { return problem_; }

  // Sets the task's field of *done (class_metrics, binary_metrics or
  // regression_metrics); leaves it unset when the metrics are unusable (the
  // scheduler then drops the evaluation's metrics, saying so).
  void Fill(proto::PhaseDone* done) const;

 private:
  // One example: its label and its outputs (num_classes_ of them, or one).
  Status Add(float label, const float* outputs);

  Task task_;
  int64_t num_classes_;
  std::optional<ClassificationMetrics> classes_;
  BinaryMetrics binary_;
  RegressionMetrics regression_;
  Status problem_;
};

}  // namespace tessera

#endif  // TESSERA_WORKER_EVAL_METRICS_H_
