#include "export/onnx_import.h"

#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <regex>
#include <set>

#include "core/file_util.h"
#include "core/sha256.h"
#include "export/onnx_export.h"

namespace tessera {
namespace {

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian");

// Largest tensor we accept (elements): well beyond any model Tessera trains,
// small enough that no product of dims overflows.
constexpr int64_t kMaxElements = int64_t{1} << 34;

std::string NodeWhere(const onnx::NodeProto& node, int index) {
  return "node " + std::to_string(index) + " (" + node.op_type() + (node.name().empty() ? "" : " '" + node.name() + "'") +
         ")";
}

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

// Every attribute of the node must be one of `known`.
Status OnlyAttributes(const onnx::NodeProto& node, const std::set<std::string>& known, const std::string& where) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (!known.count(a.name())) return InvalidArgumentError(where + ": unsupported attribute '" + a.name() + "'");
  }
  return OkStatus();
}

StatusOr<int64_t> IntAttr(const onnx::NodeProto& node, const std::string& name, int64_t fallback, const std::string& where) {
  const onnx::AttributeProto* a = FindAttr(node, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::INT) return InvalidArgumentError(where + ": attribute '" + name + "' is not an int");
  return a->i();
}

StatusOr<float> FloatAttr(const onnx::NodeProto& node, const std::string& name, float fallback, const std::string& where) {
  const onnx::AttributeProto* a = FindAttr(node, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::FLOAT) return InvalidArgumentError(where + ": attribute '" + name + "' is not a float");
  return a->f();
}

StatusOr<std::vector<int64_t>> IntsAttr(const onnx::NodeProto& node, const std::string& name, std::vector<int64_t> fallback,
                                        const std::string& where) {
  const onnx::AttributeProto* a = FindAttr(node, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::INTS) return InvalidArgumentError(where + ": attribute '" + name + "' is not ints");
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

Status NoAutoPad(const onnx::NodeProto& node, const std::string& where) {
  const onnx::AttributeProto* a = FindAttr(node, "auto_pad");
  if (a != nullptr && a->s() != "NOTSET") return InvalidArgumentError(where + ": auto_pad " + a->s() + " is not supported (explicit pads only)");
  return OkStatus();
}

// A square window's size from a 2-element attribute, all elements equal, in [1, int32 max].
StatusOr<int32_t> Square(const std::vector<int64_t>& v, size_t count, const std::string& what, int64_t lo,
                         const std::string& where) {
  if (v.size() != count) {
    return InvalidArgumentError(where + ": " + what + " must have " + std::to_string(count) + " values, got " +
                                std::to_string(v.size()));
  }
  for (int64_t x : v) {
    if (x != v[0]) return InvalidArgumentError(where + ": " + what + " must be the same on every side (Tessera's layers are square)");
  }
  if (v[0] < lo || v[0] > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(where + ": " + what + " " + std::to_string(v[0]) + " is out of range");
  }
  return static_cast<int32_t>(v[0]);
}

// A float32 initializer's values (raw_data or float_data), checked against its dims.
StatusOr<std::vector<float>> TensorFloats(const onnx::TensorProto& t) {
  const std::string where = "initializer '" + t.name() + "'";
  if (t.data_type() != onnx::TensorProto::FLOAT) {
    return InvalidArgumentError(where + " is not float32 (data_type " + std::to_string(t.data_type()) + ")");
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    return InvalidArgumentError(where + " keeps its data in an external file (not supported)");
  }
  if (t.has_segment()) return InvalidArgumentError(where + " is segmented (not supported)");
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && n > kMaxElements / d)) return InvalidArgumentError(where + " has impossible dims");
    n *= d;
  }
  std::vector<float> values;
  if (t.has_raw_data()) {
    if (t.raw_data().size() != static_cast<uint64_t>(n) * sizeof(float)) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.raw_data().size()) + " bytes, its dims want " +
                                  std::to_string(n * sizeof(float)));
    }
    values.resize(n);
    if (n > 0) std::memcpy(values.data(), t.raw_data().data(), t.raw_data().size());
  } else {
    if (t.float_data_size() != n) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.float_data_size()) + " floats, its dims want " +
                                  std::to_string(n));
    }
    values.assign(t.float_data().begin(), t.float_data().end());
  }
  return values;
}

