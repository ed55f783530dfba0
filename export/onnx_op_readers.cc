#include "export/onnx_op_readers.h"

#include <cmath>
#include <limits>
#include <map>
#include "export/onnx_export.h"
#include "export/task_outputs.h"
#include "models/model.h"

namespace tessera {
namespace onnx_import {
namespace {

// The node after `node` in the graph; null when it is the last.
const onnx::NodeProto* NodeAfter(const ChainNode& node, const ChainState& state) {
  return node.index + 1 < state.graph->node_size() ? &state.graph->node(node.index + 1) : nullptr;
}

// An int8 weight (DequantizeLinear) needs its input quantized just before,
// and the reverse; then the layer computes in int8 (*spec gets the input's
// quantization), and its weight_scale tensor comes after its other
// parameters.
Status TakeInt8(ChainNode* node, ChainState* state, proto::Int8Spec* spec) {
  const DerivedWeight* int8_weight = state->constants->Int8Weight(node->params[0]);
  if ((int8_weight != nullptr) != state->pending_int8.has_value()) {
    return InvalidArgumentError(node->where + (int8_weight != nullptr
                                                   ? ": an int8 weight needs its input quantized just before "
                                                     "(QuantizeLinear, DequantizeLinear)"
                                                   : ": a quantized input needs an int8 weight"));
  }
  if (int8_weight == nullptr) return OkStatus();
  *spec = *state->pending_int8;
  state->pending_int8.reset();
  node->params.push_back(int8_weight->scale->name());
  state->any_int8 = true;
  return OkStatus();
}

Status NoParams(const ChainNode& node) {
  if (!node.params.empty()) return InvalidArgumentError(node.where + ": takes one input");
  return OkStatus();
}

Status ReadRelu(ChainNode* node, ChainState* state) {
  RETURN_IF_ERROR(OnlyAttributes(*node->node, {}, node->where));
  RETURN_IF_ERROR(NoParams(*node));
  proto::LayerSpec layer;
  layer.mutable_relu();
  return AddLayer(*node, layer, state);
}

Status ReadConv(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  const std::string& where = node->where;
  RETURN_IF_ERROR(OnlyAttributes(n, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"}, where));
  RETURN_IF_ERROR(NoAutoPad(n, where));
  if (node->params.empty() || node->params.size() > 2) {
    return InvalidArgumentError(where + ": needs inputs X, W and optionally B");
  }
  const Shape w = state->constants->Dims(node->params[0]);
  if (w.size() != 4) return InvalidArgumentError(where + ": weight '" + node->params[0] + "' must be 4-d [out, in, k, k]");
  ASSIGN_OR_RETURN(auto kernel_shape, IntsAttr(n, "kernel_shape", {w[2], w[3]}, where));
  ASSIGN_OR_RETURN(const int32_t kernel, Square(kernel_shape, 2, "kernel_shape", 1, where));
  ASSIGN_OR_RETURN(auto strides, IntsAttr(n, "strides", {1, 1}, where));
  ASSIGN_OR_RETURN(const int32_t stride, Square(strides, 2, "strides", 1, where));
  ASSIGN_OR_RETURN(auto pads, IntsAttr(n, "pads", {0, 0, 0, 0}, where));
  ASSIGN_OR_RETURN(const int32_t pad, Square(pads, 4, "pads", 0, where));
  ASSIGN_OR_RETURN(auto dilations, IntsAttr(n, "dilations", {1, 1}, where));
  ASSIGN_OR_RETURN(const int32_t dilation, Square(dilations, 2, "dilations", 1, where));
  if (dilation != 1) return InvalidArgumentError(where + ": dilations other than 1 are not supported");
  ASSIGN_OR_RETURN(const int64_t group, IntAttr(n, "group", 1, where));
  if (group != 1) return InvalidArgumentError(where + ": group " + std::to_string(group) + " is not supported (only 1)");
  if (w[0] < 1 || w[0] > std::numeric_limits<int32_t>::max()) return InvalidArgumentError(where + ": bad weight shape");
  proto::LayerSpec layer;
  proto::Conv2dSpec* c = layer.mutable_conv2d();
  c->set_out_channels(static_cast<int32_t>(w[0]));
  c->set_kernel_size(kernel);
  c->set_stride(stride);
  c->set_padding(pad);
  c->set_bias(node->params.size() == 2);
  RETURN_IF_ERROR(TakeInt8(node, state, c->mutable_int8()));
  if (!c->int8().has_input_scale()) c->clear_int8();
  return AddLayer(*node, layer, state);
}

Status ReadMaxPool(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  const std::string& where = node->where;
  RETURN_IF_ERROR(OnlyAttributes(
      n, {"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"}, where));
  RETURN_IF_ERROR(NoAutoPad(n, where));
  RETURN_IF_ERROR(NoParams(*node));
  ASSIGN_OR_RETURN(auto kernel_shape, IntsAttr(n, "kernel_shape", {}, where));
  ASSIGN_OR_RETURN(const int32_t kernel, Square(kernel_shape, 2, "kernel_shape", 1, where));
  ASSIGN_OR_RETURN(auto strides, IntsAttr(n, "strides", {1, 1}, where));
  ASSIGN_OR_RETURN(const int32_t stride, Square(strides, 2, "strides", 1, where));
  ASSIGN_OR_RETURN(auto pads, IntsAttr(n, "pads", {0, 0, 0, 0}, where));
  ASSIGN_OR_RETURN(const int32_t pad, Square(pads, 4, "pads", 0, where));
  if (pad != 0) return InvalidArgumentError(where + ": padded max pooling is not supported");
  ASSIGN_OR_RETURN(auto dilations, IntsAttr(n, "dilations", {1, 1}, where));
  ASSIGN_OR_RETURN(const int32_t dilation, Square(dilations, 2, "dilations", 1, where));
  if (dilation != 1) return InvalidArgumentError(where + ": dilations other than 1 are not supported");
  ASSIGN_OR_RETURN(const int64_t ceil_mode, IntAttr(n, "ceil_mode", 0, where));
  if (ceil_mode != 0) return InvalidArgumentError(where + ": ceil_mode 1 is not supported (Tessera floors)");
  proto::LayerSpec layer;
  proto::MaxPool2dSpec* p = layer.mutable_max_pool2d();
  p->set_kernel_size(kernel);
  p->set_stride(stride);
  return AddLayer(*node, layer, state);
}

Status ReadFlatten(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  RETURN_IF_ERROR(OnlyAttributes(n, {"axis"}, node->where));
  RETURN_IF_ERROR(NoParams(*node));
  ASSIGN_OR_RETURN(const int64_t axis, IntAttr(n, "axis", 1, node->where));
  if (axis != 1) {
    return InvalidArgumentError(node->where + ": axis " + std::to_string(axis) + " is not supported (only 1)");
  }
  // "layerI.linear.flatten_input" before layerI's Gemm: Linear flattens by
  // itself, so this is no layer, and the shape stays as it is for the Linear.
  const onnx::NodeProto* next = NodeAfter(*node, *state);
  if (next != nullptr && next->op_type() == "Gemm" && n.name() == next->name() + ".flatten_input") {
    state->current = n.output(0);
    return OkStatus();
  }
  proto::LayerSpec layer;
  layer.mutable_flatten();
  return AddLayer(*node, layer, state);
}

Status ReadGemm(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  const std::string& where = node->where;
  RETURN_IF_ERROR(OnlyAttributes(n, {"alpha", "beta", "transA", "transB"}, where));
  ASSIGN_OR_RETURN(const float alpha, FloatAttr(n, "alpha", 1.0f, where));
  ASSIGN_OR_RETURN(const float beta, FloatAttr(n, "beta", 1.0f, where));
  ASSIGN_OR_RETURN(const int64_t trans_a, IntAttr(n, "transA", 0, where));
  ASSIGN_OR_RETURN(const int64_t trans_b, IntAttr(n, "transB", 0, where));
  if (alpha != 1.0f || beta != 1.0f || trans_a != 0 || trans_b != 1) {
    return InvalidArgumentError(where + ": only alpha 1, beta 1, transA 0, transB 1 are supported");
  }
  if (node->params.empty() || node->params.size() > 2) {
    return InvalidArgumentError(where + ": needs inputs A, B and optionally C");
  }
  const Shape w = state->constants->Dims(node->params[0]);
  if (w.size() != 2 || w[0] < 1 || w[0] > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(where + ": B '" + node->params[0] + "' must be [out, in]");
  }
  proto::LayerSpec layer;
  proto::LinearSpec* l = layer.mutable_linear();
  l->set_out_features(static_cast<int32_t>(w[0]));
  l->set_bias(node->params.size() == 2);
  RETURN_IF_ERROR(TakeInt8(node, state, l->mutable_int8()));
  if (!l->int8().has_input_scale()) l->clear_int8();
  return AddLayer(*node, layer, state);
}

Status ReadBatchNormalization(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  RETURN_IF_ERROR(OnlyAttributes(n, {"epsilon", "momentum", "training_mode"}, node->where));
  ASSIGN_OR_RETURN(const int64_t training, IntAttr(n, "training_mode", 0, node->where));
  if (training != 0) return InvalidArgumentError(node->where + ": training_mode 1 is not supported");
  ASSIGN_OR_RETURN(const float epsilon, FloatAttr(n, "epsilon", 1e-5f, node->where));
  if (node->params.size() != 4) return InvalidArgumentError(node->where + ": needs inputs X, scale, B, mean, var");
  proto::LayerSpec layer;
  layer.mutable_batch_norm()->set_epsilon(epsilon);
  return AddLayer(*node, layer, state);
}

// True when `dq` is a DequantizeLinear of `q`'s output with q's scale and
// zero point (an axis attribute at most).
bool DequantizesSame(const onnx::NodeProto* dq, const onnx::NodeProto& q, const std::vector<std::string>& params) {
  return dq != nullptr && dq->op_type() == "DequantizeLinear" && dq->input_size() == 3 &&
         dq->input(0) == q.output(0) && dq->input(1) == params[0] && dq->input(2) == params[1] &&
         dq->output_size() == 1 && dq->attribute_size() <= 1 &&
         (dq->attribute_size() == 0 || dq->attribute(0).name() == "axis");
}

// With the DequantizeLinear right after it (same scale and zero point): the
// next layer's input quantization. Reads both nodes.
Status ReadQuantizeLinear(ChainNode* node, ChainState* state) {
  const std::string& where = node->where;
  const std::vector<std::string>& params = node->params;
  RETURN_IF_ERROR(OnlyAttributes(*node->node, {"axis"}, where));
  if (params.size() != 2) return InvalidArgumentError(where + ": needs inputs x, scale and zero point");
  const auto& inits = state->constants->initializers;
  if (!inits.count(params[0]) || !inits.count(params[1])) {
    return InvalidArgumentError(where + ": the scale and zero point must be initializers");
  }
  const onnx::TensorProto& scale = *inits.at(params[0]);
  const onnx::TensorProto& zero_point = *inits.at(params[1]);
  if (scale.dims_size() != 0 || zero_point.dims_size() != 0) {
    return InvalidArgumentError(where + ": activations must be quantized per tensor (scalar scale and zero point)");
  }
  const bool is_unsigned = zero_point.data_type() == onnx::TensorProto::UINT8;
  ASSIGN_OR_RETURN(const std::vector<float> s, TensorFloats(scale));
  ASSIGN_OR_RETURN(const std::vector<float> z,
                   TensorFloats(zero_point, {onnx::TensorProto::INT8, onnx::TensorProto::UINT8}));
  if (!std::isnormal(s[0]) || s[0] < 0) {
    return InvalidArgumentError(where + ": the scale must be finite and > 0 (a normal float)");
  }
  if (z[0] != 0.0f) return InvalidArgumentError(where + ": the zero point must be 0");
  const onnx::NodeProto* dq = NodeAfter(*node, *state);
  if (!DequantizesSame(dq, *node->node, params)) {
    return InvalidArgumentError(where + ": must be followed by a DequantizeLinear of its output with the same "
                                "scale and zero point");
  }
  proto::Int8Spec spec;
  spec.set_input_scale(s[0]);
  spec.set_input_unsigned(is_unsigned);
  state->pending_int8 = spec;
  state->current = dq->output(0);
  ++state->next_node;
  return OkStatus();
}

// Tessera's embedding, three nodes: Round (half to even, as Tessera rounds),
// Cast to int64, Gather(weight, ids, axis 0). Reads the Round and the Cast;
// the Gather must come next.
Status ReadRound(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  RETURN_IF_ERROR(OnlyAttributes(n, {}, node->where));
  RETURN_IF_ERROR(NoParams(*node));
  const onnx::NodeProto* cast = NodeAfter(*node, *state);
  if (cast == nullptr || cast->op_type() != "Cast" || cast->input_size() != 1 || cast->input(0) != n.output(0) ||
      cast->output_size() != 1) {
    return InvalidArgumentError(node->where + ": must be followed by a Cast of its output to int64 and a Gather by "
                                "those ids (Tessera reads Round only as an embedding's ids)");
  }
  const std::string cast_where = NodeWhere(*cast, node->index + 1);
  RETURN_IF_ERROR(OnlyAttributes(*cast, {"to"}, cast_where));
  ASSIGN_OR_RETURN(const int64_t to, IntAttr(*cast, "to", -1, cast_where));
  if (to != onnx::TensorProto::INT64) {
    return InvalidArgumentError(cast_where + ": an embedding's ids must be cast to int64 (to = " +
                                std::to_string(onnx::TensorProto::INT64) + "), got to = " + std::to_string(to));
  }
  state->pending_ids = cast->output(0);
  state->current = cast->output(0);
  ++state->next_node;
  return OkStatus();
}

Status ReadGather(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  const std::string& where = node->where;
  if (!state->pending_ids.has_value()) {
    return InvalidArgumentError(where + ": a Gather must read ids made by a Round and a Cast to int64 (Tessera's "
                                "embedding)");
  }
  RETURN_IF_ERROR(OnlyAttributes(n, {"axis"}, where));
  ASSIGN_OR_RETURN(const int64_t axis, IntAttr(n, "axis", 0, where));
  if (axis != 0) {
    return InvalidArgumentError(where + ": axis " + std::to_string(axis) +
                                " is not supported (an embedding gathers rows: axis 0)");
  }
  const Shape w = state->constants->Dims(node->params[0]);
  if (w.size() != 2 || w[0] < 1 || w[1] < 1 || w[0] > std::numeric_limits<int32_t>::max() ||
      w[1] > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(where + ": the embedding weight '" + node->params[0] +
                                "' must be [num_embeddings, dim], got " + ShapeText(w));
  }
  if (state->out->spec.layer_size() != 0 || LayerNumber(n.name()) > 0) {
    return InvalidArgumentError(where + ": an embedding must be the first layer (its inputs are the model's input, "
                                "as ids)");
  }
  proto::LayerSpec layer;
  proto::EmbeddingSpec* e = layer.mutable_embedding();
  e->set_num_embeddings(static_cast<int32_t>(w[0]));
  e->set_embedding_dim(static_cast<int32_t>(w[1]));
  state->pending_ids.reset();
  return AddLayer(*node, layer, state);
}

// A Cast in the chain is read only by ReadRound, as the node after a Round.
Status ReadCast(ChainNode* node, ChainState*) {
  return InvalidArgumentError(node->where + ": a Cast in the chain is read only as an embedding's ids, right after a "
                              "Round (a Cast alone would truncate, not round); other Casts only turn float16 "
                              "weights into float");
}

Status ReadIdentity(ChainNode* node, ChainState* state) {
  RETURN_IF_ERROR(NoParams(*node));
  state->logits_value = node->node->output(0);
  state->current = node->node->output(0);
  return OkStatus();
}

// The optional last node: probabilities from the logits, which stay the
// chain's current value.
Status ReadSoftmax(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  RETURN_IF_ERROR(OnlyAttributes(n, {"axis"}, node->where));
  ASSIGN_OR_RETURN(const int64_t axis, IntAttr(n, "axis", -1, node->where));
  if (axis != 1 && axis != -1) return InvalidArgumentError(node->where + ": axis must be 1");
  RETURN_IF_ERROR(NoParams(*node));
  if (n.output(0) != kOnnxProbabilitiesName) {
    return InvalidArgumentError(node->where + ": the Softmax must output '" + std::string(kOnnxProbabilitiesName) +
                                "'");
  }
  state->softmax_seen = true;
  return OkStatus();
}

// The optional last node of a binary model: the probability of class 1 from
// its one logit, which stays the chain's current value.
Status ReadSigmoid(ChainNode* node, ChainState* state) {
  const onnx::NodeProto& n = *node->node;
  RETURN_IF_ERROR(OnlyAttributes(n, {}, node->where));
  RETURN_IF_ERROR(NoParams(*node));
  if (n.output(0) != kOnnxProbabilityName) {
    return InvalidArgumentError(node->where + ": the Sigmoid must output '" + std::string(kOnnxProbabilityName) + "'");
  }
  if (state->shape != Shape{1}) {
    return InvalidArgumentError(node->where + ": the Sigmoid must read one logit per example, not " +
                                ShapeText(state->shape));
  }
  state->softmax_seen = true;
  state->sigmoid_seen = true;
  return OkStatus();
}

}  // namespace

// Appends `layer` to the spec, checked against the node's parameters. A
// layer number in the node name ("layer4.relu") fills Tessera's dropout
// layers (no node) back in where numbers skip.
Status AddLayer(const ChainNode& node, const proto::LayerSpec& layer, ChainState* state) {
  proto::ModelSpec& spec = state->out->spec;
  const int64_t number = LayerNumber(node.node->name());
  while (number > spec.layer_size() && number < 100000) {
    spec.add_layer()->mutable_dropout();
    state->layer_params.emplace_back();
  }
  auto created = CreateModelLayer(layer, state->shape, state->out->categorical_rows);
  if (!created.ok()) return created.status().WithContext(node.where);
  const std::vector<ParamShape> wants = (*created)->param_shapes();
  if (wants.size() != node.params.size()) {
    return InvalidArgumentError(node.where + ": has " + std::to_string(node.params.size()) +
                                " parameter inputs, the layer wants " + std::to_string(wants.size()));
  }
  for (size_t k = 0; k < wants.size(); ++k) {
    const Shape dims = state->constants->Dims(node.params[k]);
    if (dims != wants[k].shape) {
      return InvalidArgumentError(node.where + ": initializer '" + node.params[k] + "' has shape " + ShapeText(dims) +
                                  ", the layer wants " + ShapeText(wants[k].shape) + " (" + wants[k].name + ")");
    }
  }
  *spec.add_layer() = layer;
  state->layer_params.push_back(node.params);
  state->shape = (*created)->out_shape();
  state->logits_value = node.node->output(0);
  state->current = node.node->output(0);
  return OkStatus();
}

OpReader FindOpReader(const std::string& op) {
  static const std::map<std::string, OpReader> kReaders = {
      {"Relu", ReadRelu},
      {"Conv", ReadConv},
      {"MaxPool", ReadMaxPool},
      {"Flatten", ReadFlatten},
      {"Gemm", ReadGemm},
      {"BatchNormalization", ReadBatchNormalization},
      {"QuantizeLinear", ReadQuantizeLinear},
      {"Round", ReadRound},
      {"Gather", ReadGather},
      {"Slice", ReadColumnEmbedding},
      {"Cast", ReadCast},
      {"Identity", ReadIdentity},
      {"Softmax", ReadSoftmax},
      {"Sigmoid", ReadSigmoid},
      {"Reshape", ReadSparseLinear},
  };
  auto it = kReaders.find(op);
  return it == kReaders.end() ? nullptr : it->second;
}

}  // namespace onnx_import
}  // namespace tessera
