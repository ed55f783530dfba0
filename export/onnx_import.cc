#include "export/onnx_import.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
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

// An initializer's values as floats, checked against its dims: float32
// (raw_data or float_data), float16, int8 or uint8 (raw_data or int32_data).
// `want` lists the element types the caller accepts.
StatusOr<std::vector<float>> TensorFloats(const onnx::TensorProto& t,
                                          std::initializer_list<int> want = {onnx::TensorProto::FLOAT}) {
  const std::string where = "initializer '" + t.name() + "'";
  if (std::find(want.begin(), want.end(), t.data_type()) == want.end()) {
    return InvalidArgumentError(where + " has element type " + std::to_string(t.data_type()) +
                                ", not one this place takes");
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
  const size_t element_bytes = t.data_type() == onnx::TensorProto::FLOAT     ? 4
                               : t.data_type() == onnx::TensorProto::FLOAT16 ? 2
                                                                              : 1;
  std::vector<float> values(n);
  auto from_bits = [&](int64_t i, uint32_t bits) {
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT16: {
        const uint16_t half_bits = static_cast<uint16_t>(bits);
        _Float16 h;
        std::memcpy(&h, &half_bits, sizeof(h));
        values[i] = static_cast<float>(h);
        break;
      }
      case onnx::TensorProto::INT8:
        values[i] = static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(bits)));
        break;
      default:  // UINT8
        values[i] = static_cast<float>(static_cast<uint8_t>(bits));
    }
  };
  if (t.has_raw_data()) {
    if (t.raw_data().size() != static_cast<uint64_t>(n) * element_bytes) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.raw_data().size()) + " bytes, its dims want " +
                                  std::to_string(n * element_bytes));
    }
    const char* raw = t.raw_data().data();
    if (t.data_type() == onnx::TensorProto::FLOAT) {
      if (n > 0) std::memcpy(values.data(), raw, n * sizeof(float));
    } else {
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = 0;
        std::memcpy(&bits, raw + i * element_bytes, element_bytes);
        from_bits(i, bits);
      }
    }
  } else if (t.data_type() == onnx::TensorProto::FLOAT) {
    if (t.float_data_size() != n) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.float_data_size()) + " floats, its dims want " +
                                  std::to_string(n));
    }
    values.assign(t.float_data().begin(), t.float_data().end());
  } else {
    if (t.int32_data_size() != n) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.int32_data_size()) + " values, its dims want " +
                                  std::to_string(n));
    }
    for (int64_t i = 0; i < n; ++i) from_bits(i, static_cast<uint32_t>(t.int32_data(static_cast<int>(i))));
  }
  return values;
}

// A weight computed from initializers alone by a node outside the chain:
// a float16 initializer Cast to float, or an int8 one through DequantizeLinear.
struct DerivedWeight {
  const onnx::TensorProto* values = nullptr;       // float16 or int8
  const onnx::TensorProto* scale = nullptr;        // DequantizeLinear only: [out] float
  const onnx::TensorProto* zero_point = nullptr;   // DequantizeLinear only, may be null
};

