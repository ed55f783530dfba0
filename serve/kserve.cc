#include "serve/kserve.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/json.h"
#include "export/onnx_export.h"
#include "export/task_outputs.h"
#include "serve/raw_inputs.h"

namespace tessera {
namespace {

using nlohmann::json;

// A shape as a request writes it, for messages: [1,28,28].
std::string RequestShapeText(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// An output tensor of a response, or its description in the metadata
// (without data).
JsonObject TensorJson(const char* name, const std::vector<int64_t>& shape) {
  JsonObject tensor;
  tensor.Add("name", name).Add("datatype", "FP32").Add("shape", shape);
  return tensor;
}

// A scalar's JSON text, or the type of anything else (never recursing).
std::string ValueText(const json& v) {
  if (v.is_structured()) return std::string("an ") + v.type_name();
  return v.dump().substr(0, 40);
}

// Deepest nesting of [ and { outside strings (a cheap guard before parsing).
int NestingDepth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// Appends the numbers of `data` (flat, or nested as `shape` from `depth` on)
// to out, checking each value against the datatype.
Status CollectData(const json& data, const std::vector<int64_t>& shape, size_t depth, bool uint8, std::vector<float>* out,
                   const std::string& where) {
  if (!data.is_array()) return InvalidArgumentError(where + " must be an array of numbers");
  if (data.size() != static_cast<size_t>(shape[depth])) {
    return InvalidArgumentError(where + " has " + std::to_string(data.size()) + " elements at depth " + std::to_string(depth) +
                                ", the shape says " + std::to_string(shape[depth]));
  }
  for (const json& v : data) {
    if (depth + 1 < shape.size()) {
      RETURN_IF_ERROR(CollectData(v, shape, depth + 1, uint8, out, where));
      continue;
    }
    if (uint8) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 255) {
        return InvalidArgumentError(where + ": UINT8 data must be integers in [0, 255], got " + ValueText(v));
      }
      out->push_back(static_cast<float>(v.get<int64_t>()));
    } else {
      if (!v.is_number()) return InvalidArgumentError(where + ": FP32 data must be numbers, got " + ValueText(v));
      const double d = v.get<double>();
      if (!std::isfinite(d) || std::abs(d) > std::numeric_limits<float>::max()) {
        return InvalidArgumentError(where + ": " + ValueText(v) + " is not a float32");
      }
      out->push_back(static_cast<float>(d));
    }
  }
  return OkStatus();
}

// The model's own input tensor (already preprocessed, or IDX pixels) into out->x and out->batch.
Status ParseModelInput(const json& input, const ServedModel& model, InferRequest* out_request) {
  InferRequest& out = *out_request;
  if (!input.is_object()) return InvalidArgumentError("inputs[0] must be an object");
  for (const auto& [key, value] : input.items()) {
    if (key != "name" && key != "shape" && key != "datatype" && key != "data" && key != "parameters") {
      return InvalidArgumentError("unknown field '" + key + "' in inputs[0]");
    }
  }
  if (!input.contains("name") || !input["name"].is_string()) return InvalidArgumentError("inputs[0].name must be a string");
  const std::string name = input["name"].get<std::string>();
  if (name != model.input_name()) {
    return InvalidArgumentError("unknown input '" + name + "': the model's input is '" + model.input_name() + "'");
  }
  if (!input.contains("datatype") || !input["datatype"].is_string()) {
    return InvalidArgumentError("inputs[0].datatype must be a string");
  }
  const std::string datatype = input["datatype"].get<std::string>();
  if (datatype != "FP32" && datatype != "UINT8") {
    return InvalidArgumentError("datatype " + datatype.substr(0, 40) + " is not supported: FP32 (normalized) or UINT8 (pixels)");
  }
  if (datatype == "UINT8" && model.files().preprocessing.kind != InputKind::kIdx) {
    return InvalidArgumentError(std::string("datatype UINT8 is for IDX models' pixels; this model takes FP32 (already "
                                            "preprocessed) or its raw inputs: ") +
                                (model.files().preprocessing.kind == InputKind::kImage
                                     ? "'image' (BYTES, base64 PNG or JPEG)"
                                 : model.files().preprocessing.kind == InputKind::kLibsvm
                                     ? "'indices' (INT64) and 'values' (FP32), [N, K] each"
                                     : "one input per column"));
  }
  // Shape: [N] + the model's example shape.
  std::vector<int64_t> wanted = {-1};
  wanted.insert(wanted.end(), model.input_shape().begin(), model.input_shape().end());
  std::string wanted_text = "[N";
  for (int64_t d : model.input_shape()) wanted_text += "," + std::to_string(d);
  wanted_text += "]";
  if (!input.contains("shape") || !input["shape"].is_array()) return InvalidArgumentError("inputs[0].shape must be an array");
  std::vector<int64_t> shape;
  for (const json& d : input["shape"]) {
    if (!d.is_number_integer()) return InvalidArgumentError("inputs[0].shape must hold integers");
    shape.push_back(d.get<int64_t>());
  }
  bool shape_ok = shape.size() == wanted.size() && shape[0] >= 1;
  for (size_t i = 1; shape_ok && i < shape.size(); ++i) shape_ok = shape[i] == wanted[i];
  if (!shape_ok) {
    return InvalidArgumentError("input '" + name + "' has shape " + RequestShapeText(shape) + ", the model wants " +
                                wanted_text + " with N >= 1");
  }
  out.batch = shape[0];
  const int64_t features = model.input_features();
  if (out.batch > (int64_t{1} << 40) / features) return InvalidArgumentError("the batch is too large");
  if (!input.contains("data")) return InvalidArgumentError("inputs[0].data is missing");
  const json& data = input["data"];
  if (!data.is_array()) return InvalidArgumentError("inputs[0].data must be an array");
  const bool uint8 = datatype == "UINT8";
  // Flat (every element a number) or nested as the shape.
  const bool flat = !data.empty() && !data[0].is_array();
  if (flat) {
    if (static_cast<int64_t>(data.size()) != out.batch * features) {
      return InvalidArgumentError("inputs[0].data holds " + std::to_string(data.size()) + " values, the shape " +
                                  RequestShapeText(shape) + " needs " + std::to_string(out.batch * features));
    }
    out.x.reserve(data.size());  // only once the data has been seen to be that large
    RETURN_IF_ERROR(CollectData(data, {static_cast<int64_t>(data.size())}, 0, uint8, &out.x, "inputs[0].data"));
  } else {
    RETURN_IF_ERROR(CollectData(data, shape, 0, uint8, &out.x, "inputs[0].data"));
  }
  if (uint8) {
    // As the workers normalize: one multiply-add per pixel.
    const InputNormalization& n = model.normalization();
    const float a = static_cast<float>(n.scale / n.std), b = static_cast<float>(-n.mean / n.std);
    for (float& v : out.x) v = v * a + b;
  }
  // Values the model cannot take (an embedding's ids out of range) are the
  // client's mistake, found before the request joins a batch.
  if (Status valid = model.ValidateInput(out.x.data(), static_cast<int64_t>(out.x.size())); !valid.ok()) {
    return InvalidArgumentError("input '" + name + "': " + valid.message());
  }
  return OkStatus();
}

Task TaskOf(const ServedModel& model) { return model.files().preprocessing.task; }

bool HasClassNames(const ServedModel& model) { return NamesClasses(model.files().preprocessing, model.num_classes()); }

// The class of each row: the largest logit's (the first on a tie), or a
// binary model's probability > 0.5.
std::vector<int64_t> RowClasses(const std::vector<float>& logits, int64_t batch, int64_t k, Task task) {
  std::vector<int64_t> classes;
  for (int64_t r = 0; r < batch; ++r) {
    const auto row = logits.begin() + r * k;
    classes.push_back(task == Task::kBinary ? BinaryClass(SigmoidProbability(*row))
                                            : std::max_element(row, row + k) - row);
  }
  return classes;
}

}  // namespace

