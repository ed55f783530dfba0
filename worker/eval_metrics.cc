#include "worker/eval_metrics.h"

#include <span>

#include "models/softmax_cross_entropy.h"

namespace tessera {

EvalMetrics::EvalMetrics(Task task, int64_t num_classes) : task_(task), num_classes_(num_classes) {
  if (task_ == Task::kMultiClass) classes_.emplace(num_classes);
}

Status EvalMetrics::AddBatch(const float* labels, const float* outputs, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    switch (task_) {
      case Task::kMultiClass:
        RETURN_IF_ERROR(classes_->AddLogits(static_cast<int64_t>(labels[i]),
                                            std::span<const float>(outputs + i * num_classes_,
                                                                   static_cast<size_t>(num_classes_))));
        break;
      case Task::kBinary:
        // The labels were checked to be 0 or 1 when read.
        RETURN_IF_ERROR(binary_.Add(static_cast<int64_t>(labels[i]), Sigmoid(outputs[i])));
        break;
      case Task::kRegression:
        RETURN_IF_ERROR(regression_.Add(labels[i], outputs[i]));
        break;
    }
  }
  return OkStatus();
}

void EvalMetrics::Fill(proto::PhaseDone* done) const {
  switch (task_) {
    case Task::kMultiClass: done->set_class_metrics(classes_->Serialize()); break;
    case Task::kBinary: done->set_binary_metrics(binary_.Serialize()); break;
    case Task::kRegression: done->set_regression_metrics(regression_.Serialize()); break;
  }
}

}  // namespace tessera
