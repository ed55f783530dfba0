#include "export/export_pipeline.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/idx_reader.h"
#include "core/image_folder_data.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "core/libsvm_data.h"
#include "core/table_data.h"
#include "export/export_data.h"
#include "export/export_steps.h"
#include "export/model_repository_layout.h"
#include "export/onnx_export.h"
#include "scheduler/table_vocabulary.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// What the test set says of an IDX model's input: one example's shape, and
// the scale training applied to its values. Tables and image folders are
// preprocessed before the model (ExportData): their input is taken as it
// is (scale 1, mean 0, std 1).
struct InputFormat {
  // Without the test set (not evaluating, on a machine without the data)
  // Fashion-MNIST's.
  Shape shape = {1, 28, 28};
  // Training scaled byte pixels by 1/255 and int32 values (ids) not at all.
  float scale = 1.0f / 255.0f;
  float mean = 0, std = 1;
};

StatusOr<InputFormat> ReadIdxInputFormat(const ExportOptions& options, const proto::DataSpec& data) {
  InputFormat format;
  format.mean = data.mean();
  format.std = data.std();
  uint8_t data_type = kIdxUnsignedByte;
  if (auto dims = ReadIdxDims(DataPath(data, data.test_images()), &data_type); dims.ok()) {
    format.shape = ExampleShape(*dims);
  } else if (options.evaluate) {
    return InvalidArgumentError("cannot read the test set to evaluate the model: " + dims.status().message() +
                                " (--data-dir DIR names another place, --noevaluate skips the evaluation)");
  }
  if (data_type == kIdxInt32) format.scale = 1.0f;
  return format;
}

// The model's input, classes and (tables, image folders) the data as the
// workers read it, into *model. The training records are those the
// checkpoint's job trained on (an override of max_train_examples, for
// fine-tuning, does not change the scaling recorded), in the files the
// overridden spec names (--data-dir).
StatusOr<InputFormat> ReadInputFormat(const ExportOptions& options, const ExportSource& source, ExportedModel* model) {
  const proto::DataSpec& data = model->spec.data();
  if (!IsExportDataFormat(data)) {
    ASSIGN_OR_RETURN(const InputFormat format, ReadIdxInputFormat(options, data));
    model->input_shape = format.shape;
    return format;
  }
  proto::JobSpec as_trained = model->spec;
  as_trained.mutable_data()->set_max_train_examples(source.manifest.spec().data().max_train_examples());
  // Vocabulary columns take the vocabularies the run stored when it started: the ids it trained with.
  std::optional<proto::TableVocabularies> stored;
  if (HasVocabularyColumns(data)) {
    auto read = ReadTableVocabularies(RunDirOf(source.dir));
    if (!read.ok()) return read.status().WithContext("reading the categorical columns' vocabularies");
    stored = *std::move(read);
  }
  ASSIGN_OR_RETURN(ExportData planned, PlanExportData(as_trained, source.manifest.examples_per_epoch(),
                                                      stored ? &*stored : nullptr));
  InputFormat format;
  format.shape = planned.input_shape;
  format.scale = 1.0f;
  model->input_shape = planned.input_shape;
  model->sparse_features = planned.sparse_features;
  model->num_classes = planned.num_classes;
  model->categorical_rows = planned.categorical_rows;
  model->task = TaskOfLoss(planned.loss);
  // Every later step builds the model from this spec: with the loss training
  // resolved, so a binary or regression model has its one output.
  model->spec.mutable_model()->set_loss(planned.loss);
  model->data = std::make_shared<const ExportData>(std::move(planned));
  return format;
}