// "layer7.linear" -> 7; -1 when the name is not Tessera's.
int64_t LayerNumber(const std::string& name) {
  static const std::regex kName(R"(layer([0-9]{1,6})\.[a-z0-9_]+)");
  std::smatch m;
  if (!std::regex_match(name, m, kName)) return -1;
  return std::stoll(m[1].str());
}

// Per-example dims of a graph input or output: [N, d...] with every d fixed and positive.
StatusOr<Shape> BatchedShape(const onnx::ValueInfoProto& value) {
  const std::string where = "graph value '" + value.name() + "'";
  if (!value.type().has_tensor_type()) return InvalidArgumentError(where + " is not a tensor");
  const onnx::TypeProto_Tensor& tensor = value.type().tensor_type();
  if (tensor.elem_type() != onnx::TensorProto::FLOAT) return InvalidArgumentError(where + " is not float32");
  if (!tensor.has_shape() || tensor.shape().dim_size() < 2) {
    return InvalidArgumentError(where + " needs a shape [N, ...] of rank >= 2");
  }
  Shape dims;
  for (int i = 1; i < tensor.shape().dim_size(); ++i) {
    const onnx::TensorShapeProto_Dimension& d = tensor.shape().dim(i);
    if (!d.has_dim_value() || d.dim_value() < 1 || d.dim_value() > kMaxElements) {
      return InvalidArgumentError(where + ": dimension " + std::to_string(i) + " must be a fixed positive number");
    }
    dims.push_back(d.dim_value());
  }
  if (NumElements(dims) > kMaxElements) return InvalidArgumentError(where + " is too large");
  return dims;
}

}  // namespace

