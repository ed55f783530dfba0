#include "export/export_steps.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/dataset.h"
#include "core/spec.h"
#include "export/pruning.h"
#include "export/quantize.h"
#include "export/task_outputs.h"
#include "worker/batch_reader.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

constexpr int kDefaultCalibrationBatches = 32;

const char* PruneModeName(PruneMode mode) {
  return mode == PruneMode::kUnstructured ? "unstructured" : "structured";
}

int64_t CountWeights(const std::vector<TensorInfo>& tensors, const std::vector<float>& params, bool nonzero_only) {
  int64_t n = 0;
  for (const TensorInfo& t : tensors) {
    if (!IsPrunableWeight(t)) continue;
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) n += !nonzero_only || params[k] != 0.0f;
  }
  return n;
}

// model->tensors from its spec, after a step changed the model's shape.
Status RebuildTensors(ExportedModel* model) {
  ASSIGN_OR_RETURN(auto built, Model::Create(model->spec.model(), model->input_shape, model->num_classes,
                                             Device::kCpu, model->categorical_rows, model->sparse_features));
  model->tensors = built->tensors();
  return OkStatus();
}

// Prunes model->params (and for structured pruning its spec and tensors).
// Returns the count of weights set to 0 for unstructured pruning.
StatusOr<std::optional<int64_t>> Prune(const ExportOptions& options, const ExportProgress& progress,
                                       ExportedModel* model) {
  char line[256];
  if (options.prune_mode == PruneMode::kUnstructured) {
    ASSIGN_OR_RETURN(const UnstructuredPruning pruned,
                     PruneUnstructured(model->tensors, options.prune_sparsity, &model->params));
    std::snprintf(line, sizeof(line), "pruned %lld of %lld weights (unstructured: |w| <= %g became 0)",
                  static_cast<long long>(pruned.pruned), static_cast<long long>(pruned.weights), pruned.threshold);
    progress(line);
    return std::optional<int64_t>(pruned.pruned);
  }
  ASSIGN_OR_RETURN(StructuredPruning pruned, PruneStructured(model->spec.model(), model->input_shape,
                                                             model->num_classes, model->params,
                                                             options.prune_sparsity));
  std::string layers;
  for (size_t i = 0; i < pruned.kept.size(); ++i) {
    if (pruned.kept[i].empty()) continue;
    const proto::LayerSpec& before = model->spec.model().layer(static_cast<int>(i));
    const int units = before.has_conv2d() ? before.conv2d().out_channels() : before.linear().out_features();
    layers += (layers.empty() ? "" : ", ") + std::string("layer") + std::to_string(i) + " " + std::to_string(units) +
              " -> " + std::to_string(pruned.kept[i].size());
  }
  progress("pruned (structured): " + layers + "; " + std::to_string(pruned.params_before) + " -> " +
           std::to_string(pruned.params_after) + " parameters");
  *model->spec.mutable_model() = pruned.spec;
  model->params = std::move(pruned.params);
  RETURN_IF_ERROR(RebuildTensors(model));
  return std::optional<int64_t>();
}

// The order calibration draws training examples in: seeded by the spec's seed.
std::vector<int64_t> CalibrationOrder(uint64_t seed, int64_t examples) {
  std::vector<int64_t> order(examples);
  for (int64_t i = 0; i < examples; ++i) order[i] = i;
  std::mt19937_64 rng(seed ^ 0xca11b4a7e5ULL);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

// `count` training examples of a table or image-folder job, through
// training's reader (epoch 0's augmentation, when the spec augments).
StatusOr<std::vector<float>> ReaderCalibrationExamples(const ExportedModel& model, int64_t* count) {
  ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> train, OpenExportReader(*model.data, Split::kTraining));
  *count = std::min(*count, train->count());
  std::vector<int64_t> order = CalibrationOrder(model.spec.seed(), train->count());
  order.resize(*count);
  std::vector<float> x;
  std::vector<float> labels;
  train->set_epoch(0);
  RETURN_IF_ERROR(train->Read(order, &x, &labels));
  return x;
}

// `count` training examples for calibration, drawn at random (seeded by the
// spec's seed) and normalized as the workers normalize them; *count is
// lowered to the examples there are.
StatusOr<std::vector<float>> CalibrationExamples(const ExportedModel& model, int64_t* count) {
  if (model.data != nullptr) return ReaderCalibrationExamples(model, count);
  const proto::DataSpec& d = model.spec.data();
  ASSIGN_OR_RETURN(ImageDataset train, LoadImageDataset(DataPath(d, d.train_images()), DataPath(d, d.train_labels()),
                                                        d.max_train_examples()));
  if (train.example_size() != NumElements(model.input_shape)) {
    return InvalidArgumentError(DataPath(d, d.train_images()) + " has examples of " +
                                std::to_string(train.example_size()) + " values; the model takes " +
                                std::to_string(NumElements(model.input_shape)));
  }
  *count = std::min(*count, train.count);
  const std::vector<int64_t> order = CalibrationOrder(model.spec.seed(), train.count);
  std::vector<float> x;
  std::vector<float> labels;
  BatchReader(&train, d.mean(), d.std()).Read(order, 0, *count, &x, &labels);
  return x;
}