// The source model: the checkpoint must hold exactly the tensors its spec's
// model declares. Evaluates it and records the "source" step.
Status LoadSource(const ExportOptions& options, ExportSource* source, ExportedModel* model) {
  auto created = Model::Create(model->spec.model(), model->input_shape, model->num_classes, Device::kCpu,
                               model->categorical_rows, model->sparse_features);
  if (!created.ok()) return created.status().WithContext(source->dir + "/MANIFEST");
  std::unique_ptr<Model> built = std::move(created).value();
  model->tensors = built->tensors();
  const proto::CheckpointManifest& m = source->manifest;
  bool same = static_cast<int>(model->tensors.size()) == m.tensors_size() &&
              built->num_keys() == source->params.size();
  for (size_t t = 0; same && t < model->tensors.size(); ++t) {
    const proto::TensorMeta& meta = m.tensors(static_cast<int>(t));
    same = meta.name() == model->tensors[t].name && meta.offset() == model->tensors[t].offset &&
           std::vector<int64_t>(meta.shape().begin(), meta.shape().end()) == model->tensors[t].shape;
  }
  if (!same) {
    return InvalidArgumentError(source->dir + ": the checkpoint's tensors are not those of its spec's model for " +
                                "examples of " + ShapeText(model->input_shape));
  }
  std::copy(source->params.begin(), source->params.end(), built->params());
  Evaluation eval;
  if (options.evaluate) {
    auto e = EvaluateModel(*model, built.get());
    if (!e.ok()) return e.status().WithContext("evaluating on the test set");
    eval = *e;
  }
  model->params = std::move(source->params);
  RecordStep("source", eval, model);
  return OkStatus();
}

// The first layer of a model over a sparse table, or null.
const proto::SparseEmbeddingSpec* SparseEmbeddingOf(const proto::ModelSpec& spec) {
  return spec.layer_size() > 0 && spec.layer(0).has_sparse_embedding() ? &spec.layer(0).sparse_embedding() : nullptr;
}

// A sparse_embedding model is exported as it is or with float16 dense
// weights (its table stays float32): int8 layers and pruning know neither
// the table nor the layer.
Status CheckSparseTableExportSteps(const ExportOptions& options, const ExportedModel& model) {
  if (SparseEmbeddingOf(model.spec.model()) == nullptr) return OkStatus();
  if (options.quantize == Quantization::kInt8) {
    return InvalidArgumentError("--quantize int8: this model's first layer is a sparse_embedding (a sparse table), "
                                "which has no int8 form; export it as fp32 or fp16");
  }
  if (options.prune_sparsity > 0) {
    return InvalidArgumentError("--prune-sparsity: this model's first layer is a sparse_embedding (a sparse table), "
                                "which pruning does not handle; export it without pruning");
  }
  return OkStatus();
}

// A sparse_embedding model's table, read from every server part of the
// checkpoint into model->sparse_table. Only Criteo data feeds sparse tables
// today, and only its preprocessing is recorded.
Status LoadSparseTable(const ExportSource& source, ExportedModel* model) {
  const proto::SparseEmbeddingSpec* layer = SparseEmbeddingOf(model->spec.model());
  if (layer == nullptr) return OkStatus();
  if (model->data == nullptr || model->data->preprocessing.kind != InputKind::kCriteo) {
    return InvalidArgumentError("a sparse_embedding model exports only over data.format CRITEO for now");
  }
  const auto& tables = source.manifest.spec().model().sparse_table();
  for (int t = 0; t < tables.size(); ++t) {
    if (tables[t].name() != layer->table()) continue;
    ASSIGN_OR_RETURN(SparseTableRows rows, ReadCheckpointTableRows(source.dir, source.manifest, t));
    model->sparse_table = std::make_shared<const SparseTableRows>(std::move(rows));
    return OkStatus();
  }
  return InvalidArgumentError(source.dir + "/MANIFEST: the job has no sparse table '" + layer->table() + "'");
}

// A sparse_linear model (libsvm data) is exported as it is or with float16
// weights: int8 layers and pruning know only Conv2d and Linear weights.
Status CheckSparseExportSteps(const ExportOptions& options, const ExportedModel& model) {
  RETURN_IF_ERROR(CheckSparseTableExportSteps(options, model));
  if (model.sparse_features == 0) return OkStatus();
  if (options.quantize == Quantization::kInt8) {
    return InvalidArgumentError("--quantize int8: this model's first layer is a sparse_linear (libsvm data), which "
                                "has no int8 form; export it as fp32 or fp16");
  }
  if (options.prune_sparsity > 0) {
    return InvalidArgumentError("--prune-sparsity: this model's first layer is a sparse_linear (libsvm data), which "
                                "pruning does not handle; export it without pruning");
  }
  return OkStatus();
}

