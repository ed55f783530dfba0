// The task a job learns (core/task.h): the loss its spec names, or, with
// model.loss AUTO, the one its data and model imply. The launcher and the
// scheduler both resolve it before anything trains and say which in one
// line; the cluster map then carries a spec whose loss is concrete, so no
// other node infers anything.
//
// AUTO, by the data:
//   IDX and image folders              multi-class (their labels are classes)
//   a table, last layer != 1 output    multi-class (labels read as class ids)
//   a table, one output, labels 0/1    binary
//   a table, one output, some label
//     not an integer                   regression
//   anything else                      InvalidArgument: set model.loss
#ifndef TESSERA_SCHEDULER_JOB_TASK_H_
#define TESSERA_SCHEDULER_JOB_TASK_H_

#include <string>

#include "core/status.h"
#include "core/task.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

struct JobTask {
  proto::Loss loss = proto::SOFTMAX_CROSS_ENTROPY;  // never AUTO
  // For the run's log and console: "task: binary classification (inferred
  // from the label column 'y': values 0 and 1, and one output)".
  std::string description;
};

// The rule a table's labels are read by (table_data.h), decided before any
// record is read: the task's when model.loss names one; with AUTO, class
// ids unless the last layer has one output (then any number, and the task
// follows from what they are: ChooseTask). Reads the first training file's
// header to build the model's layers. InvalidArgument for a model that does
// not fit the features; the reader's errors for the file.
StatusOr<proto::TableLabels::Kind> TableLabelKind(const proto::JobSpec& spec);

// The job's task once its data has been described: `table` is the
// TableData of a CSV/TSV data set (nullptr for IDX and image folders),
// `num_classes` the data's. InvalidArgument, one line, when AUTO cannot
// tell (saying to set model.loss), when binary or regression is asked of
// IDX or image-folder data, when early_stopping.metric does not belong to
// the task, or when data.table.num_classes is set for a regression (or to
// other than 2 for a binary task).
StatusOr<JobTask> ChooseTask(const proto::JobSpec& spec, const proto::TableData* table, int num_classes);

// `spec` with model.loss set to `task.loss`.
proto::JobSpec WithTask(const proto::JobSpec& spec, const JobTask& task);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_JOB_TASK_H_
