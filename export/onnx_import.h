// ONNX import: an exported model.onnx back into a runnable Tessera model (the
// inverse of onnx_export.h). The graph must be a chain of the ops Tessera
// exports (Conv, Relu, MaxPool, Flatten, Gemm, BatchNormalization, an
// optional final Softmax or, for a binary model, Sigmoid, Identity; an embedding first layer's Round, Cast to
// int64 and Gather(weight, ids, axis 0); a column_embedding first layer's
// Slices, Round, Cast, Add of row offsets, Gather, Flatten and Concat
// (onnx_export.h); a sparse_linear first layer's Reshape and the twelve
// nodes after it (onnx_export.cc's AddSparseLinear); an int8 layer's
// QuantizeLinear and
// DequantizeLinear pairs and weight DequantizeLinear; float16 weights' Casts)
// with the attributes Tessera's layers
// support; anything else (another op, a branch, an attribute value Tessera
// cannot compute, a missing or misshapen initializer, a truncated file) is
// InvalidArgument naming the node or tensor. Never crashes on a bad file.
//
// The model repository (docs/FORMATS.md, "Model repository"; its layout is
// export/model_repository_layout.h): ReadModelVersion reads one version,
// checking the manifest's size and SHA-256 of model.onnx.
#ifndef TESSERA_EXPORT_ONNX_IMPORT_H_
#define TESSERA_EXPORT_ONNX_IMPORT_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/task.h"
#include "export/model_repository_layout.h"
#include "export/sparse_table_rows.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

struct ImportedModel {
  proto::ModelSpec spec;      // the layer stack (Dropout where layer numbers skip one)
  Shape input_shape;          // one example: [C, H, W] or [F]
  int num_classes = 0;        // logits per example (a regression: 1 value)
  std::vector<float> params;  // key order, as Model::Create lays them out
  // A column_embedding first layer's tables' rows (Model::Create's
  // categorical_rows, from the graph's row offsets); empty otherwise.
  std::vector<int64_t> categorical_rows;
  // The graph also outputs "probabilities" (binary: "probability").
  bool has_probabilities = false;
  // By the graph's head: a Sigmoid is binary, a "value" output regression
  // (spec.loss says so too, so Model::Create makes one output).
  Task task = Task::kMultiClass;
  std::string input_name;          // "input"
  std::map<std::string, std::string> metadata;  // metadata_props
  // "fp32"; "fp16" when parameters are stored as float16; "int8" when
  // layers compute in int8 (Int8Spec, from QDQ nodes).
  std::string precision = "fp32";
  // A sparse_linear first layer's features (its weight's rows); 0 without
  // one. Such a model's input_shape is the graph's [2K], its layer's [K, 2].
  int64_t sparse_features = 0;
  // A sparse_embedding first layer's table (its sorted ids and their rows,
  // the graph's "layer0.sparse_embedding.*"); null without one. Such a
  // model's input_shape is the layer's [numeric + fields]: the graph's
  // "input" [numeric] and "rows" [fields] side by side.
  std::shared_ptr<const SparseTableRows> sparse_table;
};

// Maps a parsed ModelProto to a ModelSpec and its parameters, checking it
// with ONNX's checker first.
StatusOr<ImportedModel> ImportOnnxModel(const onnx::ModelProto& model);

// Parses the bytes of a model.onnx, then ImportOnnxModel.
StatusOr<ImportedModel> ImportOnnxBytes(const std::string& bytes);

// One version of a model in a model repository.
struct ModelVersionFiles {
  std::string name;
  int64_t version = 0;
  ImportedModel model;
  InputNormalization normalization;
  // The manifest's task, class names and preprocessing (IDX for a manifest
  // written before they were recorded).
  ModelPreprocessing preprocessing;
  std::string sha256;  // of model.onnx
  std::string manifest_json;
};

// Reads VERSION_DIR/manifest.json and VERSION_DIR/model.onnx (with its
// external data, export/onnx_external_data.h, read and checked): the manifest
// must be a tessera-model JSON object whose file_bytes and sha256 match
// model.onnx (so a version being copied in is refused until complete), and
// whose normalization agrees with the model's metadata_props when the model
// has them, whose task is the one the model's outputs make (a Sigmoid head:
// binary, a "value" output: regression), and whose preprocessing (when
// there) fits the model's input and classes. NotFound when a file is
// missing, InvalidArgument otherwise.
StatusOr<ModelVersionFiles> ReadModelVersion(const std::string& version_dir);

}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_IMPORT_H_
