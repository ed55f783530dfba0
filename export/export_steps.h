// The optional steps of the export pipeline (export/export_pipeline.h):
// pruning with fine-tuning, and quantization, each measuring the model's test
// accuracy after it. Each step changes the model being exported (its spec,
// parameters and tensors) and records itself for the manifest. Not part of
// the export library's interface: only export_pipeline.cc includes it.
#ifndef TESSERA_EXPORT_EXPORT_STEPS_H_
#define TESSERA_EXPORT_EXPORT_STEPS_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/dataset.h"
#include "core/json.h"
#include "core/status.h"
#include "export/export_data.h"
#include "export/export_pipeline.h"
#include "export/sparse_table_rows.h"
#include "models/model.h"
#include "proto/job.pb.h"

namespace tessera {

// The model on its way through the steps.
struct ExportedModel {
  proto::JobSpec spec;  // its model() is the exported model's
  Shape input_shape;    // one example's ([K, 2] pairs for libsvm data)
  int64_t sparse_features = 0;  // libsvm data's features (Model::Create's sparse_features); else 0
  int num_classes = kImageDatasetClasses;
  Task task = Task::kMultiClass;  // its spec's model.loss's (set from the planned data)
  // A table, image-folder or libsvm job's data, read through training's readers;
  // null for IDX data, read through core/dataset.h.
  std::shared_ptr<const ExportData> data;
  // A table's categorical columns' numbers of ids (Model::Create's
  // categorical_rows, for a column_embedding); empty for other data.
  std::vector<int64_t> categorical_rows;
  // A sparse_embedding first layer's table, as the checkpoint holds it
  // (ReadCheckpointTableRows); null for other models.
  std::shared_ptr<const SparseTableRows> sparse_table;
  std::vector<float> params;
  std::vector<TensorInfo> tensors;
  std::vector<ExportStepResult> steps;
  std::vector<JsonObject> steps_json;  // the manifest's "steps", one object per step
  std::string precision = "fp32";         // fp32, fp16, int8
  std::optional<JsonObject> quantization;  // the manifest's "quantization" when quantized
  std::optional<JsonObject> pruning;       // the manifest's "pruning_details" when pruned
};

// Shortest text that reads back as the same float ("0.286").
std::string FloatText(float v);

// The model of `exported` (its spec's layers, its params) evaluated on the
// spec's test set, inputs made as the workers make them (IDX: BatchReader;
// tables and image folders: OpenExampleReader's test reader; a sparse table's
// ids each read their row of exported.sparse_table, or zeros); not done
// (done = false) when !options.evaluate. The data's errors otherwise.
StatusOr<Evaluation> EvaluateParams(const ExportOptions& options, const ExportedModel& exported);
// `model` (built for `exported`'s spec) evaluated the same way.
StatusOr<Evaluation> EvaluateModel(const ExportedModel& exported, Model* model);

// The manifest's test figures of `eval` for a model of `task`, in order,
// each null (nullopt) when not evaluated or undefined: multi-class
// test_accuracy; binary test_auc, test_log_loss, test_accuracy; regression
// test_rmse, test_mae, test_r2.
std::vector<std::pair<std::string, std::optional<double>>> TestMetricFields(const Evaluation& eval, Task task);

// Appends the step `name` and its evaluation to model->steps, and its
// manifest object ({"step": NAME, "test_accuracy": A or null}; the task's
// TestMetricFields for binary and regression) to model->steps_json.
// Returns that object, for the step's own fields.
JsonObject& RecordStep(const std::string& name, const Evaluation& eval, ExportedModel* model);

// Prunes as options say (REQUIRES: options.prune_sparsity > 0), then
// fine-tunes through *fine_tuner when options.fine_tune_epochs > 0. Reports
// what was pruned through `progress`. The first error: InvalidArgument for a
// model with categorical columns (not supported yet), a spec the fine-tuner
// cannot run, a pruning or evaluation error, the fine-tuning's.
Status PruneAndFineTune(const ExportOptions& options, FineTuner* fine_tuner, const ExportProgress& progress,
                        ExportedModel* model);

// Quantizes as options say (REQUIRES: options.quantize is not kNone), int8
// calibrated on training examples. InvalidArgument for fp16 weights beyond
// float16's range; the calibration's, quantization's or evaluation's error.
Status QuantizeModel(const ExportOptions& options, const ExportProgress& progress, ExportedModel* model);

}  // namespace tessera

#endif  // TESSERA_EXPORT_EXPORT_STEPS_H_