StatusOr<ImportedModel> ImportOnnxModel(const onnx::ModelProto& model) {
  RETURN_IF_ERROR(CheckOnnxModel(model));
  ImportedModel out;
  for (const onnx::StringStringEntryProto& p : model.metadata_props()) out.metadata[p.key()] = p.value();
  int64_t opset = -1;
  for (const onnx::OperatorSetIdProto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  if (opset < 13) {
    return InvalidArgumentError("the model imports default-domain opset " + std::to_string(opset) +
                                "; Tessera reads opset 13 and later");
  }
  const onnx::GraphProto& graph = model.graph();

  // Initializers by name (each used at most once, all of them used).
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const onnx::TensorProto& t : graph.initializer()) {
    if (!inits.emplace(t.name(), &t).second) return InvalidArgumentError("initializer '" + t.name() + "' appears twice");
  }
  if (graph.sparse_initializer_size() > 0) return InvalidArgumentError("sparse initializers are not supported");
  std::set<std::string> used;

  // The one real input (graph inputs may also list initializers).
  const onnx::ValueInfoProto* input = nullptr;
  for (const onnx::ValueInfoProto& v : graph.input()) {
    if (inits.count(v.name())) continue;
    if (input != nullptr) return InvalidArgumentError("the graph has more than one input ('" + input->name() + "', '" + v.name() + "')");
    input = &v;
  }
  if (input == nullptr) return InvalidArgumentError("the graph has no input");
  ASSIGN_OR_RETURN(out.input_shape, BatchedShape(*input));
  if (out.input_shape.size() != 1 && out.input_shape.size() != 3) {
    return InvalidArgumentError("the input must be [N, F] or [N, C, H, W], got " + std::to_string(out.input_shape.size() + 1) +
                                " dimensions");
  }
  out.input_name = input->name();

  // Walk the chain.
  std::string current = input->name();
  Shape shape = out.input_shape;
  std::vector<std::vector<std::string>> layer_params;  // initializer names per layer, in param order
  bool softmax_seen = false;
  std::string logits_value;  // the value the last layer produced
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const std::string where = NodeWhere(node, i);
    const std::string& op = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return InvalidArgumentError(where + ": domain '" + node.domain() + "' is not supported");
    }
    if (softmax_seen) return InvalidArgumentError(where + ": no node may follow the Softmax");
    if (node.input_size() < 1 || node.input(0) != current) {
      return InvalidArgumentError(where + ": reads '" + (node.input_size() ? node.input(0) : std::string()) + "', not '" +
                                  current + "' (Tessera runs a chain of layers, each reading the one before)");
    }
    if (node.output_size() != 1) return InvalidArgumentError(where + ": must have exactly one output");
    // Parameter inputs: initializers, checked against the layer later.
    std::vector<std::string> params;
    for (int k = 1; k < node.input_size(); ++k) {
      const std::string& name = node.input(k);
      if (name.empty()) return InvalidArgumentError(where + ": optional inputs left empty are not supported");
      if (!inits.count(name)) return InvalidArgumentError(where + ": input '" + name + "' is not an initializer");
      if (!used.insert(name).second) return InvalidArgumentError(where + ": initializer '" + name + "' is used twice");
      params.push_back(name);
    }
    auto param_dims = [&](int k) -> std::vector<int64_t> {
      const onnx::TensorProto* t = inits[params[k]];
      return std::vector<int64_t>(t->dims().begin(), t->dims().end());
    };
    // A layer number in the node name ("layer4.relu"): fill Tessera's
    // dropout layers (no node) back in where numbers skip.
    auto add_layer = [&](proto::LayerSpec layer) -> Status {
      const int64_t number = LayerNumber(node.name());
      while (number > out.spec.layer_size() && number < 100000) {
        out.spec.add_layer()->mutable_dropout();
        layer_params.emplace_back();
      }
      auto created = CreateLayer(layer, shape);
      if (!created.ok()) return created.status().WithContext(where);
      const std::vector<ParamShape> wants = (*created)->param_shapes();
      if (wants.size() != params.size()) {
        return InvalidArgumentError(where + ": has " + std::to_string(params.size()) + " parameter inputs, the layer wants " +
                                    std::to_string(wants.size()));
      }
      for (size_t k = 0; k < wants.size(); ++k) {
        if (param_dims(static_cast<int>(k)) != wants[k].shape) {
          return InvalidArgumentError(where + ": initializer '" + params[k] + "' has shape " +
                                      ShapeText(param_dims(static_cast<int>(k))) + ", the layer wants " +
                                      ShapeText(wants[k].shape) + " (" + wants[k].name + ")");
        }
      }
      *out.spec.add_layer() = layer;
      layer_params.push_back(params);
      shape = (*created)->out_shape();
      logits_value = node.output(0);
      return OkStatus();
    };
    proto::LayerSpec layer;
    if (op == "Relu") {
      RETURN_IF_ERROR(OnlyAttributes(node, {}, where));
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      layer.mutable_relu();
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "Conv") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"}, where));
      RETURN_IF_ERROR(NoAutoPad(node, where));
      if (params.empty() || params.size() > 2) return InvalidArgumentError(where + ": needs inputs X, W and optionally B");
      const std::vector<int64_t> w = param_dims(0);
      if (w.size() != 4) return InvalidArgumentError(where + ": weight '" + params[0] + "' must be 4-d [out, in, k, k]");
      ASSIGN_OR_RETURN(auto kernel_shape, IntsAttr(node, "kernel_shape", {w[2], w[3]}, where));
      ASSIGN_OR_RETURN(const int32_t kernel, Square(kernel_shape, 2, "kernel_shape", 1, where));
      ASSIGN_OR_RETURN(auto strides, IntsAttr(node, "strides", {1, 1}, where));
      ASSIGN_OR_RETURN(const int32_t stride, Square(strides, 2, "strides", 1, where));
      ASSIGN_OR_RETURN(auto pads, IntsAttr(node, "pads", {0, 0, 0, 0}, where));
      ASSIGN_OR_RETURN(const int32_t pad, Square(pads, 4, "pads", 0, where));
      ASSIGN_OR_RETURN(auto dilations, IntsAttr(node, "dilations", {1, 1}, where));
      ASSIGN_OR_RETURN(const int32_t dilation, Square(dilations, 2, "dilations", 1, where));
      if (dilation != 1) return InvalidArgumentError(where + ": dilations other than 1 are not supported");
      ASSIGN_OR_RETURN(const int64_t group, IntAttr(node, "group", 1, where));
      if (group != 1) return InvalidArgumentError(where + ": group " + std::to_string(group) + " is not supported (only 1)");
      if (w[0] < 1 || w[0] > std::numeric_limits<int32_t>::max()) return InvalidArgumentError(where + ": bad weight shape");
      proto::Conv2dSpec* c = layer.mutable_conv2d();
      c->set_out_channels(static_cast<int32_t>(w[0]));
      c->set_kernel_size(kernel);
      c->set_stride(stride);
      c->set_padding(pad);
      c->set_bias(params.size() == 2);
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "MaxPool") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"}, where));
      RETURN_IF_ERROR(NoAutoPad(node, where));
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      ASSIGN_OR_RETURN(auto kernel_shape, IntsAttr(node, "kernel_shape", {}, where));
      ASSIGN_OR_RETURN(const int32_t kernel, Square(kernel_shape, 2, "kernel_shape", 1, where));
      ASSIGN_OR_RETURN(auto strides, IntsAttr(node, "strides", {1, 1}, where));
      ASSIGN_OR_RETURN(const int32_t stride, Square(strides, 2, "strides", 1, where));
      ASSIGN_OR_RETURN(auto pads, IntsAttr(node, "pads", {0, 0, 0, 0}, where));
      ASSIGN_OR_RETURN(const int32_t pad, Square(pads, 4, "pads", 0, where));
      if (pad != 0) return InvalidArgumentError(where + ": padded max pooling is not supported");
      ASSIGN_OR_RETURN(auto dilations, IntsAttr(node, "dilations", {1, 1}, where));
      ASSIGN_OR_RETURN(const int32_t dilation, Square(dilations, 2, "dilations", 1, where));
      if (dilation != 1) return InvalidArgumentError(where + ": dilations other than 1 are not supported");
      ASSIGN_OR_RETURN(const int64_t ceil_mode, IntAttr(node, "ceil_mode", 0, where));
      if (ceil_mode != 0) return InvalidArgumentError(where + ": ceil_mode 1 is not supported (Tessera floors)");
      proto::MaxPool2dSpec* p = layer.mutable_max_pool2d();
      p->set_kernel_size(kernel);
      p->set_stride(stride);
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "Flatten") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"axis"}, where));
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      ASSIGN_OR_RETURN(const int64_t axis, IntAttr(node, "axis", 1, where));
      if (axis != 1) return InvalidArgumentError(where + ": axis " + std::to_string(axis) + " is not supported (only 1)");
      // "layerI.linear.flatten_input" before layerI's Gemm: Linear flattens by itself.
      const bool before_gemm = i + 1 < graph.node_size() && graph.node(i + 1).op_type() == "Gemm" &&
                               node.name() == graph.node(i + 1).name() + ".flatten_input";
      if (before_gemm) {
        current = node.output(0);
        continue;  // the shape stays as it is for the Linear
      }
      layer.mutable_flatten();
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "Gemm") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"alpha", "beta", "transA", "transB"}, where));
      ASSIGN_OR_RETURN(const float alpha, FloatAttr(node, "alpha", 1.0f, where));
      ASSIGN_OR_RETURN(const float beta, FloatAttr(node, "beta", 1.0f, where));
      ASSIGN_OR_RETURN(const int64_t trans_a, IntAttr(node, "transA", 0, where));
      ASSIGN_OR_RETURN(const int64_t trans_b, IntAttr(node, "transB", 0, where));
      if (alpha != 1.0f || beta != 1.0f || trans_a != 0 || trans_b != 1) {
        return InvalidArgumentError(where + ": only alpha 1, beta 1, transA 0, transB 1 are supported");
      }
      if (params.empty() || params.size() > 2) return InvalidArgumentError(where + ": needs inputs A, B and optionally C");
      const std::vector<int64_t> w = param_dims(0);
      if (w.size() != 2 || w[0] < 1 || w[0] > std::numeric_limits<int32_t>::max()) {
        return InvalidArgumentError(where + ": B '" + params[0] + "' must be [out, in]");
      }
      proto::LinearSpec* l = layer.mutable_linear();
      l->set_out_features(static_cast<int32_t>(w[0]));
      l->set_bias(params.size() == 2);
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "BatchNormalization") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"epsilon", "momentum", "training_mode"}, where));
      ASSIGN_OR_RETURN(const int64_t training, IntAttr(node, "training_mode", 0, where));
      if (training != 0) return InvalidArgumentError(where + ": training_mode 1 is not supported");
      ASSIGN_OR_RETURN(const float epsilon, FloatAttr(node, "epsilon", 1e-5f, where));
      if (params.size() != 4) return InvalidArgumentError(where + ": needs inputs X, scale, B, mean, var");
      layer.mutable_batch_norm()->set_epsilon(epsilon);
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "Identity") {
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      logits_value = node.output(0);
    } else if (op == "Softmax") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"axis"}, where));
      ASSIGN_OR_RETURN(const int64_t axis, IntAttr(node, "axis", -1, where));
      if (axis != 1 && axis != -1) return InvalidArgumentError(where + ": axis must be 1");
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      if (node.output(0) != kOnnxProbabilitiesName) {
        return InvalidArgumentError(where + ": the Softmax must output '" + std::string(kOnnxProbabilitiesName) + "'");
      }
      softmax_seen = true;
      continue;  // current stays the logits
    } else {
      return InvalidArgumentError(where + ": op " + op + " is not supported (Tessera reads Conv, Relu, MaxPool, Flatten, "
                                  "Gemm, BatchNormalization, Softmax, Identity)");
    }
    current = node.output(0);
  }
  if (out.spec.layer_size() == 0) return InvalidArgumentError("the graph has no layer");
  if (current != kOnnxLogitsName || logits_value != kOnnxLogitsName) {
    return InvalidArgumentError("the last layer must output '" + std::string(kOnnxLogitsName) + "', it outputs '" + current + "'");
  }
  if (shape.size() != 1 || shape[0] > std::numeric_limits<int>::max()) {
    return InvalidArgumentError("the logits must be [N, classes], the last layer gives " + ShapeText(shape));
  }
  out.num_classes = static_cast<int>(shape[0]);
  out.has_probabilities = softmax_seen;
  for (const auto& [name, t] : inits) {
    if (!used.count(name)) return InvalidArgumentError("initializer '" + name + "' is not used by any node");
  }
  // Graph outputs: logits, and probabilities when there is the Softmax.
  std::set<std::string> outputs;
  for (const onnx::ValueInfoProto& v : graph.output()) {
    if (v.name() != kOnnxLogitsName && !(softmax_seen && v.name() == kOnnxProbabilitiesName)) {
      return InvalidArgumentError("graph output '" + v.name() + "' is not supported (only logits and probabilities)");
    }
    ASSIGN_OR_RETURN(const Shape dims, BatchedShape(v));
    if (dims != Shape{out.num_classes}) {
      return InvalidArgumentError("graph output '" + v.name() + "' is declared " + ShapeText(dims) + ", the layers give [" +
                                  std::to_string(out.num_classes) + "]");
    }
    outputs.insert(v.name());
  }
  if (!outputs.count(kOnnxLogitsName)) return InvalidArgumentError("the graph does not output 'logits'");
  if (softmax_seen && !outputs.count(kOnnxProbabilitiesName)) {
    return InvalidArgumentError("the graph computes 'probabilities' but does not output it");
  }
  // Parameters in key order.
  for (const auto& names : layer_params) {
    for (const std::string& name : names) {
      ASSIGN_OR_RETURN(std::vector<float> values, TensorFloats(*inits[name]));
      out.params.insert(out.params.end(), values.begin(), values.end());
    }
  }
  return out;
}

