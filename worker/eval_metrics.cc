#include "worker/eval_metrics.h"

#include <span>

#include "models/softmax_cross_entropy.h"

namespace tessera {

EvalMetrics::EvalMetrics(Task task, int64_t num_classes) : task_(task), num_classes_(num_classes) {
  if (task_ == Task::kMultiClass) classes_.emplace(num_classes);
}

void EvalMetrics::AddBatch(const float* labels, const float* outputs, int64_t count) {
  const int64_t per_example = task_ == Task::kMultiClass ? num_classes_ : 1;
  for (int64_t i = 0; i < count && problem_.ok(); ++i) problem_ = Add(labels[i], outputs + i * per_example);
}

Status EvalMetrics::Add(float label, const float* outputs) {
  switch (task_) {
    case Task::kMultiClass:
      return classes_->AddLogits(static_cast<int64_t>(label),
                                 std::span<const float>(outputs, static_cast<size_t>(num_classes_)));
    case Task::kBinary:
      // The labels were checked to be 0 or 1 when read; a NaN logit gives a NaN probability, refused.
      return binary_.Add(static_cast<int64_t>(label), Sigmoid(outputs[0]));
    case Task::kRegression:
      return regression_.Add(label, outputs[0]);
  }
  return OkStatus();
}

void EvalMetrics::Fill(proto::PhaseDone* done) const {
  if (!problem_.ok()) return;
  switch (task_) {
    case Task::kMultiClass: done->set_class_metrics(classes_->Serialize()); break;
    case Task::kBinary: done->set_binary_metrics(binary_.Serialize()); break;
    case Task::kRegression: done->set_regression_metrics(regression_.Serialize()); break;
  }
}

}  // namespace tessera