// Rounds the weights to float16, what the float16 initializers hold (and so
// what a runtime computes with). InvalidArgument for a weight beyond float16's
// range (65504), which would become infinite.
Status QuantizeFp16(ExportedModel* model) {
  for (const TensorInfo& t : model->tensors) {
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
      const float v = model->params[k];
      if (std::isfinite(v) && std::fabs(v) > 65504.0f) {
        return InvalidArgumentError("--quantize fp16: " + t.name + " holds " + FloatText(v) +
                                    ", beyond float16's range (65504); export it as fp32 or int8");
      }
    }
  }
  for (float& v : model->params) v = static_cast<float>(static_cast<_Float16>(v));
  model->quantization = JsonObject()
                            .Add("method", "fp16 weights")
                            .Add("storage", "every parameter as float16, Cast to float32 in the graph")
                            .Add("compute", "float32");
  return OkStatus();
}

// {"layer": "layer0.linear", "input_scale": ..., ...}: one int8 layer for the manifest.
JsonObject Int8LayerJson(const Int8LayerReport& r) {
  return JsonObject()
      .Add("layer", r.layer)
      .AddFloat32("input_scale", r.input_scale)
      .Add("input_type", r.input_unsigned ? "uint8" : "int8")
      .AddFloat32("calibration_min", r.input_min)
      .AddFloat32("calibration_max_abs", r.input_max)
      .AddFloat32("clipped_fraction", r.clipped_fraction);
}

// Makes every Conv2d and Linear an int8 layer, calibrated on training
// examples. Returns the calibration examples taken.
StatusOr<int64_t> QuantizeInt8Layers(const ExportOptions& options, const ExportProgress& progress,
                                     ExportedModel* model) {
  const int batches = options.calibration_batches > 0 ? options.calibration_batches : kDefaultCalibrationBatches;
  int64_t count = static_cast<int64_t>(batches) * std::max(1, model->spec.batch_size());
  auto x = CalibrationExamples(*model, &count);
  if (!x.ok()) return x.status().WithContext("reading calibration examples");
  ASSIGN_OR_RETURN(QuantizedModel quantized,
                   QuantizeInt8(model->spec.model(), model->input_shape, model->num_classes, model->params, *x, count,
                                Int8Options(), model->categorical_rows));
  *model->spec.mutable_model() = quantized.spec;
  model->params = std::move(quantized.params);
  RETURN_IF_ERROR(RebuildTensors(model));
  JsonArray layers;
  for (const Int8LayerReport& r : quantized.layers) layers.Add(Int8LayerJson(r));
  model->quantization = JsonObject()
                            .Add("method", "int8 QDQ")
                            .Add("weights", "int8, symmetric, a scale per output channel")
                            .Add("activations", "int8 or uint8 per tensor, zero point 0")
                            .Add("calibration_examples", count)
                            .AddFloat64("calibration_percentile", Int8Options().percentile)
                            .Add("batch_norms_folded", quantized.folded_batch_norms)
                            .Add("layers", layers);
  const std::string folded = quantized.folded_batch_norms == 0
                                 ? ""
                                 : " (" + std::to_string(quantized.folded_batch_norms) + " batch norms folded in)";
  progress("quantized " + std::to_string(quantized.layers.size()) + " layers to int8" + folded + ", calibrated on " +
           std::to_string(count) + " training examples");
  return count;
}

}  // namespace

