#include "export/onnx_tensor_sizes.h"

#include <string>

namespace tessera {
namespace {

// Largest tensor checked (elements), as the importer's kMaxElements: no
// product of dims overflows below it.
constexpr int64_t kMaxElements = int64_t{1} << 34;

// Bytes per element in raw_data; 0 for types without a raw form (strings).
size_t ElementBytes(int type) {
  switch (type) {
    case onnx::TensorProto::BOOL:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8: return 1;
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return 2;
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::FLOAT: return 4;
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::COMPLEX64: return 8;
    case onnx::TensorProto::COMPLEX128: return 16;
    default: return 0;
  }
}

// The values a tensor holds in its typed field (ONNX's layout: small
// integers and float16 in int32_data, complex numbers as two values).
int64_t TypedCount(const onnx::TensorProto& t) {
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: return t.float_data_size();
    case onnx::TensorProto::COMPLEX64: return t.float_data_size() / 2;
    case onnx::TensorProto::DOUBLE: return t.double_data_size();
    case onnx::TensorProto::COMPLEX128: return t.double_data_size() / 2;
    case onnx::TensorProto::INT64: return t.int64_data_size();
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::UINT64: return t.uint64_data_size();
    case onnx::TensorProto::STRING: return t.string_data_size();
    default: return t.int32_data_size();
  }
}

Status CheckTensor(const onnx::TensorProto& t, const std::string& where) {
  const std::string what = where + " '" + t.name().substr(0, 80) + "'";
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && n > kMaxElements / d)) return InvalidArgumentError(what + " has impossible dims");
    n *= d;
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    return InvalidArgumentError(what + " keeps its data in an external file (not supported)");
  }
  if (t.has_raw_data()) {
    const size_t bytes = ElementBytes(t.data_type());
    if (bytes == 0 || t.raw_data().size() != static_cast<uint64_t>(n) * bytes) {
      return InvalidArgumentError(what + " holds " + std::to_string(t.raw_data().size()) +
                                  " bytes of data, its type and dims want " + std::to_string(n * bytes));
    }
    return OkStatus();
  }
  if (TypedCount(t) != n) {
    return InvalidArgumentError(what + " holds " + std::to_string(TypedCount(t)) + " values, its dims want " +
                                std::to_string(n));
  }
  return OkStatus();
}

Status CheckGraph(const onnx::GraphProto& graph, int depth) {
  if (depth > 8) return InvalidArgumentError("the graph nests subgraphs more than 8 deep");
  if (graph.sparse_initializer_size() > 0) return InvalidArgumentError("sparse initializers are not supported");
  for (const onnx::TensorProto& t : graph.initializer()) RETURN_IF_ERROR(CheckTensor(t, "initializer"));
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    const std::string where = "node " + std::to_string(i) + " (" + node.op_type().substr(0, 40) + ")";
    for (const onnx::AttributeProto& a : node.attribute()) {
      if (a.has_t()) RETURN_IF_ERROR(CheckTensor(a.t(), where + " attribute " + a.name().substr(0, 40)));
      for (const onnx::TensorProto& t : a.tensors()) {
        RETURN_IF_ERROR(CheckTensor(t, where + " attribute " + a.name().substr(0, 40)));
      }
      if (a.has_sparse_tensor() || a.sparse_tensors_size() > 0) {
        return InvalidArgumentError(where + ": sparse tensor attributes are not supported");
      }
      if (a.has_g()) RETURN_IF_ERROR(CheckGraph(a.g(), depth + 1));
      for (const onnx::GraphProto& g : a.graphs()) RETURN_IF_ERROR(CheckGraph(g, depth + 1));
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckTensorSizes(const onnx::GraphProto& graph) { return CheckGraph(graph, 0); }

}  // namespace tessera