StatusOr<ImportedModel> ImportOnnxBytes(const std::string& bytes) {
  onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromString(bytes)) return InvalidArgumentError("not an ONNX model (protobuf parse failed)");
  return ImportOnnxModel(model);
}

namespace {

StatusOr<double> JsonNumberField(const nlohmann::json& object, const std::string& key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return InvalidArgumentError(where + ": '" + key + "' must be a number");
  return it->get<double>();
}

}  // namespace

StatusOr<ModelVersionFiles> ReadModelVersion(const std::string& version_dir) {
  const std::string manifest_path = version_dir + "/manifest.json", model_path = version_dir + "/model.onnx";
  if (!FileExists(manifest_path)) return NotFoundError(manifest_path + " does not exist");
  if (!FileExists(model_path)) return NotFoundError(model_path + " does not exist");
  ModelVersionFiles files;
  ASSIGN_OR_RETURN(files.manifest_json, ReadFileToString(manifest_path));
  nlohmann::json manifest = nlohmann::json::parse(files.manifest_json, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object()) return InvalidArgumentError(manifest_path + " is not a JSON object");
  if (manifest.value("format", "") != "tessera-model") {
    return InvalidArgumentError(manifest_path + ": format must be \"tessera-model\"");
  }
  if (manifest.value("format_of_file", "onnx") != "onnx") {
    return InvalidArgumentError(manifest_path + ": format_of_file must be \"onnx\"");
  }
  ASSIGN_OR_RETURN(const double file_bytes, JsonNumberField(manifest, "file_bytes", manifest_path));
  auto sha = manifest.find("sha256");
  if (sha == manifest.end() || !sha->is_string()) return InvalidArgumentError(manifest_path + ": 'sha256' must be a string");
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(model_path));
  if (static_cast<double>(bytes.size()) != file_bytes) {
    return InvalidArgumentError(model_path + " has " + std::to_string(bytes.size()) + " bytes, the manifest says " +
                                std::to_string(static_cast<int64_t>(file_bytes)));
  }
  files.sha256 = Sha256Hex(bytes.data(), bytes.size());
  if (files.sha256 != sha->get<std::string>()) return InvalidArgumentError(model_path + " does not match the manifest's sha256");
  auto model = ImportOnnxBytes(bytes);
  if (!model.ok()) return model.status().WithContext(model_path);
  files.model = std::move(model).value();
  auto norm = manifest.find("normalization");
  if (norm == manifest.end() || !norm->is_object()) {
    return InvalidArgumentError(manifest_path + ": 'normalization' must be an object");
  }
  ASSIGN_OR_RETURN(files.normalization.scale, JsonNumberField(*norm, "scale", manifest_path + " normalization"));
  ASSIGN_OR_RETURN(files.normalization.mean, JsonNumberField(*norm, "mean", manifest_path + " normalization"));
  ASSIGN_OR_RETURN(files.normalization.std, JsonNumberField(*norm, "std", manifest_path + " normalization"));
  if (!(files.normalization.std > 0) || !std::isfinite(files.normalization.mean) || !std::isfinite(files.normalization.scale)) {
    return InvalidArgumentError(manifest_path + ": normalization needs finite numbers and std > 0");
  }
  // The model's own copy must agree (as float32, how it was written).
  for (const auto& [key, value] : {std::pair<std::string, double>{"tessera.input_scale", files.normalization.scale},
                                   {"tessera.input_mean", files.normalization.mean},
                                   {"tessera.input_std", files.normalization.std}}) {
    auto it = files.model.metadata.find(key);
    if (it == files.model.metadata.end()) continue;
    char* end = nullptr;
    const float meta = std::strtof(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end != '\0' || meta != static_cast<float>(value)) {
      return InvalidArgumentError(model_path + ": metadata " + key + " = " + it->second + " disagrees with the manifest");
    }
  }
  if (manifest.contains("name") && manifest["name"].is_string()) files.name = manifest["name"].get<std::string>();
  if (manifest.contains("version") && manifest["version"].is_number_integer()) files.version = manifest["version"].get<int64_t>();
  return files;
}

}  // namespace tessera
