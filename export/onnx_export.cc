#include "export/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <exception>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "core/task.h"
#include "export/task_outputs.h"

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

 private:
  onnx::GraphProto* graph_;
};

}  // namespace

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
  SetBatchedFloatType(graph->add_input(), kOnnxInputName, input_shape);
  GraphBuilder builder(graph);

  std::string current = kOnnxInputName;  // the value the next layer reads
  Shape shape = input_shape;              // its per-example shape
  uint64_t offset = 0;
  for (int i = 0; i < spec.layer_size(); ++i) {
    const std::string where = "model.layer[" + std::to_string(i) + "]";
    auto created = CreateLayer(spec.layer(i), shape);
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
        return InvalidArgumentError(where + ": a column_embedding (categorical columns) cannot be exported yet");
      case proto::LayerSpec::kSparseLinear:
        return InvalidArgumentError(where + ": a sparse_linear (libsvm data) cannot be exported yet");
      case proto::LayerSpec::kSparseEmbedding:
        return InvalidArgumentError(where + ": a sparse_embedding (its rows are a sparse table) cannot be exported yet");
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
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("the ONNX checker refuses the model: ") + e.what());
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
