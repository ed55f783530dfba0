// `tessera export CHECKPOINT --out MODEL_REPO/NAME`: a checkpoint's model as
// ONNX in a versioned model repository (the layout Triton reads,
// export/model_repository_layout.h):
//
//   MODEL_REPO/NAME/VERSION/model.onnx
//   MODEL_REPO/NAME/VERSION/manifest.json
//
// This file parses the flags, reads the checkpoint and prints; the export
// itself (pruning, fine-tuning, quantization, the ONNX model, the version
// written whole or not at all) is export/export_pipeline.h, which fine-tunes
// through the local training cluster given here (tools/fine_tune.h).
#include <gflags/gflags.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "export/export_pipeline.h"
#include "tools/checkpoint_params.h"
#include "tools/command.h"
#include "tools/fine_tune.h"
#include "tools/local_job.h"
#include "tools/role_flags.h"
#include "tools/spec_flags.h"

DEFINE_string(out, "", "export: MODEL_REPO/NAME, the model's directory in a model repository; the export becomes "
                       "its next version, MODEL_REPO/NAME/VERSION/ (required)");
DEFINE_string(quantize, "none", "export: none (fp32), fp16 (weights stored as float16) or int8 (Conv2d and Linear "
                                "compute in int8: weights per output channel, activations calibrated on training "
                                "examples; written as ONNX QuantizeLinear/DequantizeLinear)");
DEFINE_double(prune_sparsity, 0, "export: fraction to prune, in [0, 1): of all Conv2d/Linear weights (unstructured, "
                                 "the smallest |w| become 0), or of each layer's output channels and neurons "
                                 "(structured, the layers shrink); 0: no pruning");
DEFINE_string(prune_mode, "unstructured", "export: unstructured or structured pruning (used with --prune-sparsity)");
DEFINE_int32(fine_tune_epochs, 0, "export: epochs of fine-tuning the pruned model on a local training cluster (as "
                                  "tessera train; pruned weights stay 0); needs --prune-sparsity > 0");
DEFINE_int32(calibration_batches, 0, "export: training batches (of the spec's batch size, drawn at random with "
                                     "the spec's seed) that calibrate int8 activations; 0: 32 batches");
DEFINE_bool(probabilities, true, "export: add the output 'probabilities' (softmax of 'logits'; a binary model's "
                          "'probability', their sigmoid; a regression has none) to the ONNX graph");
DEFINE_bool(best, false, "export: the run's best checkpoint instead of its newest: the one summary.json names as "
                         "best_checkpoint (cut at the end of the epoch with the best validation metric); the "
                         "argument must be a finished run's directory");
DEFINE_uint64(external_data_threshold_bytes, tessera::kDefaultExternalDataThreshold,
              "export: when the model's tensors hold more than this many bytes, the largest (a sparse table's "
              "rows and ids first) go to ONNX external data, model.onnx.data beside model.onnx; default a "
              "little under 2 GiB, protobuf's limit");
DEFINE_bool(evaluate, true, "export: measure the exported model's test accuracy (binary: AUC and log loss; "
                            "regression: RMSE and R²) on the spec's test set (needs the "
                            "data; --noevaluate skips it; a table or image-folder model needs its training data "
                            "either way, for its scaling and classes)");

