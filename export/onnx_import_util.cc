#include "export/onnx_import_util.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <regex>

namespace tessera {
namespace onnx_import {
namespace {

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian");

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

}  // namespace

std::string NodeWhere(const onnx::NodeProto& node, int index) {
  return "node " + std::to_string(index) + " (" + node.op_type() + (node.name().empty() ? "" : " '" + node.name() + "'") +
         ")";
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
StatusOr<std::vector<float>> TensorFloats(const onnx::TensorProto& t, std::initializer_list<int> want) {
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

StatusOr<std::vector<int64_t>> TensorInt64s(const onnx::TensorProto& t) {
  const std::string where = "initializer '" + t.name() + "'";
  if (t.data_type() != onnx::TensorProto::INT64 || t.dims_size() != 1 || t.dims(0) < 0 ||
      t.dims(0) > kMaxVectorElements) {
    return InvalidArgumentError(where + " must be int64 [n]");
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0 || t.has_segment()) {
    return InvalidArgumentError(where + " keeps its data elsewhere or in segments (not supported)");
  }
  const int64_t n = t.dims(0);
  std::vector<int64_t> values(n);
  if (t.has_raw_data()) {
    if (t.raw_data().size() != static_cast<uint64_t>(n) * sizeof(int64_t)) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.raw_data().size()) + " bytes, its dims want " +
                                  std::to_string(n * sizeof(int64_t)));
    }
    if (n > 0) std::memcpy(values.data(), t.raw_data().data(), n * sizeof(int64_t));  // little-endian, as written
  } else {
    if (t.int64_data_size() != n) {
      return InvalidArgumentError(where + " holds " + std::to_string(t.int64_data_size()) + " values, its dims want " +
                                  std::to_string(n));
    }
    values.assign(t.int64_data().begin(), t.int64_data().end());
  }
  return values;
}

const onnx::TensorProto& GraphConstants::Values(const std::string& name) const {
  auto d = derived.find(name);
  return d != derived.end() ? *d->second.values : *initializers.at(name);
}

Shape GraphConstants::Dims(const std::string& name) const {
  const onnx::TensorProto& t = Values(name);
  return Shape(t.dims().begin(), t.dims().end());
}

const DerivedWeight* GraphConstants::Int8Weight(const std::string& name) const {
  auto d = derived.find(name);
  return d != derived.end() && d->second.scale != nullptr ? &d->second : nullptr;
}

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

}  // namespace onnx_import
}  // namespace tessera
