#include "export/task_outputs.h"

#include <cmath>

#include "export/onnx_export.h"

namespace tessera {

const char* ManifestTaskName(Task task) {
  switch (task) {
    case Task::kMultiClass: return "classification";
    case Task::kBinary: return "binary";
    case Task::kRegression: return "regression";
  }
  return "classification";
}

StatusOr<Task> ParseManifestTask(const std::string& name, const std::string& path) {
  for (Task task : {Task::kMultiClass, Task::kBinary, Task::kRegression}) {
    if (name == ManifestTaskName(task)) return task;
  }
  return InvalidArgumentError(path + ": task \"" + name.substr(0, 40) +
                              "\" is not supported by this version of Tessera (classification, binary or "
                              "regression)");
}

const char* TaskOutputName(Task task) { return task == Task::kRegression ? kOnnxValueName : kOnnxLogitsName; }

const char* TaskProbabilityName(Task task) {
  return task == Task::kBinary ? kOnnxProbabilityName : task == Task::kMultiClass ? kOnnxProbabilitiesName : "";
}

float SigmoidProbability(float logit) { return 1.0f / (1.0f + std::exp(-logit)); }

int64_t BinaryClass(float probability) { return probability > 0.5f ? 1 : 0; }

}  // namespace tessera