namespace tessera {
namespace {

std::string DoubleText(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

Status CheckFlags() {
  if (FLAGS_quantize != "none" && FLAGS_quantize != "fp16" && FLAGS_quantize != "int8") {
    return InvalidArgumentError("--quantize must be none, fp16 or int8, got '" + FLAGS_quantize + "'");
  }
  if (FLAGS_prune_mode != "unstructured" && FLAGS_prune_mode != "structured") {
    return InvalidArgumentError("--prune-mode must be unstructured or structured, got '" + FLAGS_prune_mode + "'");
  }
  if (!(FLAGS_prune_sparsity >= 0 && FLAGS_prune_sparsity < 1)) {
    return InvalidArgumentError("--prune-sparsity must be in [0, 1), got " + DoubleText(FLAGS_prune_sparsity));
  }
  if (FLAGS_fine_tune_epochs < 0) {
    return InvalidArgumentError("--fine-tune-epochs must be >= 0, got " + std::to_string(FLAGS_fine_tune_epochs));
  }
  if (FLAGS_fine_tune_epochs > 0 && FLAGS_prune_sparsity == 0) {
    return InvalidArgumentError("--fine-tune-epochs fine-tunes a pruned model: it needs --prune-sparsity > 0");
  }
  if (FLAGS_threads < 0) return InvalidArgumentError("--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  if (FLAGS_max_restarts < 0) {
    return InvalidArgumentError("--max-restarts must be >= 0, got " + std::to_string(FLAGS_max_restarts));
  }
  if (Status s = ParseProgressMode(FLAGS_progress).status(); !s.ok()) return s;
  if (FLAGS_calibration_batches < 0) {
    return InvalidArgumentError("--calibration-batches must be >= 0, got " +
                                std::to_string(FLAGS_calibration_batches));
  }
  if (FLAGS_calibration_batches != 0 && FLAGS_quantize != "int8") {
    return InvalidArgumentError("--calibration-batches calibrates int8 quantization: it needs --quantize int8");
  }
  return OkStatus();
}

// REQUIRES: CheckFlags() is OK.
ExportOptions OptionsFromFlags(const std::string& model_dir) {
  ExportOptions options;
  options.model_dir = model_dir;
  options.quantize = FLAGS_quantize == "fp16"   ? Quantization::kFp16
                     : FLAGS_quantize == "int8" ? Quantization::kInt8
                                                : Quantization::kNone;
  options.prune_sparsity = FLAGS_prune_sparsity;
  options.prune_mode = FLAGS_prune_mode == "structured" ? PruneMode::kStructured : PruneMode::kUnstructured;
  options.fine_tune_epochs = FLAGS_fine_tune_epochs;
  options.calibration_batches = FLAGS_calibration_batches;
  options.probabilities = FLAGS_probabilities;
  options.evaluate = FLAGS_evaluate;
  options.external_data_threshold = FLAGS_external_data_threshold_bytes;
  return options;
}

// Fine-tuning on the local training cluster, which shows its progress as
// `tessera train` does and prints its own errors. Keeps the launcher's exit
// code, which the command returns when fine-tuning fails.
class LocalFineTuner : public FineTuner {
 public:
  // `self` must outlive this.
  explicit LocalFineTuner(const Command& self) : self_(self) {}

  Status CheckRunnable(const proto::JobSpec& spec) override {
    RETURN_IF_ERROR(CheckSpecRunnable(spec, "the fine-tuning job"));
    return FLAGS_force ? OkStatus() : CheckLocalWorkersFit(spec);
  }

  StatusOr<std::vector<float>> Train(const proto::JobSpec& spec, const std::vector<TensorInfo>& tensors,
                                     const std::vector<float>& params, int epochs, bool freeze_zero_weights) override {
    FineTuneOptions options;
    options.epochs = epochs;
    options.freeze_zero_weights = freeze_zero_weights;
    options.threads = FLAGS_threads;
    options.progress = ParseProgressMode(FLAGS_progress).value();
    options.max_restarts = FLAGS_max_restarts;
    std::vector<float> tuned;
    exit_code_ = FineTune(self_, spec, tensors, params, options, &tuned);
    if (exit_code_ != kExitOk) return AbortedError("fine-tuning ended with exit code " + std::to_string(exit_code_));
    return tuned;
  }

  int exit_code() const { return exit_code_; }

 private:
  const Command& self_;
  int exit_code_ = kExitOk;
};

void PrintLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Accuracy rounded to 4 decimals, as the summary lines show it.
std::string AccuracyText(double accuracy) { return DoubleText(std::round(accuracy * 1e4) / 1e4); }

void PrintResult(const std::string& note, const std::string& model_dir, const ExportResult& result) {
  std::printf("%s\n", note.c_str());
  const bool multi_class = result.eval.task == Task::kMultiClass;
  const std::string accuracy =
      !result.eval.done ? ""
      : multi_class     ? ", test accuracy " + AccuracyText(result.eval.accuracy) + " (" +
                          std::to_string(result.eval.examples) + " examples)"
                        : ", " + EvaluationText(result.eval) + " (" + std::to_string(result.eval.examples) + " examples)";
  const std::string external =
      result.external_data_bytes > 0
          ? " and model.onnx.data (" + DoubleText(std::round(result.external_data_bytes / 1e4) / 100) + " MB)"
          : "";
  const std::string rows =
      result.sparse_rows > 0 ? " and " + std::to_string(result.sparse_rows) + " sparse table rows" : "";
  std::printf("exported %s/%lld: model.onnx (%.2f MB, sha256 %s)%s, %zu parameters%s%s\n", model_dir.c_str(),
              static_cast<long long>(result.version), result.model_bytes / 1e6, result.model_sha256.c_str(),
              external.c_str(), static_cast<size_t>(result.num_parameters), rows.c_str(), accuracy.c_str());
  if (result.steps.size() > 1 && result.eval.done) {
    std::string line;
    for (const ExportStepResult& step : result.steps) {
      if (!line.empty()) line += ", ";
      line += step.name + " " + (multi_class ? AccuracyText(step.eval.accuracy) : EvaluationText(step.eval));
    }
    std::printf("%s after each step: %s\n", multi_class ? "test accuracy" : "evaluation", line.c_str());
  }
}

}  // namespace

int RunExport(const ParsedArgs& args) {
  const Command& self = FindCommand("export");
  if (args.positional.size() != 1) {
    return UsageError(self, "expected one checkpoint or run directory (tessera export CHECKPOINT --out MODEL_REPO/NAME)");
  }
  if (FLAGS_out.empty()) return UsageError(self, "--out MODEL_REPO/NAME is required");
  if (Status s = CheckFlags(); !s.ok()) return UsageError(self, s.message());
  std::string model_dir = FLAGS_out;
  while (model_dir.size() > 1 && model_dir.back() == '/') model_dir.pop_back();
  const std::string name = std::filesystem::path(model_dir).filename().string();
  if (name.empty() || name == "." || name == "..") {
    return UsageError(self, "--out must end in the model's name (MODEL_REPO/NAME), got '" + FLAGS_out + "'");
  }

  // The checkpoint, verified: every file's checksum, every key once, the digest.
  std::string checkpoint = args.positional[0], best_note;
  if (FLAGS_best) {
    StatusOr<std::string> best = BestCheckpointOfRun(checkpoint, &best_note);
    if (!best.ok()) return UsageError(self, best.status().message());
    checkpoint = *best;
  }
  auto loaded = LoadCheckpoint(checkpoint);
  if (!loaded.ok()) return UsageError(self, loaded.status().message());
  if (FLAGS_best) loaded->note = best_note;
  ExportSource source;
  source.dir = loaded->dir;
  source.manifest = loaded->manifest;
  source.spec = loaded->manifest.spec();
  source.params = std::move(loaded->params);
  source.params_sha256 = loaded->params_sha256;
  if (Status s = ApplySpecOverrides(args, &source.spec); !s.ok()) return UsageError(self, s.message());

  LocalFineTuner fine_tuner(self);
  ExportResult result;
  if (Status s = ExportCheckpoint(OptionsFromFlags(model_dir), std::move(source), &fine_tuner, PrintLine, &result);
      !s.ok()) {
    if (fine_tuner.exit_code() != kExitOk) return fine_tuner.exit_code();  // the launcher said why
    if (result.onnx_check_failed) {
      std::cerr << "tessera export: " << s.message() << std::endl;  // our bug, not the user's
      return kExitFailure;
    }
    return UsageError(self, s.message());
  }
  PrintResult(loaded->note, model_dir, result);
  return kExitOk;
}

}  // namespace tessera