std::string FloatText(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

namespace {

// Adds a binary or regression batch's outputs (the logits or values) to
// the task's metrics. InvalidArgument for a label the task does not take.
Status AddTaskExamples(Task task, const float* labels, const float* outputs, int64_t n, BinaryMetrics* binary,
                       RegressionMetrics* regression) {
  for (int64_t i = 0; i < n; ++i) {
    if (task == Task::kBinary) {
      RETURN_IF_ERROR(binary->Add(static_cast<int64_t>(labels[i]), SigmoidProbability(outputs[i])));
    } else {
      RETURN_IF_ERROR(regression->Add(labels[i], outputs[i]));
    }
  }
  return OkStatus();
}

// Reads examples `batch` of `reader` into *x and *labels; for a model over a
// sparse table, each id slot's place in x gets its row among the batch's
// rows, which `table` gives (zeros for an id it does not hold, as training
// reads an id it never admitted) and the model is bound to (*rows).
Status ReadBatch(ExampleReader* reader, const std::vector<int64_t>& batch, const SparseTableRows* table, Model* model,
                 std::vector<float>* x, std::vector<float>* labels, std::vector<float>* rows) {
  if (table == nullptr) return reader->Read(batch, x, labels);
  std::vector<uint64_t> ids;
  RETURN_IF_ERROR(reader->ReadWithIds(batch, x, labels, &ids));
  const int64_t n = static_cast<int64_t>(batch.size()), slots = reader->ids_per_example();
  const int64_t numeric = model->input_features() - slots;
  ASSIGN_OR_RETURN(const SparseBatch sparse, MakeSparseBatch(ids, n, numeric, slots, x->data()));
  GatherBatchRows(*table, sparse.ids, rows);
  model->BindSparseRows(rows->data(), /*row_grads=*/nullptr, static_cast<int64_t>(sparse.ids.size()));
  return OkStatus();
}

// `model` over every example of `reader`, in batches of 256.
StatusOr<Evaluation> EvaluateReader(ExampleReader* reader, Model* model, const SparseTableRows* table) {
  std::vector<float> x, labels, outputs, rows;
  std::vector<int64_t> batch;
  int64_t correct = 0;
  double loss = 0;
  const Task task = model->task();
  BinaryMetrics binary;
  RegressionMetrics regression;
  constexpr int64_t kBatch = 256;
  const int64_t count = reader->count();
  for (int64_t begin = 0; begin < count; begin += kBatch) {
    const int64_t n = std::min(kBatch, count - begin);
    batch.resize(n);
    for (int64_t i = 0; i < n; ++i) batch[i] = begin + i;
    RETURN_IF_ERROR(ReadBatch(reader, batch, table, model, &x, &labels, &rows));
    outputs.resize(n * model->num_outputs());
    const BatchStats stats = model->EvaluateBatch(x.data(), labels.data(), n, /*predicted=*/nullptr,
                                                  task == Task::kMultiClass ? nullptr : outputs.data());
    correct += stats.correct;
    loss += stats.loss_sum;
    if (task != Task::kMultiClass) {
      RETURN_IF_ERROR(AddTaskExamples(task, labels.data(), outputs.data(), n, &binary, &regression));
    }
  }
  Evaluation e;
  e.done = true;
  e.task = task;
  e.examples = count;
  e.accuracy = count > 0 ? static_cast<double>(correct) / count : 0;
  e.loss = count > 0 ? loss / count : 0;
  if (task == Task::kBinary) e.binary = binary.Result();
  if (task == Task::kRegression) e.regression = regression.Result();
  return e;
}

}  // namespace

StatusOr<Evaluation> EvaluateModel(const ExportedModel& exported, Model* model) {
  std::unique_ptr<ExampleReader> reader;
  if (exported.data != nullptr) {
    ASSIGN_OR_RETURN(reader, OpenExportReader(*exported.data, Split::kTest));
  } else {
    const proto::DataSpec& d = exported.spec.data();
    ASSIGN_OR_RETURN(ImageDataset test, LoadImageDataset(DataPath(d, d.test_images()), DataPath(d, d.test_labels()),
                                                         d.max_test_examples()));
    if (test.example_size() != model->input_features()) {
      return InvalidArgumentError(DataPath(d, d.test_images()) + " has examples of " +
                                  std::to_string(test.example_size()) + " values; the model takes " +
                                  std::to_string(model->input_features()));
    }
    reader = std::make_unique<ImageExampleReader>(std::move(test), d.mean(), d.std());
  }
  return EvaluateReader(reader.get(), model, exported.sparse_table.get());
}

std::vector<std::pair<std::string, std::optional<double>>> TestMetricFields(const Evaluation& eval, Task task) {
  const bool done = eval.done;
  auto figure = [done](bool defined, double v) { return done && defined ? std::optional<double>(v) : std::nullopt; };
  if (task == Task::kBinary) {
    return {{"test_auc", figure(eval.binary.auc_defined, eval.binary.auc)},
            {"test_log_loss", figure(true, eval.binary.log_loss)},
            {"test_accuracy", figure(true, eval.binary.accuracy)}};
  }
  if (task == Task::kRegression) {
    return {{"test_rmse", figure(true, eval.regression.rmse)},
            {"test_mae", figure(true, eval.regression.mae)},
            {"test_r2", figure(eval.regression.r2_defined, eval.regression.r2)}};
  }
  return {{"test_accuracy", figure(true, eval.accuracy)}};
}

StatusOr<Evaluation> EvaluateParams(const ExportOptions& options, const ExportedModel& exported) {
  if (!options.evaluate) return Evaluation();
  ASSIGN_OR_RETURN(auto model, Model::Create(exported.spec.model(), exported.input_shape, exported.num_classes,
                                             Device::kCpu, exported.categorical_rows, exported.sparse_features));
  std::copy(exported.params.begin(), exported.params.end(), model->params());
  return EvaluateModel(exported, model.get());
}

JsonObject& RecordStep(const std::string& name, const Evaluation& eval, ExportedModel* model) {
  model->steps.push_back({name, eval});
  JsonObject& step = model->steps_json.emplace_back();
  step.Add("step", name);
  if (model->task != Task::kMultiClass) {
    for (const auto& [key, value] : TestMetricFields(eval, model->task)) {
      value.has_value() ? step.AddFloat64(key, *value) : step.AddNull(key);
    }
  } else if (eval.done) {
    step.AddFloat64("test_accuracy", eval.accuracy);
  } else {
    step.AddNull("test_accuracy");
  }
  return step;
}

Status PruneAndFineTune(const ExportOptions& options, FineTuner* fine_tuner, const ExportProgress& progress,
                        ExportedModel* model) {
  if (!model->categorical_rows.empty()) {
    // Pruning walks the layers without the table's columns, and fine-tuning
    // would plan the data (and its vocabularies) again.
    return InvalidArgumentError("--prune-sparsity: pruning a model with categorical columns (a column_embedding "
                                "first layer) is not supported yet; export it without pruning");
  }
  if (options.fine_tune_epochs > 0) {
    // A spec the fine-tuning job cannot run (--workers 0, ...) fails now, before anything is printed.
    proto::JobSpec job = model->spec;
    job.set_epochs(options.fine_tune_epochs);
    RETURN_IF_ERROR(fine_tuner->CheckRunnable(job));
  }
  const uint64_t params_before = model->params.size();
  const int64_t weights_before = CountWeights(model->tensors, model->params, false);
  ASSIGN_OR_RETURN(const std::optional<int64_t> pruned_weights, Prune(options, progress, model));
  const int64_t weights_after = CountWeights(model->tensors, model->params, false);
  auto eval = EvaluateParams(options, *model);
  if (!eval.ok()) return eval.status().WithContext("evaluating the pruned model");
  JsonObject& step = RecordStep("prune", *eval, model);
  if (pruned_weights.has_value()) step.Add("pruned_weights", *pruned_weights);
  step.Add("nonzero_weights", CountWeights(model->tensors, model->params, true));
  step.Add("parameters", static_cast<int64_t>(model->params.size()));

  if (options.fine_tune_epochs > 0) {
    ASSIGN_OR_RETURN(model->params, fine_tuner->Train(model->spec, model->tensors, model->params,
                                                      options.fine_tune_epochs,
                                                      options.prune_mode == PruneMode::kUnstructured));
    auto tuned = EvaluateParams(options, *model);
    if (!tuned.ok()) return tuned.status().WithContext("evaluating the fine-tuned model");
    RecordStep("fine_tune", *tuned, model).Add("epochs", options.fine_tune_epochs);
  }
  const int64_t nonzero_after = CountWeights(model->tensors, model->params, true);
  // Of the source model's weights, the fraction the export no longer has
  // (structured) or holds as 0 (unstructured).
  const double achieved = weights_before > 0 ? 1.0 - static_cast<double>(nonzero_after) / weights_before : 0.0;
  model->pruning = JsonObject()
                       .Add("mode", PruneModeName(options.prune_mode))
                       .AddFloat64("requested_sparsity", options.prune_sparsity)
                       .AddFloat64("achieved_sparsity", achieved)
                       .Add("weights_before", weights_before)
                       .Add("weights_after", weights_after)
                       .Add("nonzero_weights_after", nonzero_after)
                       .Add("parameters_before", static_cast<int64_t>(params_before))
                       .Add("parameters_after", static_cast<int64_t>(model->params.size()))
                       .Add("fine_tune_epochs", options.fine_tune_epochs);
  return OkStatus();
}

Status QuantizeModel(const ExportOptions& options, const ExportProgress& progress, ExportedModel* model) {
  std::optional<int64_t> calibration_examples;
  if (options.quantize == Quantization::kFp16) {
    model->precision = "fp16";
    RETURN_IF_ERROR(QuantizeFp16(model));
  } else {
    model->precision = "int8";
    ASSIGN_OR_RETURN(calibration_examples, QuantizeInt8Layers(options, progress, model));
  }
  auto eval = EvaluateParams(options, *model);
  if (!eval.ok()) return eval.status().WithContext("evaluating the quantized model");
  JsonObject& step = RecordStep("quantize", *eval, model);
  step.Add("precision", model->precision);
  if (calibration_examples.has_value()) step.Add("calibration_examples", *calibration_examples);
  return OkStatus();
}

}  // namespace tessera
