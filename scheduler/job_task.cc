#include "scheduler/job_task.h"

#include <cstdio>

#include "core/table_data.h"
#include "models/model.h"

namespace tessera {
namespace {

using Metric = proto::EarlyStoppingSpec::Metric;

// The label rule each loss reads a table's labels by.
proto::TableLabels::Kind KindOfLoss(proto::Loss loss) {
  switch (loss) {
    case proto::SIGMOID_BINARY_CROSS_ENTROPY: return proto::TableLabels::BINARY;
    case proto::MEAN_SQUARED_ERROR: return proto::TableLabels::NUMBER;
    default: return proto::TableLabels::CLASS_ID;
  }
}

// A label value for a message: integers without a fraction, others as %g.
std::string ValueText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// The metrics early stopping may watch for each task (VALIDATION_LOSS: any).
Status CheckEarlyStoppingMetric(const proto::JobSpec& spec, Task task) {
  const Metric metric = spec.early_stopping().metric();
  bool fits = true;
  switch (metric) {
    case proto::EarlyStoppingSpec::VALIDATION_LOSS: break;
    case proto::EarlyStoppingSpec::VALIDATION_ACCURACY: fits = task != Task::kRegression; break;
    case proto::EarlyStoppingSpec::VALIDATION_MACRO_F1: fits = task == Task::kMultiClass; break;
    case proto::EarlyStoppingSpec::VALIDATION_AUC:
    case proto::EarlyStoppingSpec::VALIDATION_LOG_LOSS: fits = task == Task::kBinary; break;
    case proto::EarlyStoppingSpec::VALIDATION_RMSE:
    case proto::EarlyStoppingSpec::VALIDATION_MAE: fits = task == Task::kRegression; break;
  }
  if (fits) return OkStatus();
  return InvalidArgumentError("early_stopping.metric " + proto::EarlyStoppingSpec::Metric_Name(metric) +
                              " does not fit the job's task, " + TaskName(task));
}

// data.table.num_classes counts a multi-class task's classes: a binary task
// has 2, a regression none.
Status CheckNumClasses(const proto::JobSpec& spec, Task task) {
  const int classes = spec.data().table().num_classes();
  if (classes == 0 || task == Task::kMultiClass || (task == Task::kBinary && classes == 2)) return OkStatus();
  return InvalidArgumentError("data.table.num_classes " + std::to_string(classes) + " is for multi-class tasks; this "
                              "job's task is " + TaskName(task) + ": leave it unset");
}

// AUTO on a table: the task from its labels and the model's outputs.
StatusOr<JobTask> InferTableTask(const proto::JobSpec& spec, const proto::TableLabels& labels, int num_classes) {
  const std::string column = "the label column '" + TableDataSpec(spec.data()).table().label_column() + "'";
  JobTask task;
  if (labels.kind() == proto::TableLabels::CLASS_ID) {
    task.loss = proto::SOFTMAX_CROSS_ENTROPY;
    task.description = "task: multi-class classification (inferred from " + column + ": class ids, " +
                       std::to_string(num_classes) + " classes, and a last layer of more than one output)";
    return task;
  }
  // One output: labels were read as any number.
  if (labels.all_binary()) {
    task.loss = proto::SIGMOID_BINARY_CROSS_ENTROPY;
    task.description = "task: binary classification (inferred from " + column + ": values 0 and 1, and one output)";
    return task;
  }
  if (!labels.all_integers()) {
    task.loss = proto::MEAN_SQUARED_ERROR;
    task.description = "task: regression (inferred from " + column + ": numbers in [" + ValueText(labels.min()) +
                       ", " + ValueText(labels.max()) + "], not all integers, and one output)";
    return task;
  }
  return InvalidArgumentError(
      "cannot infer the task from " + column + " (integers in [" + ValueText(labels.min()) + ", " +
      ValueText(labels.max()) + "]) and a last layer of one output: set model.loss (SOFTMAX_CROSS_ENTROPY with one "
      "output per class, SIGMOID_BINARY_CROSS_ENTROPY for labels 0 and 1, or MEAN_SQUARED_ERROR)");
}

StatusOr<JobTask> ResolveTask(const proto::JobSpec& spec, const proto::TableData* table, int num_classes) {
  const proto::Loss loss = spec.model().loss();
  if (loss != proto::AUTO) {
    if (table == nullptr && loss != proto::SOFTMAX_CROSS_ENTROPY) {
      return InvalidArgumentError("model.loss " + proto::Loss_Name(loss) +
                                  " needs a CSV or TSV table: IDX and image-folder labels are classes "
                                  "(SOFTMAX_CROSS_ENTROPY)");
    }
    JobTask task;
    task.loss = loss;
    task.description = std::string("task: ") + TaskName(TaskOfLoss(loss)) + " (model.loss " + proto::Loss_Name(loss) + ")";
    return task;
  }
  if (table != nullptr) return InferTableTask(spec, table->labels(), num_classes);
  JobTask task;
  task.description = "task: multi-class classification of " + std::to_string(num_classes) +
                     " classes (inferred: the data's labels are classes)";
  return task;
}

}  // namespace

StatusOr<proto::TableLabels::Kind> TableLabelKind(const proto::JobSpec& spec) {
  const proto::Loss loss = spec.model().loss();
  if (loss != proto::AUTO) return KindOfLoss(loss);
  ASSIGN_OR_RETURN(const int features, TableFeatureCount(spec.data()));
  // Before the scan, the categorical columns' sizes are unknown; they do not
  // change the output's shape, so one row each stands in for them.
  const std::vector<int64_t> categorical_rows(spec.data().table().categorical_columns_size(), 1);
  ASSIGN_OR_RETURN(const Shape out, ModelOutputShape(spec.model(), Shape{features}, categorical_rows));
  const bool one_output = out.size() == 1 && out[0] == 1;
  return one_output ? proto::TableLabels::NUMBER : proto::TableLabels::CLASS_ID;
}

StatusOr<JobTask> ChooseTask(const proto::JobSpec& spec, const proto::TableData* table, int num_classes) {
  ASSIGN_OR_RETURN(JobTask task, ResolveTask(spec, table, num_classes));
  RETURN_IF_ERROR(CheckEarlyStoppingMetric(spec, TaskOfLoss(task.loss)));
  RETURN_IF_ERROR(CheckNumClasses(spec, TaskOfLoss(task.loss)));
  return task;
}

proto::JobSpec WithTask(const proto::JobSpec& spec, const JobTask& task) {
  proto::JobSpec out = spec;
  out.mutable_model()->set_loss(task.loss);
  return out;
}

}  // namespace tessera
