// ONNX import of Tessera's sparse_linear first layer: exactly the thirteen
// nodes export/onnx_export.cc's AddSparseLinear writes, in its order, read
// as one layer (docs/FORMATS.md, "model.onnx"). Every node's op, inputs,
// attributes and constant initializers are checked; anything else is
// InvalidArgument naming the node.
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "export/onnx_op_readers.h"
#include "models/sparse_linear.h"

namespace tessera {
namespace onnx_import {
namespace {

// One input of a pattern node: another pattern node's output, a constant
// initializer holding exactly `values` (int64, or float32 when is_float) of
// `dims`, or the layer's weight or bias.
struct PatternInput {
  enum Kind { kNode, kConstant, kWeight, kBias } kind = kNode;
  int node = 0;  // kNode: the pattern node whose output this is (0: the Reshape)
  std::vector<int64_t> dims, values;
  bool is_float = false;
};

struct PatternNode {
  const char* op;
  std::vector<PatternInput> inputs;
  std::vector<std::pair<std::string, int64_t>> ints;  // every attribute, each an int with this value
};

PatternInput Node(int node) { return {PatternInput::kNode, node, {}, {}, false}; }
PatternInput Int64(std::vector<int64_t> dims, std::vector<int64_t> values) {
  return {PatternInput::kConstant, 0, std::move(dims), std::move(values), false};
}
PatternInput FloatZero() { return {PatternInput::kConstant, 0, {}, {0}, true}; }
PatternInput Param(PatternInput::Kind kind) { return {kind, 0, {}, {}, false}; }

// The nodes after the Reshape (node 0), in the exporter's order.
std::vector<PatternNode> SparseLinearPattern() {
  return {
      {"Gather", {Node(0), Int64({}, {0})}, {{"axis", 2}}},                // 1: indexes [N, K]
      {"Gather", {Node(0), Int64({}, {1})}, {{"axis", 2}}},                // 2: values [N, K]
      {"Round", {Node(1)}, {}},                                            // 3
      {"Cast", {Node(3)}, {{"to", onnx::TensorProto::INT64}}},             // 4: ids
      {"Less", {Node(4), Int64({}, {0})}, {}},                             // 5: padding pairs
      {"Max", {Node(4), Int64({}, {0})}, {}},                              // 6: rows, padding's 0
      {"Where", {Node(5), FloatZero(), Node(2)}, {}},                      // 7: values, padding's 0
      {"Unsqueeze", {Node(7), Int64({1}, {2})}, {}},                       // 8: [N, K, 1]
      {"Gather", {Param(PatternInput::kWeight), Node(6)}, {{"axis", 0}}},  // 9: rows [N, K, out]
      {"Mul", {Node(9), Node(8)}, {}},                                     // 10
      {"ReduceSum", {Node(10), Int64({1}, {1})}, {{"keepdims", 0}}},       // 11: over the pairs
      {"Add", {Node(11), Param(PatternInput::kBias)}, {}},                 // 12: the layer's output
  };
}

// An int64 initializer's values, checked against its dims.
StatusOr<std::vector<int64_t>> Int64Values(const onnx::TensorProto& t, const std::string& where) {
  if (t.data_type() != onnx::TensorProto::INT64 || t.data_location() == onnx::TensorProto::EXTERNAL ||
      t.external_data_size() > 0 || t.has_segment()) {
    return InvalidArgumentError(where + ": initializer '" + t.name() + "' must be an int64 tensor in the file");
  }
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > 16) return InvalidArgumentError(where + ": initializer '" + t.name() + "' has impossible dims");
    n *= d;
  }
  std::vector<int64_t> values(n);
  if (t.has_raw_data()) {
    if (t.raw_data().size() != values.size() * sizeof(int64_t)) {
      return InvalidArgumentError(where + ": initializer '" + t.name() + "' holds " +
                                  std::to_string(t.raw_data().size()) + " bytes, its dims want " +
                                  std::to_string(n * 8));
    }
    std::memcpy(values.data(), t.raw_data().data(), t.raw_data().size());  // little-endian, as ONNX
    return values;
  }
  if (t.int64_data_size() != n) {
    return InvalidArgumentError(where + ": initializer '" + t.name() + "' holds " +
                                std::to_string(t.int64_data_size()) + " values, its dims want " + std::to_string(n));
  }
  values.assign(t.int64_data().begin(), t.int64_data().end());
  return values;
}

// Marks initializer `name` used; InvalidArgument when a node took it before.
Status Use(const std::string& name, const std::string& where, GraphConstants* constants) {
  if (!constants->used.insert(name).second) {
    return InvalidArgumentError(where + ": initializer '" + name + "' is used twice");
  }
  return OkStatus();
}

// A constant input: an initializer of exactly the pattern's dims and values.
Status CheckConstant(const std::string& name, const PatternInput& want, const std::string& where,
                     GraphConstants* constants) {
  auto it = constants->initializers.find(name);
  if (it == constants->initializers.end()) {
    return InvalidArgumentError(where + ": input '" + name + "' must be a constant initializer");
  }
  const onnx::TensorProto& t = *it->second;
  const std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  bool same = dims == want.dims;
  if (same && want.is_float) {
    ASSIGN_OR_RETURN(const std::vector<float> v, TensorFloats(t));
    same = v.size() == 1 && v[0] == static_cast<float>(want.values[0]);
  } else if (same) {
    ASSIGN_OR_RETURN(const std::vector<int64_t> v, Int64Values(t, where));
    same = v == want.values;
  }
  if (!same) {
    std::string text;
    for (int64_t v : want.values) text += (text.empty() ? "" : ", ") + std::to_string(v);
    return InvalidArgumentError(where + ": initializer '" + name + "' must be " + (want.is_float ? "float" : "int64") +
                                " " + ShapeText(want.dims) + " holding " + text + " (Tessera's sparse_linear)");
  }
  return Use(name, where, constants);
}

// The weight or bias: a float32 initializer or a float16 one Cast to float.
Status TakeParam(const std::string& name, const std::string& where, GraphConstants* constants,
                 std::vector<std::string>* params) {
  if (!constants->Has(name) || constants->Int8Weight(name) != nullptr) {
    return InvalidArgumentError(where + ": input '" + name + "' must be a float32 or float16 initializer");
  }
  RETURN_IF_ERROR(Use(name, where, constants));
  auto derived = constants->derived.find(name);
  if (derived != constants->derived.end()) RETURN_IF_ERROR(Use(derived->second.values->name(), where, constants));
  params->push_back(name);
  return OkStatus();
}

// Node `index` of the graph as pattern node `want`, whose outputs so far are `outputs`.
Status CheckPatternNode(const PatternNode& want, int index, const std::vector<std::string>& outputs,
                        ChainState* state, std::vector<std::string>* params) {
  if (index >= state->graph->node_size()) {
    return InvalidArgumentError("the graph ends inside a sparse_linear layer: expected a " + std::string(want.op) +
                                " after node " + std::to_string(index - 1));
  }
  const onnx::NodeProto& n = state->graph->node(index);
  const std::string where = NodeWhere(n, index);
  if (n.op_type() != want.op || (!n.domain().empty() && n.domain() != "ai.onnx")) {
    return InvalidArgumentError(where + ": expected a " + want.op + " (node " + std::to_string(outputs.size()) +
                                " of Tessera's sparse_linear, which starts with a Reshape of the input)");
  }
  if (n.output_size() != 1 || n.output(0).empty() || n.input_size() != static_cast<int>(want.inputs.size())) {
    return InvalidArgumentError(where + ": must have " + std::to_string(want.inputs.size()) +
                                " inputs and one output");
  }
  std::set<std::string> names;
  for (const auto& [name, value] : want.ints) names.insert(name);
  RETURN_IF_ERROR(OnlyAttributes(n, names, where));
  for (const auto& [name, value] : want.ints) {
    ASSIGN_OR_RETURN(const int64_t got, IntAttr(n, name, std::numeric_limits<int64_t>::min(), where));
    if (got != value) {
      return InvalidArgumentError(where + ": attribute " + name + " must be " + std::to_string(value) + ", got " +
                                  (got == std::numeric_limits<int64_t>::min() ? "none" : std::to_string(got)));
    }
  }
  for (size_t k = 0; k < want.inputs.size(); ++k) {
    const PatternInput& in = want.inputs[k];
    const std::string& name = n.input(static_cast<int>(k));
    if (in.kind == PatternInput::kNode && name != outputs[in.node]) {
      return InvalidArgumentError(where + ": input " + std::to_string(k) + " must be '" + outputs[in.node] +
                                  "', got '" + name + "'");
    }
    if (in.kind == PatternInput::kConstant) RETURN_IF_ERROR(CheckConstant(name, in, where, state->constants));
    if (in.kind == PatternInput::kWeight || in.kind == PatternInput::kBias) {
      RETURN_IF_ERROR(TakeParam(name, where, state->constants, params));
    }
  }
  for (const std::string& o : outputs) {
    if (o == n.output(0)) return InvalidArgumentError(where + ": output '" + o + "' is defined twice");
  }
  return OkStatus();
}

}  // namespace

