// ONNX export of a Tessera model: the layer stack of a ModelSpec and its
// parameters as an ONNX ModelProto, built with ONNX's own C++ library
// (Debian's libonnx) and checked with its checker: fp32, fp16 weights, or
// int8 layers in QDQ form.
//
// The graph (docs/FORMATS.md, "Exported models"):
//   input  "input"  float [N, C, H, W] (N dynamic), normalized as in training:
//                   (pixel / 255 - mean) / std
//   output "logits" float [N, num_classes]
//   output "probabilities" float [N, num_classes] (Softmax over axis 1), optional
// A sparse_embedding first layer (over a sparse table, issue 16) takes two
// inputs: "input" float [N, numeric] (the numeric features) and "rows"
// int64 [N, fields], each field's row of the table: 1 + the index of its id
// in the sorted uint64 initializer "layer0.sparse_embedding.ids", or 0 for an
// empty field and an id the table does not hold. Row 0 of the float
// initializer "layer0.sparse_embedding.table" [ids + 1, dim] is zeros, so
// those read zeros, as training reads an id it never admitted. Nodes:
// Gather(table, rows, axis 0), Flatten (axis 1), Concat(input, that, axis 1).
// The ids are there for the caller's lookup, not read by a node: ONNX has no
// sorted search, so the caller (serve, predict, the onnxruntime check)
// binary-searches them. Only values_per_field 1 (Criteo's fields) exports.
// A binary model (spec.loss SIGMOID_BINARY_CROSS_ENTROPY) outputs "logits"
// [N, 1] and, optional, "probability" [N, 1] (Sigmoid); a regression
// (MEAN_SQUARED_ERROR) only "value" [N, 1] (export/task_outputs.h).
// One node per layer, named after it ("layer3.conv2d"): Conv, Relu, MaxPool,
// Flatten (axis 1), Gemm (transB = 1; a Flatten first when its input is not
// [N, F]), BatchNormalization (inference form, running statistics), and for
// an embedding (the first layer) Round, Cast to int64 and Gather (axis 0):
// ids rounded half to even, as Tessera rounds them; for a column_embedding
// (the first layer, over [N, numeric + columns]): Slice the numeric
// features, Slice the ids, Round, Cast to int64, Add each column's first row
// of the one weight (an int64 initializer "row_offsets" [columns]), Gather
// (axis 0), Flatten (axis 1) to [N, columns * dim], Concat (axis 1) after
// the numeric features. Dropout is the identity at inference and is left out. Weights are initializers
// named as the model's tensors ("layer0.conv2d.weight"), PyTorch layouts.
//
// An int8 layer (Int8Spec) is written in ONNX's QDQ form: its input goes
// through QuantizeLinear and DequantizeLinear (scale input_scale, zero point
// 0, int8 or uint8), its weight is an int8 initializer read through
// DequantizeLinear (axis 0, the weight_scale tensor, zero points 0), and the
// Conv or Gemm itself stays float, as runtimes expect to find it.
// fp16_weights stores float parameters as float16 behind Cast nodes.
#ifndef TESSERA_EXPORT_ONNX_EXPORT_H_
#define TESSERA_EXPORT_ONNX_EXPORT_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "export/sparse_table_rows.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

inline constexpr char kOnnxInputName[] = "input";
// A sparse_embedding model's second input: each field's row of the table.
inline constexpr char kOnnxSparseRowsName[] = "rows";
// The metadata_props key naming a sparse_embedding model's table.
inline constexpr char kOnnxSparseTableKey[] = "tessera.sparse_table";
inline constexpr char kOnnxLogitsName[] = "logits";
inline constexpr char kOnnxProbabilitiesName[] = "probabilities";
inline constexpr char kOnnxBatchDim[] = "N";
// ONNX opset and IR version of exported models (opset 13 came with IR 7, ONNX 1.8).
inline constexpr int64_t kOnnxOpset = 13;
inline constexpr int64_t kOnnxIrVersion = 7;

struct OnnxExportOptions {
  // Adds the "probabilities" output (Softmax of the logits; a binary
  // model's "probability", their Sigmoid; nothing for a regression).
  bool probabilities = true;
  std::string graph_name = "tessera";
  std::string doc_string;
  // Model metadata_props, in order (key, value).
  std::vector<std::pair<std::string, std::string>> metadata;
  // Stores every float parameter as float16, each read through a Cast back
  // to float32 (half the bytes; the graph still computes in float32).
  bool fp16_weights = false;
  // A table's categorical columns' numbers of ids (Model::Create's
  // categorical_rows), which a column_embedding first layer needs; empty
  // for other models.
  std::vector<int64_t> categorical_rows;
  // For a model whose first layer is a sparse_linear: its number of features
  // (the weight's rows; LibsvmData.num_features). Default 0: no such layer.
  int64_t sparse_features = 0;
  // For a model whose first layer is a sparse_embedding: its table's rows
  // (borrowed; must outlive the call). Default null: no such layer.
  const SparseTableRows* sparse_table = nullptr;
};

// The graph input's per-example dims for a model of `spec` over examples of
// `input_shape`: input_shape, except a sparse_linear model's [K, 2] pairs,
// which the graph takes flat, [2K] (the same floats, as a batch holds them),
// and a sparse_embedding model's [numeric + fields], whose "input" is the
// numeric features only, [numeric] (the fields are the second input, "rows").
Shape OnnxInputDims(const proto::ModelSpec& spec, const Shape& input_shape);

// Builds the ONNX model of `spec` for examples of `input_shape` ([C, H, W] or
// [F]; [K, 2] pairs for a sparse_linear first layer, whose features
// options.sparse_features gives, and whose graph input is [N, 2K]) with num_classes outputs (one for spec.loss binary or regression), its weights taken from `params` (num_keys
// float32 in key order, as a checkpoint holds them). InvalidArgument naming
// the problem when the spec does not build (Model::Create's checks) or
// num_keys is not the model's.
StatusOr<onnx::ModelProto> BuildOnnxModel(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                          const float* params, uint64_t num_keys, const OnnxExportOptions& options);

// onnx::checker::check_model, then ONNX's shape inference in strict mode
// (every node's shapes must infer and agree with the declared outputs);
// first the checks ONNX leaves out and crashed without: positive strides
// and kernels, and every constant tensor's byte count against its dims
// (export/onnx_tensor_sizes.h). InvalidArgument with the checker's message,
// on one line, when the model fails.
Status CheckOnnxModel(const onnx::ModelProto& model);

// The model's bytes (protobuf wire format, deterministic: the same model
// always gives the same bytes). Internal when it cannot be serialized
// (larger than protobuf's 2 GiB).
StatusOr<std::string> SerializeOnnxModel(const onnx::ModelProto& model);

}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_EXPORT_H_
