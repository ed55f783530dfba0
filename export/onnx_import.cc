#include "export/onnx_import.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/file_util.h"
#include "core/sha256.h"
#include "export/onnx_export.h"
#include "export/onnx_external_data.h"
#include "export/onnx_import_util.h"
#include "export/onnx_op_readers.h"
#include "export/task_outputs.h"

namespace tessera {
namespace {

using onnx_import::ChainNode;
using onnx_import::ChainState;
using onnx_import::GraphConstants;
using onnx_import::kMaxElements;
using onnx_import::NodeWhere;

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

// The default-domain opset must be 13 or later.
Status CheckOpset(const onnx::ModelProto& model) {
  int64_t opset = -1;
  for (const onnx::OperatorSetIdProto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  if (opset < 13) {
    return InvalidArgumentError("the model imports default-domain opset " + std::to_string(opset) +
                                "; Tessera reads opset 13 and later");
  }
  return OkStatus();
}

// Initializers by name (each used at most once, all of them used).
Status CollectInitializers(const onnx::GraphProto& graph, GraphConstants* constants) {
  for (const onnx::TensorProto& t : graph.initializer()) {
    if (!constants->initializers.emplace(t.name(), &t).second) {
      return InvalidArgumentError("initializer '" + t.name() + "' appears twice");
    }
  }
  if (graph.sparse_initializer_size() > 0) return InvalidArgumentError("sparse initializers are not supported");
  return OkStatus();
}

// The one real input (graph inputs may also list initializers), besides a
// sparse_embedding model's "rows" (into *rows; null without one).
StatusOr<const onnx::ValueInfoProto*> FindInput(const onnx::GraphProto& graph, const GraphConstants& constants,
                                                const onnx::ValueInfoProto** rows) {
  const onnx::ValueInfoProto* input = nullptr;
  *rows = nullptr;
  for (const onnx::ValueInfoProto& v : graph.input()) {
    if (constants.initializers.count(v.name())) continue;
    if (v.name() == kOnnxSparseRowsName && *rows == nullptr) {
      *rows = &v;
      continue;
    }
    if (input != nullptr) {
      return InvalidArgumentError("the graph has more than one input ('" + input->name() + "', '" + v.name() + "')");
    }
    input = &v;
  }
  if (input == nullptr) return InvalidArgumentError("the graph has no input");
  return input;
}

// Weights computed from initializers alone (fp16 Casts, int8
// DequantizeLinear): not part of the chain; a layer reads them as it reads
// an initializer. Returns which nodes they are.
StatusOr<std::vector<bool>> CollectDerivedWeights(const onnx::GraphProto& graph, GraphConstants* constants) {
  std::vector<bool> weight_node(graph.node_size(), false);
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    if ((node.op_type() != "Cast" && node.op_type() != "DequantizeLinear") || node.input_size() < 1 ||
        !constants->initializers.count(node.input(0))) {
      continue;
    }
    ASSIGN_OR_RETURN(onnx_import::DerivedWeight w,
                     onnx_import::ReadDerivedWeight(node, NodeWhere(node, i), constants->initializers));
    if (constants->initializers.count(node.output(0)) || !constants->derived.emplace(node.output(0), w).second) {
      return InvalidArgumentError(NodeWhere(node, i) + ": output '" + node.output(0) + "' is defined twice");
    }
    weight_node[i] = true;
  }
  return weight_node;
}

// The node's inputs other than the chain's (input `data_input`) into
// node->params: initializers or derived weights, each used once.
Status TakeParams(int data_input, GraphConstants* constants, ChainNode* node) {
  const onnx::NodeProto& n = *node->node;
  for (int k = 0; k < n.input_size(); ++k) {
    if (k == data_input) continue;
    const std::string& name = n.input(k);
    if (name.empty()) return InvalidArgumentError(node->where + ": optional inputs left empty are not supported");
    if (!constants->Has(name)) return InvalidArgumentError(node->where + ": input '" + name + "' is not an initializer");
    if (!constants->used.insert(name).second) {
      return InvalidArgumentError(node->where + ": initializer '" + name + "' is used twice");
    }
    auto d = constants->derived.find(name);
    if (d != constants->derived.end()) {
      // An int8 weight (DequantizeLinear) is only a Conv's or Gemm's weight:
      // the layer reads its integers with the scales; anywhere else they
      // would be taken as plain floats.
      if (d->second.scale != nullptr && (k != 1 || (n.op_type() != "Conv" && n.op_type() != "Gemm"))) {
        return InvalidArgumentError(node->where + ": the dequantized int8 tensor '" + name +
                                    "' can only be a Conv's or Gemm's weight");
      }
      for (const onnx::TensorProto* t : {d->second.values, d->second.scale, d->second.zero_point}) {
        if (t != nullptr && !constants->used.insert(t->name()).second) {
          return InvalidArgumentError(node->where + ": initializer '" + t->name() + "' is used twice");
        }
      }
    }
    node->params.push_back(name);
  }
  return OkStatus();
}

// What every node of the chain must be, whatever its op: in the default
// domain, reading the chain's current value, with one output and
// initializers as its other inputs (into node->params).
Status CheckChainNode(ChainState* state, ChainNode* node) {
  const onnx::NodeProto& n = *node->node;
  const std::string& where = node->where;
  const std::string& op = n.op_type();
  if (!n.domain().empty() && n.domain() != "ai.onnx") {
    return InvalidArgumentError(where + ": domain '" + n.domain() + "' is not supported");
  }
  if (state->softmax_seen) return InvalidArgumentError(where + ": no node may follow the Softmax or Sigmoid");
  if (state->pending_ids.has_value() && op != "Gather") {
    return InvalidArgumentError(where + ": the embedding ids '" + *state->pending_ids +
                                "' (Round, Cast to int64) must feed a Gather of the embedding weight");
  }
  // A Gather (an embedding) reads the chain as its indices, input 1; every
  // other node as input 0.
  const int data_input = op == "Gather" ? 1 : 0;
  if (op == "Gather" && (n.input_size() != 2 || n.input(1) != state->current)) {
    return InvalidArgumentError(where + ": a Gather must have two inputs, an embedding weight (an initializer) and "
                                "the ids '" + state->current + "' as its indices (Tessera's embedding: Round, Cast "
                                "to int64, Gather)");
  }
  if (n.input_size() <= data_input || n.input(data_input) != state->current) {
    return InvalidArgumentError(where + ": reads '" + (n.input_size() ? n.input(0) : std::string()) + "', not '" +
                                state->current + "' (Tessera runs a chain of layers, each reading the one before)");
  }
  if (n.output_size() != 1) return InvalidArgumentError(where + ": must have exactly one output");
  RETURN_IF_ERROR(TakeParams(data_input, state->constants, node));
  const int i = node->index;
  if (state->pending_int8.has_value() && op != "Conv" && op != "Gemm" &&
      !(op == "Flatten" && i + 1 < state->graph->node_size() && state->graph->node(i + 1).op_type() == "Gemm")) {
    return InvalidArgumentError(where + ": a quantized input must feed a Conv or Gemm");
  }
  return OkStatus();
}

// Walks the chain from the graph's input, each node through its op's reader.
Status ReadChain(const std::vector<bool>& weight_node, ChainState* state) {
  const onnx::GraphProto& graph = *state->graph;
  while (state->next_node < graph.node_size()) {
    ChainNode node;
    node.index = state->next_node++;
    if (weight_node[node.index]) continue;
    node.node = &graph.node(node.index);
    node.where = NodeWhere(*node.node, node.index);
    RETURN_IF_ERROR(CheckChainNode(state, &node));
    const onnx_import::OpReader read = onnx_import::FindOpReader(node.node->op_type());
    if (read == nullptr) {
      return InvalidArgumentError(node.where + ": op " + node.node->op_type() + " is not supported (Tessera reads "
                                  "Conv, Relu, MaxPool, Flatten, Gemm, BatchNormalization, Softmax, Identity, and "
                                  "Round, Cast, Gather, Slice, Add, Concat, Reshape, QuantizeLinear and DequantizeLinear "
                                  "in the forms it exports)");
    }
    RETURN_IF_ERROR(read(&node, state));
  }
  return OkStatus();
}

// The chain must end in the logits [N, classes] (a regression: the value
// [N, 1]), with nothing left pending.
Status CheckChainEnd(const ChainState& state) {
  if (state.pending_int8.has_value()) return InvalidArgumentError("the graph ends in a quantized value no layer reads");
  if (state.pending_ids.has_value()) return InvalidArgumentError("the graph ends in embedding ids no Gather reads");
  if (state.out->spec.layer_size() == 0) return InvalidArgumentError("the graph has no layer");
  const bool value = state.logits_value == kOnnxValueName && !state.softmax_seen;
  if (state.current != state.logits_value || (state.logits_value != kOnnxLogitsName && !value)) {
    return InvalidArgumentError("the last layer must output '" + std::string(kOnnxLogitsName) + "' (a regression: '" +
                                kOnnxValueName + "'), it outputs '" + state.current + "'");
  }
  if (value && state.shape != Shape{1}) {
    return InvalidArgumentError("a regression's value must be [N, 1], the last layer gives " + ShapeText(state.shape));
  }
  if (state.shape.size() != 1 || state.shape[0] > std::numeric_limits<int>::max()) {
    return InvalidArgumentError("the logits must be [N, classes], the last layer gives " + ShapeText(state.shape));
  }
  return OkStatus();
}

// Graph outputs: logits (a regression: value), and probabilities when there
// is the Softmax (a binary model's probability when there is the Sigmoid).
Status CheckGraphOutputs(const onnx::GraphProto& graph, const ImportedModel& out) {
  const std::string raw = TaskOutputName(out.task);
  const std::string head = out.task == Task::kBinary ? kOnnxProbabilityName : kOnnxProbabilitiesName;
  std::set<std::string> outputs;
  for (const onnx::ValueInfoProto& v : graph.output()) {
    if (v.name() != raw && !(out.has_probabilities && v.name() == head)) {
      return InvalidArgumentError("graph output '" + v.name() + "' is not supported (only " + raw +
                                  (out.task == Task::kRegression ? "" : " and " + head) + ")");
    }
    ASSIGN_OR_RETURN(const Shape dims, BatchedShape(v));
    if (dims != Shape{out.num_classes}) {
      return InvalidArgumentError("graph output '" + v.name() + "' is declared " + ShapeText(dims) +
                                  ", the layers give [" + std::to_string(out.num_classes) + "]");
    }
    outputs.insert(v.name());
  }
  if (!outputs.count(raw)) return InvalidArgumentError("the graph does not output '" + raw + "'");
  if (out.has_probabilities && !outputs.count(head)) {
    return InvalidArgumentError("the graph computes '" + head + "' but does not output it");
  }
  return OkStatus();
}

// The layers' parameters in key order into out->params, and out->precision.
Status CollectParams(const ChainState& state, ImportedModel* out) {
  bool any_fp16 = false;
  for (const auto& names : state.layer_params) {
    for (const std::string& name : names) {
      const onnx::TensorProto& t = state.constants->Values(name);
      any_fp16 |= t.data_type() == onnx::TensorProto::FLOAT16;
      ASSIGN_OR_RETURN(std::vector<float> values,
                       onnx_import::TensorFloats(
                           t, {onnx::TensorProto::FLOAT, onnx::TensorProto::FLOAT16, onnx::TensorProto::INT8}));
      out->params.insert(out->params.end(), values.begin(), values.end());
    }
  }
  out->precision = state.any_int8 ? "int8" : any_fp16 ? "fp16" : "fp32";
  return OkStatus();
}

}  // namespace

StatusOr<ImportedModel> ImportOnnxModel(const onnx::ModelProto& model) {
  RETURN_IF_ERROR(CheckOnnxModel(model));
  ImportedModel out;
  for (const onnx::StringStringEntryProto& p : model.metadata_props()) out.metadata[p.key()] = p.value();
  RETURN_IF_ERROR(CheckOpset(model));
  const onnx::GraphProto& graph = model.graph();
  GraphConstants constants;
  RETURN_IF_ERROR(CollectInitializers(graph, &constants));
  const onnx::ValueInfoProto* rows = nullptr;
  ASSIGN_OR_RETURN(const onnx::ValueInfoProto* input, FindInput(graph, constants, &rows));
  ASSIGN_OR_RETURN(out.input_shape, BatchedShape(*input));
  if (out.input_shape.size() != 1 && out.input_shape.size() != 3) {
    return InvalidArgumentError("the input must be [N, F] or [N, C, H, W], got " +
                                std::to_string(out.input_shape.size() + 1) + " dimensions");
  }
  out.input_name = input->name();
  ASSIGN_OR_RETURN(const std::vector<bool> weight_node, CollectDerivedWeights(graph, &constants));

  ChainState state;
  state.graph = &graph;
  state.constants = &constants;
  state.out = &out;
  state.current = input->name();
  state.shape = out.input_shape;
  if (rows != nullptr) {
    if (out.input_shape.size() != 1) return InvalidArgumentError("a sparse_embedding model's input must be [N, F]");
    RETURN_IF_ERROR(onnx_import::ReadSparseEmbedding(*rows, &state));
  }
  RETURN_IF_ERROR(ReadChain(weight_node, &state));
  RETURN_IF_ERROR(CheckChainEnd(state));
  out.num_classes = static_cast<int>(state.shape[0]);
  out.has_probabilities = state.softmax_seen;
  out.task = state.sigmoid_seen                      ? Task::kBinary
             : state.logits_value == kOnnxValueName ? Task::kRegression
                                                     : Task::kMultiClass;
  if (out.task == Task::kBinary) out.spec.set_loss(proto::SIGMOID_BINARY_CROSS_ENTROPY);
  if (out.task == Task::kRegression) out.spec.set_loss(proto::MEAN_SQUARED_ERROR);
  for (const auto& [name, t] : constants.initializers) {
    if (!constants.used.count(name)) return InvalidArgumentError("initializer '" + name + "' is not used by any node");
  }
  RETURN_IF_ERROR(CheckGraphOutputs(graph, out));
  RETURN_IF_ERROR(CollectParams(state, &out));
  return out;
}

StatusOr<ImportedModel> ImportOnnxBytes(const std::string& bytes) {
  onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromString(bytes)) return InvalidArgumentError("not an ONNX model (protobuf parse failed)");
  return ImportOnnxModel(model);
}

