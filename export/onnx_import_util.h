// The plumbing ONNX import's readers share (export/onnx_import.cc and
// export/onnx_op_readers.cc): a node's attributes, checked; initializers'
// values, checked against their dims; the weights derived from initializers
// (float16 Casts, int8 DequantizeLinear). Every check failure is
// InvalidArgument naming the node or tensor. Not part of the export
// library's interface: only the importer includes it.
#ifndef TESSERA_EXPORT_ONNX_IMPORT_UTIL_H_
#define TESSERA_EXPORT_ONNX_IMPORT_UTIL_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/layer.h"

namespace tessera {
namespace onnx_import {

// Largest tensor we accept (elements): well beyond any model Tessera trains,
// small enough that no product of dims overflows.
inline constexpr int64_t kMaxElements = int64_t{1} << 34;

// "node 3 (Conv 'layer0.conv')": how errors name a node.
std::string NodeWhere(const onnx::NodeProto& node, int index);

// Every attribute of the node must be one of `known`.
Status OnlyAttributes(const onnx::NodeProto& node, const std::set<std::string>& known, const std::string& where);

// The attribute `name`, or `fallback` when the node has none; InvalidArgument
// when it has another type.
StatusOr<int64_t> IntAttr(const onnx::NodeProto& node, const std::string& name, int64_t fallback,
                          const std::string& where);
StatusOr<float> FloatAttr(const onnx::NodeProto& node, const std::string& name, float fallback,
                          const std::string& where);
StatusOr<std::vector<int64_t>> IntsAttr(const onnx::NodeProto& node, const std::string& name,
                                        std::vector<int64_t> fallback, const std::string& where);

// InvalidArgument unless auto_pad is absent or NOTSET (explicit pads only).
Status NoAutoPad(const onnx::NodeProto& node, const std::string& where);

// A square window's size from an attribute of `count` values, all equal, in
// [lo, int32 max].
StatusOr<int32_t> Square(const std::vector<int64_t>& v, size_t count, const std::string& what, int64_t lo,
                         const std::string& where);

// An initializer's values as floats, checked against its dims: float32
// (raw_data or float_data), float16, int8 or uint8 (raw_data or int32_data).
// `want` lists the element types the caller accepts.
StatusOr<std::vector<float>> TensorFloats(const onnx::TensorProto& t,
                                          std::initializer_list<int> want = {onnx::TensorProto::FLOAT});

// An INT64 initializer of rank 1 (dims [n], n <= kMaxVectorElements; raw_data
// or int64_data), checked against its dims.
inline constexpr int64_t kMaxVectorElements = int64_t{1} << 24;
StatusOr<std::vector<int64_t>> TensorInt64s(const onnx::TensorProto& t);

// A weight computed from initializers alone by a node outside the chain:
// a float16 initializer Cast to float, or an int8 one through DequantizeLinear.
struct DerivedWeight {
  const onnx::TensorProto* values = nullptr;      // float16 or int8
  const onnx::TensorProto* scale = nullptr;       // DequantizeLinear only: [out] float
  const onnx::TensorProto* zero_point = nullptr;  // DequantizeLinear only, may be null
};

// The graph's constant tensors, as the chain's layers read them.
struct GraphConstants {
  std::map<std::string, const onnx::TensorProto*> initializers;  // by name
  std::map<std::string, DerivedWeight> derived;                   // by the deriving node's output
  std::set<std::string> used;  // initializers a node took (each may be taken once)

  bool Has(const std::string& name) const { return initializers.count(name) || derived.count(name); }
  // The tensor holding a parameter's values: the initializer itself, or the
  // float16 or int8 tensor a derived weight reads. REQUIRES: Has(name).
  const onnx::TensorProto& Values(const std::string& name) const;
  Shape Dims(const std::string& name) const;
  // The int8 weight (DequantizeLinear) called `name`; null for anything else.
  const DerivedWeight* Int8Weight(const std::string& name) const;
};

// The Cast or DequantizeLinear node `node` (reading initializer input 0) as a
// DerivedWeight, checked: Cast float16 -> float; DequantizeLinear of an int8
// tensor along axis 0 with float scales [out] and zero points 0.
StatusOr<DerivedWeight> ReadDerivedWeight(const onnx::NodeProto& node, const std::string& where,
                                          const std::map<std::string, const onnx::TensorProto*>& inits);

// "layer7.linear" -> 7; -1 when the name is not Tessera's.
int64_t LayerNumber(const std::string& name);

}  // namespace onnx_import
}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_IMPORT_UTIL_H_
