// The task a job learns, as its loss names it (proto::Loss): multi-class
// classification, binary classification or regression. The task decides the
// last layer's outputs, what a label may be, and which metrics evaluation
// computes (core/task_metrics.h). model.loss AUTO is resolved once, by the
// scheduler and the launcher (scheduler/job_task.h); everything after them
// sees a concrete loss.
#ifndef TESSERA_CORE_TASK_H_
#define TESSERA_CORE_TASK_H_

#include <cstdint>

#include "proto/job.pb.h"

namespace tessera {

enum class Task { kMultiClass, kBinary, kRegression };

// The task of a loss. AUTO counts as multi-class: what it means for IDX
// data and image folders, the only data left unresolved by then.
Task TaskOfLoss(proto::Loss loss);

// "multi-class classification", "binary classification" or "regression".
const char* TaskName(Task task);

// The last layer's outputs the task needs: num_classes, or 1.
int64_t TaskOutputs(Task task, int64_t num_classes);

}  // namespace tessera

#endif  // TESSERA_CORE_TASK_H_
