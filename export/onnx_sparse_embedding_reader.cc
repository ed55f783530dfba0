// ONNX import of Tessera's sparse_embedding first layer: the graph's second
// input "rows" and exactly the three nodes export/onnx_export.cc's
// AddSparseEmbedding writes (Gather of the table by the rows, Flatten,
// Concat after the numeric input), with the table's rows and sorted ids
// read into ImportedModel::sparse_table. Anything else is InvalidArgument
// naming the node or tensor.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "core/sparse_id.h"
#include "export/onnx_export.h"
#include "export/onnx_op_readers.h"

namespace tessera {
namespace onnx_import {
namespace {

constexpr char kLayerName[] = "layer0.sparse_embedding";

// OK when node `index` is op `op` giving `name` from exactly `inputs`, with
// one attribute, the int "axis" of value `axis`.
Status CheckNode(const onnx::GraphProto& graph, int index, const std::string& op, const std::string& name,
                 const std::vector<std::string>& inputs, int64_t axis) {
  const std::string where = "node " + std::to_string(index) + " of a sparse_embedding model";
  if (index >= graph.node_size()) return InvalidArgumentError(where + ": missing (expected " + op + " " + name + ")");
  const onnx::NodeProto& node = graph.node(index);
  const bool same_inputs = node.input_size() == static_cast<int>(inputs.size()) &&
                           std::equal(inputs.begin(), inputs.end(), node.input().begin());
  if (node.op_type() != op || node.output_size() != 1 || node.output(0) != name || !same_inputs ||
      node.attribute_size() != 1 || node.attribute(0).name() != "axis" ||
      node.attribute(0).type() != onnx::AttributeProto::INT || node.attribute(0).i() != axis) {
    return InvalidArgumentError(where + " ('" + node.name() + "', " + node.op_type() + "): expected " + op +
                                " with axis " + std::to_string(axis) + " giving '" + name + "'");
  }
  return OkStatus();
}

// The "rows" input: int64 [N, fields].
StatusOr<int64_t> RowsInputFields(const onnx::ValueInfoProto& rows) {
  const std::string where = "graph input '" + rows.name() + "'";
  if (!rows.type().has_tensor_type() || rows.type().tensor_type().elem_type() != onnx::TensorProto::INT64 ||
      rows.type().tensor_type().shape().dim_size() != 2) {
    return InvalidArgumentError(where + " must be int64 [N, fields]");
  }
  const onnx::TensorShapeProto_Dimension& d = rows.type().tensor_type().shape().dim(1);
  if (!d.has_dim_value() || d.dim_value() < 1 || d.dim_value() > kMaxElements) {
    return InvalidArgumentError(where + ": its fields must be a fixed positive number");
  }
  return d.dim_value();
}

// A raw-data initializer `name` of `type` and rank `rank`, marked used.
StatusOr<const onnx::TensorProto*> TakeRawInitializer(GraphConstants* constants, const std::string& name, int type,
                                                      int rank) {
  auto it = constants->initializers.find(name);
  if (it == constants->initializers.end()) return InvalidArgumentError("initializer '" + name + "' is missing");
  const onnx::TensorProto& t = *it->second;
  if (t.data_type() != type || t.dims_size() != rank || t.data_location() == onnx::TensorProto::EXTERNAL ||
      t.external_data_size() > 0 || t.has_segment() || !t.has_raw_data()) {
    const std::string type_name = type == onnx::TensorProto::FLOAT ? "float" : "uint64";
    return InvalidArgumentError("initializer '" + name + "' must be a " + type_name + " tensor of rank " +
                                std::to_string(rank) + " in raw data (external data loaded)");
  }
  if (!constants->used.insert(name).second) return InvalidArgumentError("initializer '" + name + "' is used twice");
  return &t;
}

// The table's rows and ids, checked: ids strictly increasing (none
// kNoSparseId), one row per id plus the zero row 0, `dim` floats each.
StatusOr<std::shared_ptr<SparseTableRows>> ReadTable(GraphConstants* constants, const std::string& name) {
  ASSIGN_OR_RETURN(const onnx::TensorProto* values,
                   TakeRawInitializer(constants, std::string(kLayerName) + ".table", onnx::TensorProto::FLOAT, 2));
  ASSIGN_OR_RETURN(const onnx::TensorProto* ids,
                   TakeRawInitializer(constants, std::string(kLayerName) + ".ids", onnx::TensorProto::UINT64, 1));
  const int64_t count = ids->dims(0), rows = values->dims(0), dim = values->dims(1);
  if (count < 0 || rows != count + 1 || dim < 1 || dim > 1024 ||
      ids->raw_data().size() != static_cast<uint64_t>(count) * sizeof(uint64_t) ||
      values->raw_data().size() != static_cast<uint64_t>(rows) * dim * sizeof(float)) {
    return InvalidArgumentError("initializers '" + values->name() + "' [" + std::to_string(rows) + ", " +
                                std::to_string(dim) + "] and '" + ids->name() + "' [" + std::to_string(count) +
                                "] do not hold one row per id and the zero row (dim in [1, 1024])");
  }
  auto table = std::make_shared<SparseTableRows>();
  table->name = name;
  table->dim = static_cast<int>(dim);
  table->ids.resize(count);
  std::memcpy(table->ids.data(), ids->raw_data().data(), ids->raw_data().size());
  for (int64_t k = 0; k < count; ++k) {
    if (table->ids[k] == kNoSparseId || (k > 0 && table->ids[k] <= table->ids[k - 1])) {
      return InvalidArgumentError("initializer '" + ids->name() + "': ids must increase strictly (entry " +
                                  std::to_string(k) + ")");
    }
  }
  const char* first = values->raw_data().data() + dim * sizeof(float);  // past the zero row
  table->values.resize(static_cast<size_t>(count * dim));
  std::memcpy(table->values.data(), first, table->values.size() * sizeof(float));
  return table;
}

}  // namespace

Status ReadSparseEmbedding(const onnx::ValueInfoProto& rows_input, ChainState* state) {
  const onnx::GraphProto& graph = *state->graph;
  ImportedModel* out = state->out;
  ASSIGN_OR_RETURN(const int64_t fields, RowsInputFields(rows_input));
  const std::string layer = kLayerName;
  RETURN_IF_ERROR(CheckNode(graph, 0, "Gather", layer + ".gather", {layer + ".table", rows_input.name()}, 0));
  RETURN_IF_ERROR(CheckNode(graph, 1, "Flatten", layer + ".embedded", {layer + ".gather"}, 1));
  RETURN_IF_ERROR(CheckNode(graph, 2, "Concat", layer, {state->current, layer + ".embedded"}, 1));
  auto named = out->metadata.find(kOnnxSparseTableKey);
  const std::string name = named != out->metadata.end() ? named->second : "table";
  ASSIGN_OR_RETURN(std::shared_ptr<SparseTableRows> table, ReadTable(state->constants, name));

  proto::SparseTableSpec* table_spec = out->spec.add_sparse_table();
  table_spec->set_name(name);
  table_spec->set_dim(table->dim);
  proto::SparseEmbeddingSpec* embedding = out->spec.add_layer()->mutable_sparse_embedding();
  embedding->set_table(name);
  embedding->set_fields(static_cast<int32_t>(fields));
  embedding->set_values_per_field(1);
  const int64_t numeric = state->shape[0];
  out->input_shape = {numeric + fields};
  out->sparse_table = std::move(table);
  state->layer_params.emplace_back();  // the table is not among the parameters
  state->shape = {numeric + fields * out->sparse_table->dim};
  state->current = layer;
  state->logits_value = layer;
  state->next_node = 3;
  return OkStatus();
}

}  // namespace onnx_import
}  // namespace tessera