namespace {

// The model of model.onnx's `bytes`, its external data (when it has any)
// read from `version_dir`.
StatusOr<ImportedModel> ImportVersionModel(const std::string& bytes, const std::string& version_dir) {
  onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromString(bytes)) {
    return InvalidArgumentError("not an ONNX model (protobuf parse failed)");
  }
  RETURN_IF_ERROR(LoadExternalData(&model, version_dir));
  return ImportOnnxModel(model);
}

// The model's own copy of the normalization (metadata_props) must agree with
// the manifest's, as float32: how it was written.
Status CheckNormalizationMetadata(const ModelVersionFiles& files, const std::string& model_path) {
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
  return OkStatus();
}

}  // namespace

StatusOr<ModelVersionFiles> ReadModelVersion(const std::string& version_dir) {
  const std::string manifest_path = ManifestPath(version_dir), model_path = ModelFilePath(version_dir);
  if (!FileExists(manifest_path)) return NotFoundError(manifest_path + " does not exist");
  if (!FileExists(model_path)) return NotFoundError(model_path + " does not exist");
  ModelVersionFiles files;
  ASSIGN_OR_RETURN(files.manifest_json, ReadFileToString(manifest_path));
  ASSIGN_OR_RETURN(const ManifestFields manifest, ParseManifestFields(files.manifest_json, manifest_path));
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(model_path));
  if (static_cast<double>(bytes.size()) != manifest.file_bytes) {
    return InvalidArgumentError(model_path + " has " + std::to_string(bytes.size()) + " bytes, the manifest says " +
                                std::to_string(static_cast<int64_t>(manifest.file_bytes)));
  }
  files.sha256 = Sha256Hex(bytes.data(), bytes.size());
  if (files.sha256 != manifest.sha256) return InvalidArgumentError(model_path + " does not match the manifest's sha256");
  auto model = ImportVersionModel(bytes, version_dir);
  if (!model.ok()) return model.status().WithContext(model_path);
  files.model = std::move(model).value();
  ASSIGN_OR_RETURN(files.normalization, ParseManifestNormalization(files.manifest_json, manifest_path));
  RETURN_IF_ERROR(CheckNormalizationMetadata(files, model_path));
  ASSIGN_OR_RETURN(files.preprocessing, ParseManifestPreprocessing(files.manifest_json, manifest_path));
  if (files.preprocessing.task != files.model.task) {
    return InvalidArgumentError(manifest_path + ": task \"" + ManifestTaskName(files.preprocessing.task) +
                                "\", and model.onnx's outputs are a " + ManifestTaskName(files.model.task) +
                                " model's");
  }
  RETURN_IF_ERROR(CheckPreprocessingFitsModel(files.preprocessing, files.model.input_shape, files.model.num_classes,
                                              files.model.categorical_rows, manifest_path, files.model.sparse_features));
  if ((files.preprocessing.kind == InputKind::kCriteo) != (files.model.sparse_table != nullptr)) {
    return InvalidArgumentError(manifest_path + ": preprocessing \"" + InputKindName(files.preprocessing.kind) +
                                "\" does not fit the model: \"criteo\" goes with a sparse_embedding first layer, "
                                "and only it");
  }
  files.name = manifest.name;
  files.version = manifest.version;
  return files;
}

}  // namespace tessera
