// The figures of one evaluation as the scheduler adds them up: the mean loss
// and the fraction classified right over every worker's examples, and the
// exact metrics of the job's task (core/task_metrics.h) when every worker
// sent its part of them. A value type.
#ifndef TESSERA_SCHEDULER_EVAL_FIGURES_H_
#define TESSERA_SCHEDULER_EVAL_FIGURES_H_

#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/task_metrics.h"

namespace tessera {

struct EvalFigures {
  double loss = 0;
  double accuracy = 0;  // multi-class: argmax; binary: p > 0.5; regression: 0
  // The task's metrics; at most one is set.
  std::optional<ClassificationResult> classification;
  std::optional<BinaryResult> binary;
  std::optional<RegressionResult> regression;
};

// Adds the task's metrics to *out as an object named "classification",
// "binary" or "regression" (core/task_metrics.h's AddJsonFields); nothing
// when none is set. class_names must name the classes (checked by PlanJob).
void AddTaskMetricsJson(const EvalFigures& figures, const std::vector<std::string>& class_names, JsonObject* out);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_EVAL_FIGURES_H_
