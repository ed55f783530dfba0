// The KServe v2 REST protocol's JSON (the "Open Inference Protocol"): infer
// requests parsed and checked against the model they address, responses,
// model metadata and errors. Tensors travel as JSON: the input "input" as
// FP32 (already normalized) or UINT8 (an IDX model's raw pixels, normalized
// here with the model's (pixel * scale - mean) / std), data flat in
// row-major order or nested as the shape; or, for a table or image model,
// its raw inputs (one per column, or "image" as BYTES: serve/raw_inputs.h)
// preprocessed here as the manifest says; outputs "logits" and, when the
// model has them, "probabilities" (softmax of the logits), FP32 [N,
// classes], and "class_name" (BYTES [N]) when the manifest names the classes.
// A binary model's outputs are "logits" and "probability" (its sigmoid,
// computed as predict does: export/task_outputs.h), FP32 [N, 1], "class"
// (INT64 [N]: probability > 0.5) and "class_name"; a regression's only
// "value", FP32 [N, 1].
#ifndef TESSERA_SERVE_KSERVE_H_
#define TESSERA_SERVE_KSERVE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "serve/served_model.h"

namespace tessera {

struct InferRequest {
  bool has_id = false;
  std::string id;
  int64_t batch = 0;
  std::vector<float> x;  // batch * input_features, normalized
  // A model over a sparse table (Criteo): each example's ids, [batch * 26]
  // (kNoSparseId for an empty field); empty for other models.
  std::vector<uint64_t> sparse_ids;
  bool want_logits = true;         // "logits" (a regression: "value")
  bool want_probabilities = true;  // "probabilities" (binary: "probability"), only when the model has them
  bool want_class = true;          // binary models only: "class"
  bool want_class_name = true;     // only when the manifest names the classes
};

// A binary model's INT64 output [N] of each row's class, 1 when its
// probability is above 0.5.
inline constexpr char kClassOutput[] = "class";

// The BYTES output [N] of each row's predicted class name (the largest
// logit's, the first on a tie), for models whose manifest names the classes.
inline constexpr char kClassNameOutput[] = "class_name";

// InvalidArgument with a message for the client (malformed JSON, wrong
// input name, datatype, shape, data, or a value the model does not take: an
// id out of range for an embedding model) when the body is not a valid
// request for `model`.
StatusOr<InferRequest> ParseInferRequest(const std::string& body, const ServedModel& model);

// {"model_name", "model_version", "id", "outputs": [...]}.
std::string InferResponseJson(const InferRequest& request, const ServedModel& model, const std::vector<float>& logits);

// {"name", "versions", "platform": "onnx", "inputs", "outputs"} of the model
// `served` is a version of; versions: the ones listed.
std::string ModelMetadataJson(const ServedModel& served, const std::vector<int64_t>& versions);

// {"error": "message"}: one line.
std::string ErrorJson(const std::string& message);

// Row-wise softmax of logits [n, classes] (as ONNX Softmax over axis 1).
std::vector<float> Softmax(const std::vector<float>& logits, int64_t classes);

}  // namespace tessera

#endif  // TESSERA_SERVE_KSERVE_H_