// The exported model as ONNX, its weights and metadata (docs/FORMATS.md).
StatusOr<onnx::ModelProto> BuildOnnx(const ExportOptions& options, const ExportSource& source,
                                     const ExportedModel& model, const InputFormat& input,
                                     const std::string& params_sha256) {
  const proto::JobSpec& spec = model.spec;
  const std::string step = std::to_string(source.manifest.step());
  OnnxExportOptions onnx;
  onnx.probabilities = options.probabilities;
  onnx.fp16_weights = options.quantize == Quantization::kFp16;
  onnx.graph_name = spec.name();
  onnx.categorical_rows = model.categorical_rows;
  onnx.sparse_features = model.sparse_features;
  onnx.sparse_table = model.sparse_table.get();
  const std::string input_text =
      model.sparse_table != nullptr
          ? "float numeric features [N, " + std::to_string(OnnxInputDims(spec.model(), model.input_shape)[0]) +
                "] and int64 rows [N, fields] of the table (1 + the index of the field's id in "
                "layer0.sparse_embedding.ids; 0: no id, or one the table does not hold), made as "
                "manifest.json's \"preprocessing\" says"
      : model.data == nullptr
          ? "images as float [N, " + std::to_string(model.input_shape[0]) +
                ", H, W], each value normalized as (value * scale - mean) / std with the metadata's "
                "tessera.input_scale, tessera.input_mean and tessera.input_std"
          : "float examples of shape " + ShapeText(OnnxInputDims(spec.model(), model.input_shape)) +
                " (batched), preprocessed as manifest.json's \"preprocessing\" says";
  const std::string output_text = model.task == Task::kBinary       ? "logits [N, 1] and probability [N, 1] of class 1"
                                  : model.task == Task::kRegression ? "value [N, 1]"
                                                                    : "logits [N, classes]";
  onnx.doc_string = "Tessera model '" + spec.name() + "' from checkpoint step " + step + ". Input: " + input_text +
                    ". Output: " + output_text + ".";
  onnx.metadata = {
      {"tessera.input_scale", FloatText(input.scale)},
      {"tessera.input_mean", FloatText(input.mean)},
      {"tessera.input_std", FloatText(input.std)},
      {"tessera.input_normalization", "(pixel * input_scale - input_mean) / input_std"},
      {"tessera.job_name", spec.name()},
      {"tessera.source_step", step},
      {"tessera.params_sha256", params_sha256},
      {"tessera.precision", model.precision},
  };
  return BuildOnnxModel(spec.model(), model.input_shape, model.num_classes, model.params.data(),
                        model.params.size(), onnx);
}

// The manifest of the exported model, all but its version.
ModelManifest MakeManifest(const ExportOptions& options, const ExportSource& source, const ExportedModel& model,
                           const InputFormat& input, const std::string& params_sha256) {
  ModelManifest m;
  m.name = fs::path(options.model_dir).filename().string();
  m.created_unix_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  m.precision = model.precision;
  m.quantization = model.quantization;
  m.pruning = options.prune_sparsity > 0 ? (options.prune_mode == PruneMode::kUnstructured ? "unstructured"
                                                                                            : "structured")
                                         : "none";
  m.pruning_details = model.pruning;
  int64_t zeros = 0, weights = 0;
  for (const TensorInfo& t : model.tensors) {
    if (!t.trainable) continue;
    m.num_trainable_parameters += t.size;
    if (t.shape.size() < 2) continue;  // weights only: biases, scales are not pruned
    weights += static_cast<int64_t>(t.size);
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) zeros += model.params[k] == 0.0f;
  }
  m.sparsity = weights > 0 ? static_cast<double>(zeros) / weights : 0.0;
  m.num_parameters = model.params.size();
  m.params_sha256 = params_sha256;
  m.input_shape = OnnxInputDims(model.spec.model(), model.input_shape);  // the graph's: libsvm pairs flat
  m.num_classes = TaskOutputs(model.task, model.num_classes);
  m.probabilities = options.probabilities && model.task != Task::kRegression;
  m.scale = input.scale;
  m.mean = input.mean;
  m.std = input.std;
  if (model.data != nullptr) m.preprocessing = model.data->preprocessing;
  std::error_code ec;
  m.checkpoint = fs::absolute(source.dir, ec).lexically_normal().string();
  m.step = source.manifest.step();
  m.epochs_done = source.manifest.cursor().epoch();
  m.job_name = model.spec.name();
  for (const JsonObject& step : model.steps_json) m.steps.Add(step);
  const Evaluation& eval = model.steps.back().eval;
  m.evaluated = eval.done;
  m.test_accuracy = eval.accuracy;
  m.test_loss = eval.loss;
  m.test_examples = eval.examples;
  if (model.task != Task::kMultiClass) m.test_metrics = TestMetricFields(eval, model.task);
  return m;
}