StatusOr<InferRequest> ParseInferRequest(const std::string& body, const ServedModel& model) {
  if (NestingDepth(body) > 16) return InvalidArgumentError("the request's JSON is nested deeper than 16 levels");
  json request = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return InvalidArgumentError("malformed JSON in the request body");
  if (!request.is_object()) return InvalidArgumentError("the request must be a JSON object");
  InferRequest out;
  for (const auto& [key, value] : request.items()) {
    if (key != "id" && key != "inputs" && key != "outputs" && key != "parameters") {
      return InvalidArgumentError("unknown request field '" + key + "'");
    }
  }
  if (request.contains("id")) {
    if (!request["id"].is_string()) return InvalidArgumentError("'id' must be a string");
    out.has_id = true;
    out.id = request["id"].get<std::string>();
  }
  if (request.contains("parameters") && !request["parameters"].is_object()) {
    return InvalidArgumentError("'parameters' must be an object");
  }
  const json* inputs = request.contains("inputs") ? &request["inputs"] : nullptr;
  const ModelPreprocessing& preprocessing = model.files().preprocessing;
  if (inputs != nullptr && UsesRawInputs(*inputs, preprocessing, model.input_name())) {
    RETURN_IF_ERROR(ParseRawInputs(*inputs, preprocessing, &out.x, &out.batch, kServeMaxImageInputBytes,
                                   &out.sparse_ids));
    if (Status valid = model.ValidateInput(out.x.data(), static_cast<int64_t>(out.x.size())); !valid.ok()) {
      return InvalidArgumentError(valid.message());
    }
  } else {
    if (inputs == nullptr || !inputs->is_array() || inputs->size() != 1) {
      return InvalidArgumentError("'inputs' must be an array of exactly one tensor, '" + model.input_name() + "'");
    }
    RETURN_IF_ERROR(ParseModelInput((*inputs)[0], model, &out));
  }
  if (request.contains("outputs")) {
    const json& outputs = request["outputs"];
    if (!outputs.is_array()) return InvalidArgumentError("'outputs' must be an array");
    out.want_logits = out.want_probabilities = out.want_class = out.want_class_name = false;
    const Task task = TaskOf(model);
    for (const json& o : outputs) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        return InvalidArgumentError("each of 'outputs' needs a name");
      }
      const std::string wanted_output = o["name"].get<std::string>();
      if (wanted_output == TaskOutputName(task)) {
        out.want_logits = true;
      } else if (wanted_output == TaskProbabilityName(task) && model.has_probabilities()) {
        out.want_probabilities = true;
      } else if (wanted_output == kClassOutput && task == Task::kBinary) {
        out.want_class = true;
      } else if (wanted_output == kClassNameOutput && HasClassNames(model)) {
        out.want_class_name = true;
      } else {
        return InvalidArgumentError("unknown output '" + wanted_output.substr(0, 60) + "'");
      }
    }
  }
  if (!model.has_probabilities()) out.want_probabilities = false;
  if (TaskOf(model) != Task::kBinary) out.want_class = false;
  if (!HasClassNames(model)) out.want_class_name = false;
  return out;
}

