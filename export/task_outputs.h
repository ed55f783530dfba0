// What an exported model outputs for its task (core/task.h), in the one
// place the export, `tessera predict` and `tessera serve` take it from:
//
//   task (manifest)   ONNX outputs                         predict columns
//   classification    logits [N, K], probabilities [N, K]  class, prob_0.., class_name
//   binary            logits [N, 1], probability [N, 1]    probability, class, class_name
//   regression        value [N, 1]                         value
//
// A binary model's probability is sigmoid(logit) in float32 and its class
// is probability > 0.5 (class 1), so predict and serve, which both compute
// them here from the model's logit, give the same bits.
// Functions without state: thread-safe.
#ifndef TESSERA_EXPORT_TASK_OUTPUTS_H_
#define TESSERA_EXPORT_TASK_OUTPUTS_H_

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/task.h"

namespace tessera {

inline constexpr char kOnnxProbabilityName[] = "probability";  // binary: sigmoid of the logit
inline constexpr char kOnnxValueName[] = "value";              // regression: the predicted value

// The manifest's "task": "classification", "binary" or "regression".
const char* ManifestTaskName(Task task);

// The task a manifest's "task" names. InvalidArgument naming `path` and
// the value for any other text.
StatusOr<Task> ParseManifestTask(const std::string& name, const std::string& path);

// The name of the model's raw output: "value" for regression, "logits" otherwise.
const char* TaskOutputName(Task task);

// The name of the probabilities output: "probabilities" (multi-class),
// "probability" (binary); "" for a regression, which has none.
const char* TaskProbabilityName(Task task);

// 1 / (1 + exp(-logit)) in float32, as ONNX's Sigmoid computes it.
float SigmoidProbability(float logit);

// The class a binary model predicts at `probability`: 1 above 0.5, else 0.
int64_t BinaryClass(float probability);

}  // namespace tessera

#endif  // TESSERA_EXPORT_TASK_OUTPUTS_H_
