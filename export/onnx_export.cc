#include "export/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <exception>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "core/task.h"
#include "export/onnx_tensor_sizes.h"
#include "export/task_outputs.h"
#include "models/column_embedding.h"
#include "models/model.h"
#include "models/sparse_embedding.h"
#include "models/sparse_linear.h"

namespace tessera {
namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; this export copies floats as they are in memory");

void AddIntAttribute(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void AddFloatAttribute(onnx::NodeProto* node, const std::string& name, float value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void AddIntsAttribute(onnx::NodeProto* node, const std::string& name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

// A float tensor value [N, dims...] with the batch dimension named N.
void SetBatchedFloatType(onnx::ValueInfoProto* value, const std::string& name, const Shape& dims) {
  value->set_name(name);
  onnx::TypeProto_Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param(kOnnxBatchDim);
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  onnx::NodeProto* AddNode(const std::string& op, const std::string& name, const std::vector<std::string>& inputs) {
    onnx::NodeProto* node = graph_->add_node();
    node->set_op_type(op);
    node->set_name(name);
    for (const std::string& in : inputs) node->add_input(in);
    node->add_output(name);
    return node;
  }

  // An initializer of `type` (FLOAT, FLOAT16, INT8 or UINT8) holding
  // `values` converted: to the nearest float16, or rounded and clamped to
  // the integer type's range.
  void AddInitializer(const std::string& name, const std::vector<int64_t>& dims, const float* values,
                      onnx::TensorProto::DataType type = onnx::TensorProto::FLOAT) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    int64_t n = 1;
    for (int64_t d : dims) {
      t->add_dims(d);
      n *= d;
    }
    std::string raw;
    switch (type) {
      case onnx::TensorProto::FLOAT16:
        for (int64_t i = 0; i < n; ++i) {
          const _Float16 h = static_cast<_Float16>(values[i]);
          raw.append(reinterpret_cast<const char*>(&h), sizeof(h));
        }
        break;
      case onnx::TensorProto::INT8:
        for (int64_t i = 0; i < n; ++i) raw.push_back(static_cast<char>(std::nearbyint(std::clamp(values[i], -128.0f, 127.0f))));
        break;
      case onnx::TensorProto::UINT8:
        for (int64_t i = 0; i < n; ++i) raw.push_back(static_cast<char>(std::nearbyint(std::clamp(values[i], 0.0f, 255.0f))));
        break;
      default:
        raw.assign(reinterpret_cast<const char*>(values), static_cast<size_t>(n) * sizeof(float));
    }
    t->set_raw_data(std::move(raw));
  }

  // An int64 initializer (a shape, axes, an index) of `values`, of dims
  // [values.size()] or `dims`.
  void AddInt64Initializer(const std::string& name, const std::vector<int64_t>& values) {
    AddInt64Initializer(name, {static_cast<int64_t>(values.size())}, values);
  }
  void AddInt64Initializer(const std::string& name, const std::vector<int64_t>& dims,
                           const std::vector<int64_t>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
  }

 private:
  onnx::GraphProto* graph_;
};

// A Slice of `input`'s values [begin, end) along axis 1, its starts, ends
// and axes the initializers NAME.starts, NAME.ends and NAME.axes.
onnx::NodeProto* AddColumnSlice(GraphBuilder* builder, const std::string& name, const std::string& input,
                                int64_t begin, int64_t end) {
  builder->AddInt64Initializer(name + ".starts", {begin});
  builder->AddInt64Initializer(name + ".ends", {end});
  builder->AddInt64Initializer(name + ".axes", {1});
  return builder->AddNode("Slice", name, {input, name + ".starts", name + ".ends", name + ".axes"});
}

// A ColumnEmbedding (models/column_embedding.h) named `name`, reading the
// float input [N, numeric + columns] and the weight [rows, dim]: the graph
// computes exactly its Forward for valid ids (serve and predict refuse any
// other before a pass). Node by node:
//   NAME.numeric    Slice [0, numeric) (left out without numeric features)
//   NAME.id_values  Slice [numeric, features): the ids, as floats
//   NAME.round      Round (half to even, as Tessera's nearest id)
//   NAME.ids        Cast to int64
//   NAME.rows       Add NAME.row_offsets (int64 [columns]): column c's ids
//                   are rows from its table's first row of the one weight
//   NAME.gather     Gather(weight, rows, axis 0): [N, columns, dim]
//   NAME.embedded   Flatten (axis 1): [N, columns * dim], column by column
//   NAME            Concat(numeric, embedded, axis 1): the layer's output
// Without numeric features the Flatten is the last node, named NAME.
void AddColumnEmbedding(const ColumnEmbedding& layer, const std::string& name, const std::string& input,
                        const std::string& weight, GraphBuilder* builder) {
  const IdLayout& ids = layer.layout();
  const int64_t numeric = ids.numeric(), features = ids.features();
  std::string numeric_part;
  if (numeric > 0) numeric_part = AddColumnSlice(builder, name + ".numeric", input, 0, numeric)->output(0);
  onnx::NodeProto* id_values = AddColumnSlice(builder, name + ".id_values", input, numeric, features);
  onnx::NodeProto* round = builder->AddNode("Round", name + ".round", {id_values->output(0)});
  onnx::NodeProto* cast = builder->AddNode("Cast", name + ".ids", {round->output(0)});
  AddIntAttribute(cast, "to", onnx::TensorProto::INT64);
  // Each column's first row: offsets() without its last entry (the total).
  builder->AddInt64Initializer(name + ".row_offsets",
                               std::vector<int64_t>(ids.offsets().begin(), ids.offsets().end() - 1));
  onnx::NodeProto* rows = builder->AddNode("Add", name + ".rows", {cast->output(0), name + ".row_offsets"});
  onnx::NodeProto* gather = builder->AddNode("Gather", name + ".gather", {weight, rows->output(0)});
  AddIntAttribute(gather, "axis", 0);
  onnx::NodeProto* flatten =
      builder->AddNode("Flatten", numeric > 0 ? name + ".embedded" : name, {gather->output(0)});
  AddIntAttribute(flatten, "axis", 1);
  if (numeric == 0) return;
  onnx::NodeProto* concat = builder->AddNode("Concat", name, {numeric_part, flatten->output(0)});
  AddIntAttribute(concat, "axis", 1);
}

// A parameter tensor as an initializer named `name`: float32, or with
// options.fp16_weights a float16 initializer `name`_fp16 Cast to float32
// under `name`, as the layers' parameters in BuildOnnxModel.
void AddParameter(const std::string& name, const std::vector<int64_t>& dims, const float* values,
                  const OnnxExportOptions& options, GraphBuilder* builder) {
  if (!options.fp16_weights) {
    builder->AddInitializer(name, dims, values);
    return;
  }
  builder->AddInitializer(name + "_fp16", dims, values, onnx::TensorProto::FLOAT16);
  onnx::NodeProto* cast = builder->AddNode("Cast", name, {name + "_fp16"});
  AddIntAttribute(cast, "to", onnx::TensorProto::FLOAT);
}

// Tessera's sparse_linear first layer (models/sparse_linear.h) over the
// graph input: [N, 2K] floats, K (index, value) pairs per example, index -1
// a padding pair. Reshape to [N, K, 2]; Gather (axis 2) the indexes and the
// values; the indexes Round (half to even, as Tessera's std::nearbyint) and
// Cast to int64; a padding pair (id < 0: Less) reads row 0 (Max with 0) with
// its value replaced by 0 (Where), so it adds 0 * weight, nothing, as
// Tessera passes over it; Gather (axis 0) the weight rows [N, K, out], Mul
// by the values (Unsqueeze to [N, K, 1]), ReduceSum over the pairs (axis 1),
// Add the bias. Tessera adds the pairs to the bias one by one in pair order;
// ONNX's sum may add in another order (float32 rounding differs by a few
// ulps of the sum of |terms|). Inputs that are neither -1 nor a feature are
// refused before a pass (serve, predict), as for an embedding. Sets
// *current, *shape and *offset past the layer.
Status AddSparseLinear(const proto::LayerSpec& spec, const Shape& input_shape, const float* params, uint64_t num_keys,
                       const OnnxExportOptions& options, GraphBuilder* builder, std::string* current, Shape* shape,
                       uint64_t* offset) {
  auto created = CreateSparseLinear(spec.sparse_linear(), input_shape, options.sparse_features);
  if (!created.ok()) return created.status().WithContext("model.layer[0]");
  const int64_t pairs = input_shape[0], features = options.sparse_features, out = (*created)->out_features();
  if (static_cast<uint64_t>(features * out + out) > num_keys) {
    return InvalidArgumentError("model.layer[0]: the model has more than the " + std::to_string(num_keys) +
                                " parameters given");
  }
  const std::string name = "layer0.sparse_linear";
  AddParameter(name + ".weight", {features, out}, params, options, builder);
  AddParameter(name + ".bias", {out}, params + features * out, options, builder);
  builder->AddInt64Initializer(name + ".pairs_shape", {3}, {0, pairs, 2});
  builder->AddNode("Reshape", name + ".pairs", {*current, name + ".pairs_shape"});
  builder->AddInt64Initializer(name + ".index_slot", {}, {0});
  builder->AddInt64Initializer(name + ".value_slot", {}, {1});
  AddIntAttribute(builder->AddNode("Gather", name + ".index", {name + ".pairs", name + ".index_slot"}), "axis", 2);
  AddIntAttribute(builder->AddNode("Gather", name + ".value", {name + ".pairs", name + ".value_slot"}), "axis", 2);
  builder->AddNode("Round", name + ".round", {name + ".index"});
  AddIntAttribute(builder->AddNode("Cast", name + ".ids", {name + ".round"}), "to", onnx::TensorProto::INT64);
  builder->AddInt64Initializer(name + ".padding_below", {}, {0});
  builder->AddNode("Less", name + ".is_padding", {name + ".ids", name + ".padding_below"});
  builder->AddInt64Initializer(name + ".first_row", {}, {0});
  builder->AddNode("Max", name + ".rows", {name + ".ids", name + ".first_row"});
  const float zero = 0.0f;
  builder->AddInitializer(name + ".padding_value", {}, &zero);
  builder->AddNode("Where", name + ".pair_values", {name + ".is_padding", name + ".padding_value", name + ".value"});
  builder->AddInt64Initializer(name + ".value_axes", {1}, {2});
  builder->AddNode("Unsqueeze", name + ".pair_columns", {name + ".pair_values", name + ".value_axes"});
  AddIntAttribute(builder->AddNode("Gather", name + ".gather", {name + ".weight", name + ".rows"}), "axis", 0);
  builder->AddNode("Mul", name + ".terms", {name + ".gather", name + ".pair_columns"});
  builder->AddInt64Initializer(name + ".sum_axes", {1}, {1});
  AddIntAttribute(builder->AddNode("ReduceSum", name + ".sum", {name + ".terms", name + ".sum_axes"}), "keepdims", 0);
  builder->AddNode("Add", name, {name + ".sum", name + ".bias"});
  *current = name;
  *shape = (*created)->out_shape();
  *offset = static_cast<uint64_t>(features * out + out);
  return OkStatus();
}


// Tessera's sparse_embedding first layer (models/sparse_embedding.h) with
// its table's rows (onnx_export.h gives the graph). The table is stored
// float32 whatever options.fp16_weights says: it holds what the servers
// trained, and serve and predict read exactly those rows. Sets *current,
// *shape (and nothing of *offset: the table is not among the parameters).
Status AddSparseEmbedding(const proto::ModelSpec& spec, const Shape& input_shape, const OnnxExportOptions& options,
                          GraphBuilder* builder, onnx::ModelProto* model, std::string* current, Shape* shape) {
  onnx::GraphProto* graph = model->mutable_graph();
  const proto::SparseEmbeddingSpec& layer_spec = spec.layer(0).sparse_embedding();
  auto created = CreateSparseEmbedding(spec, layer_spec, input_shape);
  if (!created.ok()) return created.status().WithContext("model.layer[0]");
  const auto& layer = static_cast<const SparseEmbedding&>(**created);
  const SparseTableRows* table = options.sparse_table;
  if (table == nullptr || table->name != layer_spec.table() || table->dim != layer.dim()) {
    return InvalidArgumentError("model.layer[0]: the rows of sparse table '" + layer_spec.table() + "' are not given");
  }
  if (layer_spec.values_per_field() != 1) {
    return InvalidArgumentError("model.layer[0]: a sparse_embedding of values_per_field " +
                                std::to_string(layer_spec.values_per_field()) +
                                " cannot be exported yet (only 1, Criteo's fields)");
  }
  if (layer.numeric() < 1) {
    return InvalidArgumentError("model.layer[0]: a sparse_embedding without numeric features cannot be exported yet");
  }
  const int64_t fields = layer_spec.fields(), dim = layer.dim(), rows = table->count() + 1;
  onnx::StringStringEntryProto* named = model->add_metadata_props();
  named->set_key(kOnnxSparseTableKey);
  named->set_value(table->name);
  const std::string name = "layer0.sparse_embedding";
  onnx::ValueInfoProto* rows_input = graph->add_input();
  rows_input->set_name(kOnnxSparseRowsName);
  auto* tensor_type = rows_input->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(onnx::TensorProto::INT64);
  tensor_type->mutable_shape()->add_dim()->set_dim_param(kOnnxBatchDim);
  tensor_type->mutable_shape()->add_dim()->set_dim_value(fields);

  onnx::TensorProto* values = graph->add_initializer();
  values->set_name(name + ".table");
  values->set_data_type(onnx::TensorProto::FLOAT);
  values->add_dims(rows);
  values->add_dims(dim);
  std::string* raw = values->mutable_raw_data();
  raw->reserve(static_cast<size_t>(rows * dim) * sizeof(float));
  raw->assign(static_cast<size_t>(dim) * sizeof(float), '\0');  // row 0: zeros
  raw->append(reinterpret_cast<const char*>(table->values.data()), table->values.size() * sizeof(float));
  onnx::TensorProto* ids = graph->add_initializer();
  ids->set_name(name + ".ids");
  ids->set_data_type(onnx::TensorProto::UINT64);
  ids->add_dims(table->count());
  ids->set_raw_data(
      std::string(reinterpret_cast<const char*>(table->ids.data()), table->ids.size() * sizeof(uint64_t)));

  AddIntAttribute(builder->AddNode("Gather", name + ".gather", {name + ".table", kOnnxSparseRowsName}), "axis", 0);
  AddIntAttribute(builder->AddNode("Flatten", name + ".embedded", {name + ".gather"}), "axis", 1);
  AddIntAttribute(builder->AddNode("Concat", name, {*current, name + ".embedded"}), "axis", 1);
  *current = name;
  *shape = layer.out_shape();
  return OkStatus();
}

}  // namespace

Shape OnnxInputDims(const proto::ModelSpec& spec, const Shape& input_shape) {
  if (spec.layer_size() > 0 && spec.layer(0).has_sparse_linear() && input_shape.size() == 2) {
    return {input_shape[0] * input_shape[1]};
  }
  if (spec.layer_size() > 0 && spec.layer(0).has_sparse_embedding() && input_shape.size() == 1) {
    return {input_shape[0] - spec.layer(0).sparse_embedding().fields()};
  }
  return input_shape;
}

StatusOr<onnx::ModelProto> BuildOnnxModel(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                          const float* params, uint64_t num_keys, const OnnxExportOptions& options) {
  if (spec.layer_size() == 0) return InvalidArgumentError("model needs at least one layer");
  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  model.set_producer_name("tessera");
  model.set_domain("org.tessera");
  model.set_doc_string(options.doc_string);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [key, value] : options.metadata) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(options.graph_name);
  SetBatchedFloatType(graph->add_input(), kOnnxInputName, OnnxInputDims(spec, input_shape));
  GraphBuilder builder(graph);

  std::string current = kOnnxInputName;  // the value the next layer reads
  Shape shape = input_shape;              // its per-example shape
  uint64_t offset = 0;
  // A sparse_linear layer 0 needs the number of features, which CreateLayer does not know,
  // and a sparse_embedding its table's rows.
  const int first_layer = spec.layer(0).has_sparse_linear() || spec.layer(0).has_sparse_embedding() ? 1 : 0;
  if (spec.layer(0).has_sparse_linear()) {
    RETURN_IF_ERROR(AddSparseLinear(spec.layer(0), input_shape, params, num_keys, options, &builder, &current,
                                    &shape, &offset));
  }
  if (spec.layer(0).has_sparse_embedding()) {
    RETURN_IF_ERROR(AddSparseEmbedding(spec, input_shape, options, &builder, &model, &current, &shape));
  }
  for (int i = first_layer; i < spec.layer_size(); ++i) {
    const std::string where = "model.layer[" + std::to_string(i) + "]";
    auto created = CreateModelLayer(spec.layer(i), shape, options.categorical_rows);
    if (!created.ok()) return created.status().WithContext(where);
    const Layer& layer = **created;
    const std::string name = "layer" + std::to_string(i) + "." + layer.type();
    // The layer's tensors, as Model::Create names and lays them out.
    std::vector<const ParamShape*> tensor_shapes;
    std::vector<const float*> tensor_values;
    const std::vector<ParamShape> param_shapes = layer.param_shapes();
    for (const ParamShape& p : param_shapes) {
      uint64_t size = 1;
      for (int64_t d : p.shape) size *= static_cast<uint64_t>(d);
      if (offset + size > num_keys) {
        return InvalidArgumentError(where + ": the model has more than the " + std::to_string(num_keys) +
                                    " parameters given");
      }
      tensor_shapes.push_back(&p);
      tensor_values.push_back(params + offset);
      offset += size;
    }
    const proto::Int8Spec* int8 = spec.layer(i).has_conv2d() && spec.layer(i).conv2d().has_int8()
                                      ? &spec.layer(i).conv2d().int8()
                                  : spec.layer(i).has_linear() && spec.layer(i).linear().has_int8()
                                      ? &spec.layer(i).linear().int8()
                                      : nullptr;
    std::vector<std::string> inputs = {current};
    if (int8 != nullptr) {
      // QDQ: weight (int8) -> DequantizeLinear; input -> QuantizeLinear -> DequantizeLinear.
      const ParamShape& w = *tensor_shapes.front();
      const int64_t out = w.shape[0];
      const std::vector<float> zeros(out, 0.0f);
      builder.AddInitializer(name + ".weight", w.shape, tensor_values.front(), onnx::TensorProto::INT8);
      builder.AddInitializer(name + ".weight_scale", {out}, tensor_values.back());
      builder.AddInitializer(name + ".weight_zero_point", {out}, zeros.data(), onnx::TensorProto::INT8);
      onnx::NodeProto* dq_weight = builder.AddNode(
          "DequantizeLinear", name + ".weight_dequantized",
          {name + ".weight", name + ".weight_scale", name + ".weight_zero_point"});
      AddIntAttribute(dq_weight, "axis", 0);
      const float input_scale = int8->input_scale();
      builder.AddInitializer(name + ".input_scale", {}, &input_scale);
      builder.AddInitializer(name + ".input_zero_point", {}, zeros.data(),
                             int8->input_unsigned() ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8);
      const std::vector<std::string> qparams = {name + ".input_scale", name + ".input_zero_point"};
      onnx::NodeProto* q = builder.AddNode("QuantizeLinear", name + ".input_quantized", {current, qparams[0], qparams[1]});
      onnx::NodeProto* dq = builder.AddNode("DequantizeLinear", name + ".input_dequantized",
                                            {q->output(0), qparams[0], qparams[1]});
      inputs = {dq->output(0), dq_weight->output(0)};
      if (tensor_shapes.size() == 3) {  // the bias stays float
        builder.AddInitializer(name + ".bias", tensor_shapes[1]->shape, tensor_values[1]);
        inputs.push_back(name + ".bias");
      }
    } else {
      for (size_t k = 0; k < tensor_shapes.size(); ++k) {
        const std::string tensor_name = name + "." + tensor_shapes[k]->name;
        if (options.fp16_weights) {
          builder.AddInitializer(tensor_name + "_fp16", tensor_shapes[k]->shape, tensor_values[k],
                                 onnx::TensorProto::FLOAT16);
          onnx::NodeProto* cast = builder.AddNode("Cast", tensor_name, {tensor_name + "_fp16"});
          AddIntAttribute(cast, "to", onnx::TensorProto::FLOAT);
        } else {
          builder.AddInitializer(tensor_name, tensor_shapes[k]->shape, tensor_values[k]);
        }
        inputs.push_back(tensor_name);
      }
    }
    switch (spec.layer(i).kind_case()) {
      case proto::LayerSpec::kLinear: {
        if (shape.size() != 1) {
          // Gemm wants [N, F]: flatten the example first, as Linear does.
          onnx::NodeProto* flatten = builder.AddNode("Flatten", name + ".flatten_input", {inputs[0]});
          AddIntAttribute(flatten, "axis", 1);
          inputs[0] = flatten->output(0);
        }
        onnx::NodeProto* gemm = builder.AddNode("Gemm", name, inputs);
        AddFloatAttribute(gemm, "alpha", 1.0f);
        AddFloatAttribute(gemm, "beta", 1.0f);
        AddIntAttribute(gemm, "transA", 0);
        AddIntAttribute(gemm, "transB", 1);
        break;
      }
      case proto::LayerSpec::kRelu:
        builder.AddNode("Relu", name, inputs);
        break;
      case proto::LayerSpec::kConv2D: {
        const proto::Conv2dSpec& c = spec.layer(i).conv2d();
        onnx::NodeProto* conv = builder.AddNode("Conv", name, inputs);
        AddIntsAttribute(conv, "kernel_shape", {c.kernel_size(), c.kernel_size()});
        AddIntsAttribute(conv, "strides", {c.stride(), c.stride()});
        AddIntsAttribute(conv, "pads", {c.padding(), c.padding(), c.padding(), c.padding()});
        AddIntsAttribute(conv, "dilations", {1, 1});
        AddIntAttribute(conv, "group", 1);
        break;
      }
      case proto::LayerSpec::kMaxPool2D: {
        const proto::MaxPool2dSpec& p = spec.layer(i).max_pool2d();
        const int64_t stride = p.stride() == 0 ? p.kernel_size() : p.stride();
        onnx::NodeProto* pool = builder.AddNode("MaxPool", name, inputs);
        AddIntsAttribute(pool, "kernel_shape", {p.kernel_size(), p.kernel_size()});
        AddIntsAttribute(pool, "strides", {stride, stride});
        AddIntsAttribute(pool, "pads", {0, 0, 0, 0});
        AddIntAttribute(pool, "ceil_mode", 0);  // floor, as Tessera and PyTorch
        break;
      }
      case proto::LayerSpec::kFlatten: {
        onnx::NodeProto* flatten = builder.AddNode("Flatten", name, inputs);
        AddIntAttribute(flatten, "axis", 1);
        break;
      }
      case proto::LayerSpec::kDropout:
        break;  // the identity at inference
      case proto::LayerSpec::kBatchNorm: {
        // Inputs X, scale, B, input_mean, input_var: Tessera's weight, bias,
        // running_mean, running_var, in that order.
        onnx::NodeProto* bn = builder.AddNode("BatchNormalization", name, inputs);
        AddFloatAttribute(bn, "epsilon", spec.layer(i).batch_norm().epsilon());
        break;
      }
      case proto::LayerSpec::kEmbedding: {
        // Tessera takes each input value as the id nearest to it (rounding
        // half to even, as std::nearbyint does) and copies that row of the
        // weight: Round (half to even in ONNX too), Cast to int64, Gather
        // along axis 0, whose output [N, ...input dims, dim] is exactly the
        // layer's. Ids outside [0, num_embeddings) are refused before a pass
        // (serve, predict), so the graph is only ever asked for valid ids.
        if (i != 0) return InvalidArgumentError(where + ": an embedding must be the first layer");
        onnx::NodeProto* round = builder.AddNode("Round", name + ".round", {inputs[0]});
        onnx::NodeProto* ids = builder.AddNode("Cast", name + ".ids", {round->output(0)});
        AddIntAttribute(ids, "to", onnx::TensorProto::INT64);
        onnx::NodeProto* gather = builder.AddNode("Gather", name, {inputs[1], ids->output(0)});
        AddIntAttribute(gather, "axis", 0);
        break;
      }
      case proto::LayerSpec::kColumnEmbedding:
        if (i != 0) return InvalidArgumentError(where + ": a column_embedding must be the first layer");
        AddColumnEmbedding(static_cast<const ColumnEmbedding&>(layer), name, inputs[0], inputs[1], &builder);
        break;
      case proto::LayerSpec::kSparseLinear:  // layer 0 is built before this loop
        return InvalidArgumentError(where + ": a sparse_linear must be the first layer");
      case proto::LayerSpec::kSparseEmbedding:  // layer 0 is built before this loop
        return InvalidArgumentError(where + ": a sparse_embedding must be the first layer");
      case proto::LayerSpec::kDotInteraction:
        return InvalidArgumentError(where + ": a dot_interaction cannot be exported yet");
      case proto::LayerSpec::KIND_NOT_SET:
        return InvalidArgumentError(where + ": layer sets no kind");
    }
    if (graph->node_size() > 0 && graph->node(graph->node_size() - 1).name() == name) {
      current = graph->node(graph->node_size() - 1).output(0);
    }
    shape = layer.out_shape();
  }
  const Task task = TaskOfLoss(spec.loss());
  const int64_t outputs = TaskOutputs(task, num_classes);
  if (shape.size() != 1 || shape[0] != outputs) {
    return InvalidArgumentError("the last layer gives outputs of shape " + ShapeText(shape) + ", expected " +
                                std::to_string(outputs) +
                                (task == Task::kMultiClass ? " (one per class)" : " (one per example)"));
  }
  if (offset != num_keys) {
    return InvalidArgumentError("the model has " + std::to_string(offset) + " parameters, not the " +
                                std::to_string(num_keys) + " given");
  }
  // The last value becomes "logits" ("value" for a regression): the
  // producing node's output renamed, or an Identity when there is none (a
  // model of dropout layers only).
  const char* output_name = TaskOutputName(task);
  onnx::NodeProto* last = graph->node_size() > 0 ? graph->mutable_node(graph->node_size() - 1) : nullptr;
  if (last != nullptr && last->output(0) == current) {
    last->set_output(0, output_name);
  } else {
    builder.AddNode("Identity", "logits_identity", {current})->set_output(0, output_name);
  }
  SetBatchedFloatType(graph->add_output(), output_name, {outputs});
  if (options.probabilities && task == Task::kMultiClass) {
    onnx::NodeProto* softmax = builder.AddNode("Softmax", "softmax", {kOnnxLogitsName});
    softmax->set_output(0, kOnnxProbabilitiesName);
    AddIntAttribute(softmax, "axis", 1);
    SetBatchedFloatType(graph->add_output(), kOnnxProbabilitiesName, {num_classes});
  }
  if (options.probabilities && task == Task::kBinary) {
    builder.AddNode("Sigmoid", "sigmoid", {kOnnxLogitsName})->set_output(0, kOnnxProbabilityName);
    SetBatchedFloatType(graph->add_output(), kOnnxProbabilityName, {1});
  }
  return model;
}

namespace {

// `text` with each run of whitespace (the checker's messages span lines) one space, trimmed.
std::string OneLine(const std::string& text) {
  std::string line;
  for (const char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      line += c;
    } else if (!line.empty() && line.back() != ' ') {
      line += ' ';
    }
  }
  if (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

// ONNX's shape inference divides by these without checking them.
Status CheckPositiveSizes(const onnx::GraphProto& graph) {
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    for (const onnx::AttributeProto& a : node.attribute()) {
      if (a.name() != "strides" && a.name() != "dilations" && a.name() != "kernel_shape") continue;
      for (int64_t v : a.ints()) {
        if (v <= 0) {
          return InvalidArgumentError("node " + std::to_string(i) + " (" + node.op_type() + "): " + a.name() +
                                      " must be positive, got " + std::to_string(v));
        }
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckOnnxModel(const onnx::ModelProto& model) {
  RETURN_IF_ERROR(CheckPositiveSizes(model.graph()));
  RETURN_IF_ERROR(CheckTensorSizes(model.graph()));  // shape inference reads constants by their dims
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
  } catch (const std::exception& e) {
    return InvalidArgumentError("the ONNX checker refuses the model: " + OneLine(e.what()));
  }
  return OkStatus();
}

StatusOr<std::string> SerializeOnnxModel(const onnx::ModelProto& model) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!model.SerializeToCodedStream(&coded) || coded.HadError()) {
      return InternalError("the ONNX model cannot be serialized (over 2 GiB?)");
    }
  }
  return bytes;
}

}  // namespace tessera