// The Cast or DequantizeLinear node `node` (reading initializer input 0) as a
// DerivedWeight, checked: Cast float16 -> float; DequantizeLinear of an int8
// tensor along axis 0 with float scales [out] and zero points 0.
StatusOr<DerivedWeight> ReadDerivedWeight(const onnx::NodeProto& node, const std::string& where,
                                          const std::map<std::string, const onnx::TensorProto*>& inits) {
  DerivedWeight w;
  if (node.output_size() != 1) return InvalidArgumentError(where + ": must have exactly one output");
  std::vector<const onnx::TensorProto*> in;
  for (const std::string& name : node.input()) {
    auto it = inits.find(name);
    if (it == inits.end()) return InvalidArgumentError(where + ": input '" + name + "' is not an initializer");
    in.push_back(it->second);
  }
  w.values = in[0];
  if (node.op_type() == "Cast") {
    RETURN_IF_ERROR(OnlyAttributes(node, {"to"}, where));
    ASSIGN_OR_RETURN(const int64_t to, IntAttr(node, "to", 0, where));
    if (in.size() != 1 || to != onnx::TensorProto::FLOAT || w.values->data_type() != onnx::TensorProto::FLOAT16) {
      return InvalidArgumentError(where + ": only a float16 initializer cast to float is supported");
    }
    return w;
  }
  RETURN_IF_ERROR(OnlyAttributes(node, {"axis"}, where));
  ASSIGN_OR_RETURN(const int64_t axis, IntAttr(node, "axis", 1, where));
  if (in.size() < 2 || w.values->data_type() != onnx::TensorProto::INT8 || w.values->dims_size() < 1) {
    return InvalidArgumentError(where + ": a weight's DequantizeLinear must read an int8 tensor and its scales");
  }
  w.scale = in[1];
  w.zero_point = in.size() > 2 ? in[2] : nullptr;
  const int64_t out = w.values->dims(0);
  if (axis != 0 || w.scale->dims_size() != 1 || w.scale->dims(0) != out) {
    return InvalidArgumentError(where + ": weight scales must be per output channel (axis 0, [" + std::to_string(out) +
                                "] values)");
  }
  ASSIGN_OR_RETURN(const std::vector<float> scales, TensorFloats(*w.scale));
  for (float v : scales) {
    if (!std::isnormal(v) || v < 0) return InvalidArgumentError(where + ": weight scales must be finite and > 0 (normal floats)");
  }
  // Symmetric int8 weights: -128 has no positive twin, and Tessera's int8
  // kernels take [-127, 127].
  ASSIGN_OR_RETURN(const std::vector<float> q, TensorFloats(*w.values, {onnx::TensorProto::INT8}));
  if (std::find(q.begin(), q.end(), -128.0f) != q.end()) {
    return InvalidArgumentError(where + ": int8 weights must be in [-127, 127] (symmetric), '" + w.values->name() +
                                "' holds -128");
  }
  if (w.zero_point != nullptr) {
    if (w.zero_point->data_type() != onnx::TensorProto::INT8 || w.zero_point->dims_size() != 1 ||
        w.zero_point->dims(0) != out) {
      return InvalidArgumentError(where + ": the weight zero point must be int8 [" + std::to_string(out) + "]");
    }
    ASSIGN_OR_RETURN(const std::vector<float> zeros, TensorFloats(*w.zero_point, {onnx::TensorProto::INT8}));
    for (float v : zeros) {
      if (v != 0.0f) return InvalidArgumentError(where + ": weight zero points must be 0 (symmetric quantization)");
    }
  }
  return w;
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

  // Weights computed from initializers alone (fp16 Casts, int8
  // DequantizeLinear): not part of the chain; a layer reads them as it reads
  // an initializer.
  std::map<std::string, DerivedWeight> derived;
  std::vector<bool> weight_node(graph.node_size(), false);
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    if ((node.op_type() != "Cast" && node.op_type() != "DequantizeLinear") || node.input_size() < 1 ||
        !inits.count(node.input(0))) {
      continue;
    }
    ASSIGN_OR_RETURN(DerivedWeight w, ReadDerivedWeight(node, NodeWhere(node, i), inits));
    if (inits.count(node.output(0)) || !derived.emplace(node.output(0), w).second) {
      return InvalidArgumentError(NodeWhere(node, i) + ": output '" + node.output(0) + "' is defined twice");
    }
    weight_node[i] = true;
  }
  bool any_int8 = false, any_fp16 = false;

  // Walk the chain.
  std::string current = input->name();
  // The input quantization a QuantizeLinear/DequantizeLinear pair set for the next Conv or Gemm.
  std::optional<proto::Int8Spec> pending_int8;
  Shape shape = out.input_shape;
  std::vector<std::vector<std::string>> layer_params;  // initializer names per layer, in param order
  bool softmax_seen = false;
  std::string logits_value;  // the value the last layer produced
  // An embedding's ids (the output of Round and Cast to int64), which the
  // next node must Gather by.
  std::optional<std::string> pending_ids;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const std::string where = NodeWhere(node, i);
    const std::string& op = node.op_type();
    if (weight_node[i]) continue;
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return InvalidArgumentError(where + ": domain '" + node.domain() + "' is not supported");
    }
    if (softmax_seen) return InvalidArgumentError(where + ": no node may follow the Softmax");
    if (pending_ids.has_value() && op != "Gather") {
      return InvalidArgumentError(where + ": the embedding ids '" + *pending_ids +
                                  "' (Round, Cast to int64) must feed a Gather of the embedding weight");
    }
    // A Gather (an embedding) reads the chain as its indices, input 1; every
    // other node as input 0.
    const int data_input = op == "Gather" ? 1 : 0;
    if (op == "Gather" && (node.input_size() != 2 || node.input(1) != current)) {
      return InvalidArgumentError(where + ": a Gather must have two inputs, an embedding weight (an initializer) and "
                                  "the ids '" + current + "' as its indices (Tessera's embedding: Round, Cast to "
                                  "int64, Gather)");
    }
    if (node.input_size() <= data_input || node.input(data_input) != current) {
      return InvalidArgumentError(where + ": reads '" + (node.input_size() ? node.input(0) : std::string()) + "', not '" +
                                  current + "' (Tessera runs a chain of layers, each reading the one before)");
    }
    if (node.output_size() != 1) return InvalidArgumentError(where + ": must have exactly one output");
    // Parameter inputs: initializers, checked against the layer later.
    std::vector<std::string> params;
    for (int k = 0; k < node.input_size(); ++k) {
      if (k == data_input) continue;
      const std::string& name = node.input(k);
      if (name.empty()) return InvalidArgumentError(where + ": optional inputs left empty are not supported");
      auto d = derived.find(name);
      if (!inits.count(name) && d == derived.end()) {
        return InvalidArgumentError(where + ": input '" + name + "' is not an initializer");
      }
      if (!used.insert(name).second) return InvalidArgumentError(where + ": initializer '" + name + "' is used twice");
      if (d != derived.end()) {
        // An int8 weight (DequantizeLinear) is only a Conv's or Gemm's weight: the
        // layer reads its integers with the scales; anywhere else they would be
        // taken as plain floats.
        if (d->second.scale != nullptr && (k != 1 || (op != "Conv" && op != "Gemm"))) {
          return InvalidArgumentError(where + ": the dequantized int8 tensor '" + name +
                                      "' can only be a Conv's or Gemm's weight");
        }
        for (const onnx::TensorProto* t : {d->second.values, d->second.scale, d->second.zero_point}) {
          if (t != nullptr && !used.insert(t->name()).second) {
            return InvalidArgumentError(where + ": initializer '" + t->name() + "' is used twice");
          }
        }
      }
      params.push_back(name);
    }
    auto param_dims = [&](int k) -> std::vector<int64_t> {
      auto d = derived.find(params[k]);
      const onnx::TensorProto* t = d != derived.end() ? d->second.values : inits[params[k]];
      return std::vector<int64_t>(t->dims().begin(), t->dims().end());
    };
    // An int8 weight (DequantizeLinear) needs its input quantized just
    // before, and the reverse; then the layer computes in int8, and its
    // weight_scale tensor comes after its other parameters.
    auto take_int8 = [&](proto::Int8Spec* spec) -> Status {
      auto d = derived.find(params[0]);
      const bool int8_weight = d != derived.end() && d->second.scale != nullptr;
      if (int8_weight != pending_int8.has_value()) {
        return InvalidArgumentError(where + (int8_weight ? ": an int8 weight needs its input quantized just before "
                                                           "(QuantizeLinear, DequantizeLinear)"
                                                         : ": a quantized input needs an int8 weight"));
      }
      if (!int8_weight) return OkStatus();
      *spec = *pending_int8;
      pending_int8.reset();
      params.push_back(d->second.scale->name());
      any_int8 = true;
      return OkStatus();
    };
    if (pending_int8.has_value() && op != "Conv" && op != "Gemm" &&
        !(op == "Flatten" && i + 1 < graph.node_size() && graph.node(i + 1).op_type() == "Gemm")) {
      return InvalidArgumentError(where + ": a quantized input must feed a Conv or Gemm");
    }
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
      RETURN_IF_ERROR(take_int8(c->mutable_int8()));
      if (!c->int8().has_input_scale()) c->clear_int8();
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
      RETURN_IF_ERROR(take_int8(l->mutable_int8()));
      if (!l->int8().has_input_scale()) l->clear_int8();
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "BatchNormalization") {
      RETURN_IF_ERROR(OnlyAttributes(node, {"epsilon", "momentum", "training_mode"}, where));
      ASSIGN_OR_RETURN(const int64_t training, IntAttr(node, "training_mode", 0, where));
      if (training != 0) return InvalidArgumentError(where + ": training_mode 1 is not supported");
      ASSIGN_OR_RETURN(const float epsilon, FloatAttr(node, "epsilon", 1e-5f, where));
      if (params.size() != 4) return InvalidArgumentError(where + ": needs inputs X, scale, B, mean, var");
      layer.mutable_batch_norm()->set_epsilon(epsilon);
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "QuantizeLinear") {
      // With the DequantizeLinear right after it (same scale and zero point):
      // the next layer's input quantization.
      RETURN_IF_ERROR(OnlyAttributes(node, {"axis"}, where));
      if (params.size() != 2) return InvalidArgumentError(where + ": needs inputs x, scale and zero point");
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
      const onnx::NodeProto* dq = i + 1 < graph.node_size() ? &graph.node(i + 1) : nullptr;
      if (dq == nullptr || dq->op_type() != "DequantizeLinear" || dq->input_size() != 3 ||
          dq->input(0) != node.output(0) || dq->input(1) != params[0] || dq->input(2) != params[1] ||
          dq->output_size() != 1 || dq->attribute_size() > 1 || (dq->attribute_size() == 1 && dq->attribute(0).name() != "axis")) {
        return InvalidArgumentError(where + ": must be followed by a DequantizeLinear of its output with the same "
                                    "scale and zero point");
      }
      proto::Int8Spec spec;
      spec.set_input_scale(s[0]);
      spec.set_input_unsigned(is_unsigned);
      pending_int8 = spec;
      current = dq->output(0);
      ++i;
      continue;
    } else if (op == "Round") {
      // Tessera's embedding, three nodes: Round (half to even, as Tessera
      // rounds), Cast to int64, Gather(weight, ids, axis 0).
      RETURN_IF_ERROR(OnlyAttributes(node, {}, where));
      if (!params.empty()) return InvalidArgumentError(where + ": takes one input");
      const onnx::NodeProto* cast = i + 1 < graph.node_size() ? &graph.node(i + 1) : nullptr;
      if (cast == nullptr || cast->op_type() != "Cast" || cast->input_size() != 1 || cast->input(0) != node.output(0) ||
          cast->output_size() != 1) {
        return InvalidArgumentError(where + ": must be followed by a Cast of its output to int64 and a Gather by those "
                                    "ids (Tessera reads Round only as an embedding's ids)");
      }
      const std::string cast_where = NodeWhere(*cast, i + 1);
      RETURN_IF_ERROR(OnlyAttributes(*cast, {"to"}, cast_where));
      ASSIGN_OR_RETURN(const int64_t to, IntAttr(*cast, "to", -1, cast_where));
      if (to != onnx::TensorProto::INT64) {
        return InvalidArgumentError(cast_where + ": an embedding's ids must be cast to int64 (to = " +
                                    std::to_string(onnx::TensorProto::INT64) + "), got to = " + std::to_string(to));
      }
      pending_ids = cast->output(0);
      current = cast->output(0);
      ++i;
      continue;
    } else if (op == "Gather") {
      if (!pending_ids.has_value()) {
        return InvalidArgumentError(where + ": a Gather must read ids made by a Round and a Cast to int64 (Tessera's "
                                    "embedding)");
      }
      RETURN_IF_ERROR(OnlyAttributes(node, {"axis"}, where));
      ASSIGN_OR_RETURN(const int64_t axis, IntAttr(node, "axis", 0, where));
      if (axis != 0) {
        return InvalidArgumentError(where + ": axis " + std::to_string(axis) +
                                    " is not supported (an embedding gathers rows: axis 0)");
      }
      const std::vector<int64_t> w = param_dims(0);
      if (w.size() != 2 || w[0] < 1 || w[1] < 1 || w[0] > std::numeric_limits<int32_t>::max() ||
          w[1] > std::numeric_limits<int32_t>::max()) {
        return InvalidArgumentError(where + ": the embedding weight '" + params[0] + "' must be [num_embeddings, dim], got " +
                                    ShapeText(w));
      }
      if (out.spec.layer_size() != 0 || LayerNumber(node.name()) > 0) {
        return InvalidArgumentError(where + ": an embedding must be the first layer (its inputs are the model's input, "
                                    "as ids)");
      }
      proto::EmbeddingSpec* e = layer.mutable_embedding();
      e->set_num_embeddings(static_cast<int32_t>(w[0]));
      e->set_embedding_dim(static_cast<int32_t>(w[1]));
      pending_ids.reset();
      RETURN_IF_ERROR(add_layer(layer));
    } else if (op == "Cast") {
      return InvalidArgumentError(where + ": a Cast in the chain is read only as an embedding's ids, right after a Round "
                                  "(a Cast alone would truncate, not round); other Casts only turn float16 weights "
                                  "into float");
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
                                  "Gemm, BatchNormalization, Softmax, Identity, and Round, Cast, Gather, QuantizeLinear "
                                  "and DequantizeLinear in the forms it exports)");
    }
    current = node.output(0);
  }
  if (pending_int8.has_value()) return InvalidArgumentError("the graph ends in a quantized value no layer reads");
  if (pending_ids.has_value()) return InvalidArgumentError("the graph ends in embedding ids no Gather reads");
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
      auto d = derived.find(name);
      const onnx::TensorProto& t = d != derived.end() ? *d->second.values : *inits[name];
      any_fp16 |= t.data_type() == onnx::TensorProto::FLOAT16;
      ASSIGN_OR_RETURN(std::vector<float> values,
                       TensorFloats(t, {onnx::TensorProto::FLOAT, onnx::TensorProto::FLOAT16, onnx::TensorProto::INT8}));
      out.params.insert(out.params.end(), values.begin(), values.end());
    }
  }
  out.precision = any_int8 ? "int8" : any_fp16 ? "fp16" : "fp32";
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
