#include "core/task.h"

namespace tessera {

Task TaskOfLoss(proto::Loss loss) {
  switch (loss) {
    case proto::SIGMOID_BINARY_CROSS_ENTROPY: return Task::kBinary;
    case proto::MEAN_SQUARED_ERROR: return Task::kRegression;
    case proto::SOFTMAX_CROSS_ENTROPY:
    case proto::AUTO: return Task::kMultiClass;
  }
  return Task::kMultiClass;
}

const char* TaskName(Task task) {
  switch (task) {
    case Task::kMultiClass: return "multi-class classification";
    case Task::kBinary: return "binary classification";
    case Task::kRegression: return "regression";
  }
  return "?";
}

int64_t TaskOutputs(Task task, int64_t num_classes) { return task == Task::kMultiClass ? num_classes : 1; }

}  // namespace tessera