Status ReadSparseLinear(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& reshape = *node->node;
  const std::string& where = node->where;
  if (state->out->spec.layer_size() != 0 || LayerNumber(reshape.name()) > 0) {
    return InvalidArgumentError(where + ": Tessera reads a Reshape only as the start of a sparse_linear first layer");
  }
  const int64_t values = state->shape.size() == 1 ? state->shape[0] : 0;
  if (values < 2 || values % 2 != 0) {
    return InvalidArgumentError(where + ": a sparse_linear's input must be [N, 2K] ((index, value) pairs), got " +
                                ShapeText(state->shape));
  }
  const int64_t pairs = values / 2;
  RETURN_IF_ERROR(OnlyAttributes(reshape, {}, where));
  if (node->params.size() != 1 || !state->constants->initializers.count(node->params[0])) {
    return InvalidArgumentError(where + ": needs the input and a shape initializer");
  }
  const std::vector<int64_t> want_shape = {0, pairs, 2};
  ASSIGN_OR_RETURN(const std::vector<int64_t> shape,
                   Int64Values(*state->constants->initializers.at(node->params[0]), where));
  if (shape != want_shape) {
    return InvalidArgumentError(where + ": the shape must be [0, " + std::to_string(pairs) + ", 2] (pairs)");
  }
  std::vector<std::string> outputs = {reshape.output(0)};
  std::vector<std::string> params;  // weight, bias
  const std::vector<PatternNode> pattern = SparseLinearPattern();
  for (const PatternNode& want : pattern) {
    RETURN_IF_ERROR(CheckPatternNode(want, node->index + static_cast<int>(outputs.size()), outputs, state, &params));
    outputs.push_back(state->graph->node(node->index + static_cast<int>(outputs.size())).output(0));
  }
  const Shape weight = state->constants->Dims(params[0]), bias = state->constants->Dims(params[1]);
  if (weight.size() != 2 || weight[1] < 1 || weight[1] > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(where + ": the sparse_linear weight '" + params[0] +
                                "' must be [num_features, out_features], got " + ShapeText(weight));
  }
  proto::LayerSpec layer;
  layer.mutable_sparse_linear()->set_out_features(static_cast<int32_t>(weight[1]));
  auto created = CreateSparseLinear(layer.sparse_linear(), {pairs, 2}, weight[0]);
  if (!created.ok()) return created.status().WithContext(where);
  if (bias != Shape{weight[1]}) {
    return InvalidArgumentError(where + ": the sparse_linear bias '" + params[1] + "' has shape " + ShapeText(bias) +
                                ", the layer wants [" + std::to_string(weight[1]) + "]");
  }
  *state->out->spec.add_layer() = layer;
  state->out->sparse_features = weight[0];
  state->layer_params.push_back(params);
  state->shape = (*created)->out_shape();
  state->current = outputs.back();
  state->logits_value = outputs.back();
  state->next_node = node->index + static_cast<int>(outputs.size());
  return OkStatus();
}

}  // namespace onnx_import
}  // namespace tessera
