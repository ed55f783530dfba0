// The export pipeline behind `tessera export`: a verified checkpoint's model
// into the next version of a model repository (export/model_repository_layout.h).
// In order: for a table, image-folder or libsvm job, plan its data again as the
// scheduler did (export/export_data.h: its classes and preprocessing, and
// training's readers for evaluation and calibration); check the checkpoint
// holds its spec's model, evaluate it on the test set, prune
// (export/pruning.h), fine-tune the pruned model (through a FineTuner the
// caller gives), quantize to fp16 or int8 (export/quantize.h), build the
// ONNX model (export/onnx_export.h), and write model.onnx with its manifest,
// every step's test accuracy (a binary model's AUC and log loss, a
// regression's RMSE and R²) and the preprocessing included
// (export/model_preprocessing.h). A sparse_linear model (libsvm data) and a
// sparse_embedding model (a sparse table, Criteo data) are refused int8
// quantization and pruning (InvalidArgument, before any work). A sparse
// table's rows come from every server part of the checkpoint
// (export/sparse_table_rows.h) into the ONNX model; a model whose tensors
// pass a threshold keeps the largest in ONNX external data
// (export/onnx_external_data.h), model.onnx.data beside model.onnx.
// tools/cmd_export.cc parses the flags into ExportOptions and prints the result.
#ifndef TESSERA_EXPORT_EXPORT_PIPELINE_H_
#define TESSERA_EXPORT_EXPORT_PIPELINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/task.h"
#include "core/task_metrics.h"
#include "export/onnx_external_data.h"
#include "models/model.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"

namespace tessera {

enum class Quantization { kNone, kFp16, kInt8 };
enum class PruneMode { kUnstructured, kStructured };

// What the export does. The caller checks the values (tools/cmd_export.cc
// names the flags in its messages).
struct ExportOptions {
  // MODEL_REPO/NAME, without a trailing '/': the export becomes its next
  // version. Required.
  std::string model_dir;
  // none (default): fp32; fp16: weights stored as float16; int8: Conv2d and
  // Linear compute in int8, activations calibrated on training examples.
  Quantization quantize = Quantization::kNone;
  // Fraction of the weights to prune, in [0, 1); default 0: no pruning.
  double prune_sparsity = 0;
  PruneMode prune_mode = PruneMode::kUnstructured;  // default unstructured
  // Epochs of fine-tuning after pruning; default 0: none. Needs
  // prune_sparsity > 0 and a FineTuner.
  int fine_tune_epochs = 0;
  // Training batches (of the spec's batch size) that calibrate int8
  // activations; default 0: 32.
  int calibration_batches = 0;
  // Add the output 'probabilities' (softmax of 'logits'); default true.
  bool probabilities = true;
  // Measure the test accuracy after every step; default true (needs the
  // test set).
  bool evaluate = true;
  // When the model's tensors hold more than this many bytes, the largest go
  // to external data (model.onnx.data). Default: a little under 2 GiB,
  // protobuf's limit; tests lower it.
  uint64_t external_data_threshold = kDefaultExternalDataThreshold;
};

// The checkpoint being exported, read and verified by the caller
// (tools/checkpoint_params.h's LoadCheckpoint).
struct ExportSource {
  std::string dir;  // the checkpoint directory
  proto::CheckpointManifest manifest;
  proto::JobSpec spec;  // the manifest's, with the caller's overrides applied
  std::vector<float> params;  // key order
  std::string params_sha256;
};

// Fine-tuning trains on a cluster, which the export library cannot start:
// `tessera export` gives one that runs the local training cluster
// (tools/fine_tune.h). Called from the exporting thread only.
class FineTuner {
 public:
  virtual ~FineTuner() = default;
  // OK when a fine-tuning job of `spec` can run; called before pruning, so
  // that a spec that cannot run fails before any work is done. The error
  // otherwise.
  virtual Status CheckRunnable(const proto::JobSpec& spec) = 0;
  // `params` (of spec.model(), whose tensors are `tensors`) trained for
  // `epochs` epochs; weights that are 0 stay 0 when `freeze_zero_weights`.
  // The error when the training fails.
  virtual StatusOr<std::vector<float>> Train(const proto::JobSpec& spec, const std::vector<TensorInfo>& tensors,
                                             const std::vector<float>& params, int epochs,
                                             bool freeze_zero_weights) = 0;
};

// A model's test accuracy and mean loss on the spec's test set, and for a
// binary or regression model its task's figures (core/task_metrics.h).
struct Evaluation {
  bool done = false;  // false when not evaluated (ExportOptions::evaluate)
  double accuracy = 0, loss = 0;  // accuracy: multi-class and binary (p > 0.5)
  int64_t examples = 0;
  Task task = Task::kMultiClass;
  BinaryResult binary;          // task kBinary only
  RegressionResult regression;  // task kRegression only
};

// "test accuracy 0.9333" (multi-class), "test AUC 0.97, log loss 0.1234"
// (binary; "AUC undefined" with one class only), "test RMSE 0.31, R² 0.88"
// (regression), figures rounded to 4 decimals, for the export's lines.
// (Multi-class lines are printed as before, by tools/cmd_export.cc.)
std::string EvaluationText(const Evaluation& eval);


// One step of the export ("source", "prune", "fine_tune", "quantize") and
// the model's test accuracy after it.
struct ExportStepResult {
  std::string name;
  Evaluation eval;
};

struct ExportResult {
  int64_t version = 0;      // the version written
  uint64_t model_bytes = 0;  // of model.onnx
  uint64_t external_data_bytes = 0;  // of model.onnx.data; 0 when there is none
  int64_t sparse_rows = 0;  // a sparse table's rows carried (ids the checkpoint holds); 0 without one
  std::string model_sha256;
  uint64_t num_parameters = 0;
  Evaluation eval;  // the exported model's
  std::vector<ExportStepResult> steps;
  // Set on failure when the ONNX model the export built fails ONNX's
  // checker: Tessera's own bug, not the input's.
  bool onnx_check_failed = false;
};

// Called with a line for the user as a step ends ("pruned 117376 of 234752
// weights ...").
using ExportProgress = std::function<void(const std::string& line)>;

// Exports `source` as options say, writing the next version of
// options.model_dir. `fine_tuner` may be null when options.fine_tune_epochs
// is 0. Fills *result and returns OK, or returns the first error (a bad
// checkpoint or spec, data that cannot be read, a step that fails, a write
// that fails; result->onnx_check_failed tells the checker's refusal apart);
// nothing is written then.
Status ExportCheckpoint(const ExportOptions& options, ExportSource source, FineTuner* fine_tuner,
                        const ExportProgress& progress, ExportResult* result);

}  // namespace tessera

#endif  // TESSERA_EXPORT_EXPORT_PIPELINE_H_