// x rounded to 4 decimals, as the summary lines show figures.
std::string FigureText(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", x);
  return buf;
}

}  // namespace

std::string EvaluationText(const Evaluation& eval) {
  if (eval.task == Task::kBinary) {
    return std::string("test AUC ") + (eval.binary.auc_defined ? FigureText(eval.binary.auc) : "undefined") +
           ", log loss " + FigureText(eval.binary.log_loss);
  }
  if (eval.task == Task::kRegression) {
    return "test RMSE " + FigureText(eval.regression.rmse) + ", R\u00b2 " +
           (eval.regression.r2_defined ? FigureText(eval.regression.r2) : "undefined");
  }
  return "test accuracy " + FigureText(eval.accuracy);
}

Status ExportCheckpoint(const ExportOptions& options, ExportSource source, FineTuner* fine_tuner,
                        const ExportProgress& progress, ExportResult* result) {
  *result = ExportResult();
  ExportedModel model;
  model.spec = source.spec;
  ASSIGN_OR_RETURN(const InputFormat input, ReadInputFormat(options, source, &model));
  RETURN_IF_ERROR(CheckSparseExportSteps(options, model));
  RETURN_IF_ERROR(LoadSparseTable(source, &model));
  RETURN_IF_ERROR(LoadSource(options, &source, &model));
  // The exported parameters' digest: the checkpoint's until a step changes them.
  std::string params_sha256 = source.params_sha256;
  if (options.prune_sparsity > 0) {
    RETURN_IF_ERROR(PruneAndFineTune(options, fine_tuner, progress, &model));
    params_sha256 = ParamsSha256(model.params.data(), model.params.size());
  }
  if (options.quantize != Quantization::kNone) {
    RETURN_IF_ERROR(QuantizeModel(options, progress, &model));
    params_sha256 = ParamsSha256(model.params.data(), model.params.size());
  }

  ASSIGN_OR_RETURN(onnx::ModelProto onnx, BuildOnnx(options, source, model, input, params_sha256));
  if (Status s = CheckOnnxModel(onnx); !s.ok()) {
    result->onnx_check_failed = true;
    return s;
  }
  // The checker saw the whole model; now the largest tensors may leave it.
  std::vector<std::string> external;
  const uint64_t external_bytes = MoveInitializersToExternalData(&onnx, options.external_data_threshold, &external);
  ASSIGN_OR_RETURN(const std::string bytes, SerializeOnnxModel(onnx));
  ModelManifest manifest = MakeManifest(options, source, model, input, params_sha256);
  manifest.file_bytes = bytes.size();
  manifest.sha256 = Sha256Hex(bytes.data(), bytes.size());
  manifest.external_data_bytes = external_bytes;
  ASSIGN_OR_RETURN(result->version, WriteNextVersion(
                                        options.model_dir, bytes,
                                        [&](int64_t version) {
                                          manifest.version = version;
                                          return ManifestJson(manifest);
                                        },
                                        [&](const std::string& version_dir) -> Status {
                                          if (external.empty()) return OkStatus();
                                          return WriteExternalDataFile(version_dir + "/" + kExternalDataFileName,
                                                                       external);
                                        }));
  result->model_bytes = bytes.size();
  result->external_data_bytes = external_bytes;
  result->sparse_rows = model.sparse_table != nullptr ? model.sparse_table->count() : 0;
  result->model_sha256 = manifest.sha256;
  result->num_parameters = model.params.size();
  result->eval = model.steps.back().eval;
  result->steps = model.steps;
  return OkStatus();
}

}  // namespace tessera