std::vector<float> Softmax(const std::vector<float>& logits, int64_t classes) {
  std::vector<float> p(logits.size());
  for (size_t row = 0; row + classes <= logits.size(); row += classes) {
    const float top = *std::max_element(logits.begin() + row, logits.begin() + row + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(double(logits[row + j]) - top);
    for (int64_t j = 0; j < classes; ++j) p[row + j] = static_cast<float>(std::exp(double(logits[row + j]) - top) / sum);
  }
  return p;
}

std::string InferResponseJson(const InferRequest& request, const ServedModel& model, const std::vector<float>& logits) {
  const Task task = TaskOf(model);
  const int64_t k = model.num_classes();
  const std::vector<int64_t> shape = {request.batch, k};
  std::vector<JsonObject> outputs;
  if (request.want_logits) outputs.push_back(TensorJson(TaskOutputName(task), shape).AddFloat32s("data", logits));
  if (request.want_probabilities && task == Task::kMultiClass) {
    outputs.push_back(TensorJson(kOnnxProbabilitiesName, shape).AddFloat32s("data", Softmax(logits, k)));
  }
  if (request.want_probabilities && task == Task::kBinary) {
    std::vector<float> p(logits.size());
    std::transform(logits.begin(), logits.end(), p.begin(), SigmoidProbability);
    outputs.push_back(TensorJson(kOnnxProbabilityName, shape).AddFloat32s("data", p));
  }
  const std::vector<int64_t> classes = request.want_class || request.want_class_name
                                           ? RowClasses(logits, request.batch, k, task)
                                           : std::vector<int64_t>();
  if (request.want_class) {
    outputs.push_back(JsonObject()
                          .Add("name", kClassOutput)
                          .Add("datatype", "INT64")
                          .Add("shape", std::vector<int64_t>{request.batch})
                          .Add("data", classes));
  }
  if (request.want_class_name) {
    std::vector<std::string> names;
    const std::vector<std::string>& class_names = model.files().preprocessing.class_names;
    for (int64_t c : classes) names.push_back(class_names[c]);
    outputs.push_back(JsonObject()
                          .Add("name", kClassNameOutput)
                          .Add("datatype", "BYTES")
                          .Add("shape", std::vector<int64_t>{request.batch})
                          .Add("data", names));
  }
  JsonObject response;
  response.Add("model_name", model.name()).Add("model_version", std::to_string(model.version()));
  if (request.has_id) response.Add("id", request.id);
  return response.Add("outputs", outputs).ToCompactString();
}

std::string ModelMetadataJson(const ServedModel& served, const std::vector<int64_t>& versions) {
  std::vector<std::string> version_names;  // KServe's versions are strings
  for (int64_t v : versions) version_names.push_back(std::to_string(v));
  std::vector<int64_t> in = {-1};
  in.insert(in.end(), served.input_shape().begin(), served.input_shape().end());
  JsonObject input;
  input.Add("name", served.input_name()).Add("datatype", "FP32").Add("shape", in);
  const ModelPreprocessing& preprocessing = served.files().preprocessing;
  std::vector<JsonObject> inputs = {input};
  if (preprocessing.kind != InputKind::kIdx) inputs = RawInputsMetadata(preprocessing);
  const std::vector<int64_t> out_shape = {-1, served.num_classes()};
  const Task task = TaskOf(served);
  std::vector<JsonObject> outputs = {TensorJson(TaskOutputName(task), out_shape)};
  if (served.has_probabilities()) outputs.push_back(TensorJson(TaskProbabilityName(task), out_shape));
  if (task == Task::kBinary) {
    outputs.push_back(
        JsonObject().Add("name", kClassOutput).Add("datatype", "INT64").Add("shape", std::vector<int64_t>{-1}));
  }
  if (HasClassNames(served)) {
    outputs.push_back(JsonObject().Add("name", kClassNameOutput).Add("datatype", "BYTES").Add(
        "shape", std::vector<int64_t>{-1}));
  }
  const InputNormalization& n = served.normalization();
  JsonObject parameters;
  parameters.Add("input_normalization", "(pixel * scale - mean) / std")
      .AddFloat32("scale", static_cast<float>(n.scale))
      .AddFloat32("mean", static_cast<float>(n.mean))
      .AddFloat32("std", static_cast<float>(n.std))
      .Add("sha256", served.files().sha256)
      .Add("preprocessing", InputKindName(preprocessing.kind));
  if (preprocessing.kind != InputKind::kIdx) {
    // The model's own tensor, already preprocessed, is still taken in place of the raw inputs.
    parameters.Add("preprocessed_input", input);
  }
  JsonObject metadata;
  metadata.Add("name", served.name())
      .Add("versions", version_names)
      .Add("platform", "onnx")
      .Add("inputs", inputs)
      .Add("outputs", outputs)
      .Add("parameters", parameters);
  return metadata.ToCompactString();
}

std::string ErrorJson(const std::string& message) {
  std::string one_line = message;
  for (char& c : one_line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return JsonObject().Add("error", one_line).ToCompactString();
}

}  // namespace tessera
