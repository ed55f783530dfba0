// `tessera export CHECKPOINT --out MODEL_REPO/NAME`: a checkpoint's model as
// ONNX in a versioned model repository (the layout Triton reads):
//
//   MODEL_REPO/NAME/VERSION/model.onnx
//   MODEL_REPO/NAME/VERSION/manifest.json
//
// VERSION is the next free integer (1, 2, ...). The version directory is
// written under a temporary name and renamed into place, so readers see a
// version whole or not at all. --prune-sparsity prunes the model first
// (export/pruning.h), --fine-tune-epochs then trains the pruned model on the
// local training cluster (tools/fine_tune.h), and --quantize last stores the
// weights as float16 or makes every Conv2d and Linear an int8 layer,
// calibrated on training examples (export/quantize.h). Every step's test
// accuracy goes into the manifest.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <stdio.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <functional>
#include <iostream>
#include <random>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/idx_reader.h"
#include "core/json.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "export/onnx_export.h"
#include "export/pruning.h"
#include "export/quantize.h"
#include "models/model.h"
#include "tools/checkpoint_params.h"
#include "tools/command.h"
#include "tools/fine_tune.h"
#include "tools/local_job.h"
#include "tools/role_flags.h"
#include "tools/spec_flags.h"
#include "worker/batch_reader.h"

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
DEFINE_bool(probabilities, true, "export: add the output 'probabilities' (softmax of 'logits') to the ONNX graph");
DEFINE_bool(evaluate, true, "export: measure the exported model's test accuracy on the spec's test set (needs the "
                            "data; --noevaluate skips it)");

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr int kDefaultCalibrationBatches = 32;

// Shortest text that reads back as the same float ("0.286").
std::string FloatText(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

std::string DoubleText(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

// ["N", 1, 28, 28]
std::string BatchedShapeJson(const Shape& shape) {
  std::string s = "[\"" + std::string(kOnnxBatchDim) + "\"";
  for (int64_t d : shape) s += ", " + std::to_string(d);
  return s + "]";
}

struct Evaluation {
  bool done = false;
  double accuracy = 0, loss = 0;
  int64_t examples = 0;
};

// The model's test accuracy and mean loss on the spec's test set, inputs
// normalized as the workers do (BatchReader).
StatusOr<Evaluation> Evaluate(const proto::JobSpec& spec, Model* model) {
  const proto::DataSpec& d = spec.data();
  ASSIGN_OR_RETURN(ImageDataset test, LoadImageDataset(DataPath(d, d.test_images()), DataPath(d, d.test_labels()),
                                                       d.max_test_examples()));
  if (test.example_size() != model->input_features()) {
    return InvalidArgumentError(DataPath(d, d.test_images()) + " has examples of " +
                                std::to_string(test.example_size()) + " values; the model takes " +
                                std::to_string(model->input_features()));
  }
  BatchReader reader(&test, d.mean(), d.std());
  std::vector<float> x;
  std::vector<uint8_t> labels;
  Evaluation e;
  int64_t correct = 0;
  double loss = 0;
  constexpr int64_t kBatch = 256;
  for (int64_t begin = 0; begin < test.count; begin += kBatch) {
    const int64_t n = std::min(kBatch, test.count - begin);
    reader.Read({}, begin, n, &x, &labels);
    const BatchStats stats = model->EvaluateBatch(x.data(), labels.data(), n);
    correct += stats.correct;
    loss += stats.loss_sum;
  }
  e.done = true;
  e.examples = test.count;
  e.accuracy = test.count > 0 ? static_cast<double>(correct) / test.count : 0;
  e.loss = test.count > 0 ? loss / test.count : 0;
  return e;
}

// The highest version under model_dir: names of decimal digits only, without
// a leading zero (as Triton counts them); 0 when there is none.
int64_t HighestVersion(const std::string& model_dir) {
  int64_t highest = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.size() > 18 || name[0] == '0' ||
        name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    highest = std::max<int64_t>(highest, std::stoll(name));
  }
  return highest;
}

// The topmost directory of `path` that does not exist yet (what MakeDirs
// would create first), or "" when `path` exists.
std::string FirstMissing(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (!p.empty() && !p.has_filename()) p = p.parent_path();
  std::string missing;
  // Only what surely is not there (ENOENT, ENOTDIR): never something we merely cannot see.
  while (!p.empty() && fs::status(p, ec).type() == fs::file_type::not_found) {
    missing = p.string();
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return missing;
}

struct ExportFiles {
  std::string model_bytes;
  // The manifest for a given version.
  std::function<std::string(int64_t version)> manifest;
};

// Writes VERSION/model.onnx and VERSION/manifest.json into model_dir under a
// temporary directory and renames it to the next free version (retrying when
// another export took that number first). Leaves nothing behind on failure:
// neither the temporary directory nor directories it created.
StatusOr<int64_t> WriteVersion(const std::string& model_dir, const ExportFiles& files) {
  const std::string created = FirstMissing(model_dir);
  std::string tmp;
  auto cleanup = [&](Status s) -> Status {
    std::error_code ec;
    if (!tmp.empty()) fs::remove_all(tmp, ec);
    if (!created.empty()) fs::remove_all(created, ec);
    return s;
  };
  if (Status s = MakeDirs(model_dir); !s.ok()) return cleanup(s);
  if (!fs::is_directory(model_dir)) return cleanup(InvalidArgumentError(model_dir + " is not a directory"));
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%d-%08x", static_cast<int>(getpid()), static_cast<unsigned>(rd()));
  // A dot first: never taken for a version.
  tmp = model_dir + "/.export-" + suffix;
  std::error_code ec;
  if (!fs::create_directory(tmp, ec) || ec) {
    tmp.clear();
    return cleanup(UnavailableError("cannot create a directory in " + model_dir + ": " +
                                    (ec ? ec.message() : std::string("it exists"))));
  }
  if (Status s = WriteFileAtomic(tmp + "/model.onnx", files.model_bytes); !s.ok()) return cleanup(s);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int64_t version = HighestVersion(model_dir) + 1;
    if (Status s = WriteFileAtomic(tmp + "/manifest.json", files.manifest(version)); !s.ok()) return cleanup(s);
    if (Status s = SyncDirectory(tmp); !s.ok()) return cleanup(s);
    const std::string final_dir = model_dir + "/" + std::to_string(version);
    int rc = renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // No RENAME_NOREPLACE on this file system: rename() still refuses a
      // non-empty target (every version holds files).
      rc = ::rename(tmp.c_str(), final_dir.c_str());
    }
    if (rc == 0) {
      tmp.clear();
      if (Status s = SyncDirectory(model_dir); !s.ok()) return s;  // the version is complete; only durability is in doubt
      return version;
    }
    if (errno != EEXIST && errno != ENOTEMPTY) {
      return cleanup(UnavailableError("cannot rename " + tmp + " to " + final_dir + ": " + std::strerror(errno)));
    }
  }
  return cleanup(UnavailableError("no free version in " + model_dir + " after 100 attempts"));
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

// One step of the export (the source checkpoint, pruning, fine-tuning, ...)
// and the model's test accuracy after it: an entry of the manifest's "steps".
struct ExportStep {
  std::string name;
  Evaluation eval;
  // More fields of the step's object: key and raw JSON value.
  std::vector<std::pair<std::string, std::string>> fields;
};

// [{"step": "source", "test_accuracy": 0.91}, {"step": "prune", ...}]
std::string StepsJson(const std::vector<ExportStep>& steps) {
  std::string j = "[";
  for (size_t i = 0; i < steps.size(); ++i) {
    const ExportStep& step = steps[i];
    j += std::string(i > 0 ? ", " : "") + "{\"step\": " + JsonQuote(step.name) +
         ", \"test_accuracy\": " + (step.eval.done ? DoubleText(step.eval.accuracy) : "null");
    for (const auto& [key, raw] : step.fields) j += ", " + JsonQuote(key) + ": " + raw;
    j += "}";
  }
  return j + "]";
}

// The model of `spec` with `params`, evaluated as Evaluate does; not done with --noevaluate.
StatusOr<Evaluation> EvaluateParams(const proto::JobSpec& spec, const Shape& input_shape,
                                    const std::vector<float>& params) {
  if (!FLAGS_evaluate) return Evaluation();
  ASSIGN_OR_RETURN(auto model, Model::Create(spec.model(), input_shape, kImageDatasetClasses));
  std::copy(params.begin(), params.end(), model->params());
  return Evaluate(spec, model.get());
}

int64_t CountWeights(const std::vector<TensorInfo>& tensors, const std::vector<float>& params, bool nonzero_only) {
  int64_t n = 0;
  for (const TensorInfo& t : tensors) {
    if (!IsPrunableWeight(t)) continue;
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) n += !nonzero_only || params[k] != 0.0f;
  }
  return n;
}

// What pruning did, for the manifest's "pruning_details".
struct PruneSummary {
  bool done = false;
  std::string mode;
  double requested = 0;
  int64_t weights_before = 0, weights_after = 0, nonzero_after = 0;
  uint64_t params_before = 0, params_after = 0;
  int fine_tune_epochs = 0;

  std::string Json() const {
    // Of the source model's weights, the fraction the export no longer has
    // (structured) or holds as 0 (unstructured).
    const double achieved = weights_before > 0 ? 1.0 - static_cast<double>(nonzero_after) / weights_before : 0.0;
    return "{\"mode\": " + JsonQuote(mode) + ", \"requested_sparsity\": " + DoubleText(requested) +
           ", \"achieved_sparsity\": " + DoubleText(achieved) + ", \"weights_before\": " +
           std::to_string(weights_before) + ", \"weights_after\": " + std::to_string(weights_after) +
           ", \"nonzero_weights_after\": " + std::to_string(nonzero_after) + ", \"parameters_before\": " +
           std::to_string(params_before) + ", \"parameters_after\": " + std::to_string(params_after) +
           ", \"fine_tune_epochs\": " + std::to_string(fine_tune_epochs) + "}";
  }
};

// Prunes, then fine-tunes, as the flags ask: *spec (its model), *params and
// *tensors become the exported model's, each step is appended to *steps.
// Returns kExitOk to go on, else the command's exit code.
int PruneAndFineTune(const Command& self, const Shape& input_shape, proto::JobSpec* spec, std::vector<float>* params,
                     std::vector<TensorInfo>* tensors, std::vector<ExportStep>* steps, PruneSummary* summary) {
  if (FLAGS_fine_tune_epochs > 0) {
    // A spec the fine-tuning job cannot run (--workers 0, ...) fails now, before anything is printed.
    proto::JobSpec job = *spec;
    job.set_epochs(FLAGS_fine_tune_epochs);
    if (Status s = CheckSpecRunnable(job, "the fine-tuning job"); !s.ok()) return UsageError(self, s.message());
    if (!FLAGS_force) {
      if (Status fits = CheckLocalWorkersFit(job); !fits.ok()) return UsageError(self, fits.message());
    }
  }
  summary->done = true;
  summary->mode = FLAGS_prune_mode;
  summary->requested = FLAGS_prune_sparsity;
  summary->params_before = params->size();
  summary->weights_before = CountWeights(*tensors, *params, false);
  std::vector<std::pair<std::string, std::string>> fields;
  if (FLAGS_prune_mode == "unstructured") {
    auto pruned = PruneUnstructured(*tensors, FLAGS_prune_sparsity, params);
    if (!pruned.ok()) return UsageError(self, pruned.status().message());
    std::printf("pruned %lld of %lld weights (unstructured: |w| <= %g became 0)\n",
                static_cast<long long>(pruned->pruned), static_cast<long long>(pruned->weights), pruned->threshold);
    fields.push_back({"pruned_weights", std::to_string(pruned->pruned)});
  } else {
    auto pruned = PruneStructured(spec->model(), input_shape, kImageDatasetClasses, *params, FLAGS_prune_sparsity);
    if (!pruned.ok()) return UsageError(self, pruned.status().message());
    std::string layers;
    for (size_t i = 0; i < pruned->kept.size(); ++i) {
      if (pruned->kept[i].empty()) continue;
      const proto::LayerSpec& before = spec->model().layer(static_cast<int>(i));
      const int units = before.has_conv2d() ? before.conv2d().out_channels() : before.linear().out_features();
      layers += (layers.empty() ? "" : ", ") + std::string("layer") + std::to_string(i) + " " + std::to_string(units) +
                " -> " + std::to_string(pruned->kept[i].size());
    }
    std::printf("pruned (structured): %s; %llu -> %llu parameters\n", layers.c_str(),
                static_cast<unsigned long long>(pruned->params_before),
                static_cast<unsigned long long>(pruned->params_after));
    *spec->mutable_model() = pruned->spec;
    *params = std::move(pruned->params);
    auto model = Model::Create(spec->model(), input_shape, kImageDatasetClasses);
    if (!model.ok()) return UsageError(self, model.status().message());
    *tensors = (*model)->tensors();
  }
  std::fflush(stdout);
  summary->params_after = params->size();
  summary->weights_after = CountWeights(*tensors, *params, false);
  auto eval = EvaluateParams(*spec, input_shape, *params);
  if (!eval.ok()) return UsageError(self, "evaluating the pruned model: " + eval.status().message());
  fields.push_back({"nonzero_weights", std::to_string(CountWeights(*tensors, *params, true))});
  fields.push_back({"parameters", std::to_string(params->size())});
  steps->push_back({"prune", *eval, fields});

  if (FLAGS_fine_tune_epochs > 0) {
    FineTuneOptions options;
    options.epochs = FLAGS_fine_tune_epochs;
    options.freeze_zero_weights = FLAGS_prune_mode == "unstructured";
    options.threads = FLAGS_threads;
    options.progress = ParseProgressMode(FLAGS_progress).value();
    options.max_restarts = FLAGS_max_restarts;
    std::vector<float> tuned;
    if (int code = FineTune(self, *spec, *tensors, *params, options, &tuned); code != kExitOk) return code;
    *params = std::move(tuned);
    summary->fine_tune_epochs = FLAGS_fine_tune_epochs;
    auto tuned_eval = EvaluateParams(*spec, input_shape, *params);
    if (!tuned_eval.ok()) return UsageError(self, "evaluating the fine-tuned model: " + tuned_eval.status().message());
    steps->push_back({"fine_tune", *tuned_eval, {{"epochs", std::to_string(FLAGS_fine_tune_epochs)}}});
  }
  summary->nonzero_after = CountWeights(*tensors, *params, true);
  return kExitOk;
}

// How the exported model stores and computes its numbers, for the manifest.
struct Precision {
  std::string name = "fp32";      // fp32, fp16, int8
  std::string details = "\"none\"";  // the manifest's "quantization": raw JSON
};

// `count` training examples for calibration, drawn at random (seeded by the
// spec's seed) and normalized as the workers normalize them.
StatusOr<std::vector<float>> CalibrationExamples(const proto::JobSpec& spec, const Shape& input_shape,
                                                int64_t* count) {
  const proto::DataSpec& d = spec.data();
  ASSIGN_OR_RETURN(ImageDataset train, LoadImageDataset(DataPath(d, d.train_images()), DataPath(d, d.train_labels()),
                                                        d.max_train_examples()));
  if (train.example_size() != NumElements(input_shape)) {
    return InvalidArgumentError(DataPath(d, d.train_images()) + " has examples of " +
                                std::to_string(train.example_size()) + " values; the model takes " +
                                std::to_string(NumElements(input_shape)));
  }
  *count = std::min(*count, train.count);
  std::vector<int64_t> order(train.count);
  for (int64_t i = 0; i < train.count; ++i) order[i] = i;
  std::mt19937_64 rng(spec.seed() ^ 0xca11b4a7e5ULL);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<float> x;
  std::vector<uint8_t> labels;
  BatchReader(&train, d.mean(), d.std()).Read(order, 0, *count, &x, &labels);
  return x;
}

// Quantizes as --quantize asks: *spec (its model), *params and *tensors
// become the exported model's; the step and its test accuracy are appended
// to *steps. Returns kExitOk to go on, else the command's exit code.
int Quantize(const Command& self, const Shape& input_shape, proto::JobSpec* spec, std::vector<float>* params,
             std::vector<TensorInfo>* tensors, std::vector<ExportStep>* steps, Precision* precision) {
  precision->name = FLAGS_quantize;
  std::vector<std::pair<std::string, std::string>> fields = {{"precision", JsonQuote(FLAGS_quantize)}};
  if (FLAGS_quantize == "fp16") {
    // float16 reaches 65504: anything beyond would become infinite.
    for (const TensorInfo& t : *tensors) {
      for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
        if (std::isfinite((*params)[k]) && std::fabs((*params)[k]) > 65504.0f) {
          return UsageError(self, "--quantize fp16: " + t.name + " holds " + FloatText((*params)[k]) +
                                      ", beyond float16's range (65504); export it as fp32 or int8");
        }
      }
    }
    // What the float16 initializers hold, and so what a runtime computes with.
    for (float& v : *params) v = static_cast<float>(static_cast<_Float16>(v));
    precision->details = "{\"method\": \"fp16 weights\", \"storage\": \"every parameter as float16, Cast to "
                         "float32 in the graph\", \"compute\": \"float32\"}";
  } else {
    int64_t count = static_cast<int64_t>(FLAGS_calibration_batches > 0 ? FLAGS_calibration_batches
                                                                       : kDefaultCalibrationBatches) *
                    std::max(1, spec->batch_size());
    auto x = CalibrationExamples(*spec, input_shape, &count);
    if (!x.ok()) return UsageError(self, "reading calibration examples: " + x.status().message());
    auto quantized = QuantizeInt8(spec->model(), input_shape, kImageDatasetClasses, *params, *x, count);
    if (!quantized.ok()) return UsageError(self, quantized.status().message());
    *spec->mutable_model() = quantized->spec;
    *params = std::move(quantized->params);
    auto model = Model::Create(spec->model(), input_shape, kImageDatasetClasses);
    if (!model.ok()) return UsageError(self, model.status().message());
    *tensors = (*model)->tensors();
    std::string layers;
    for (const Int8LayerReport& r : quantized->layers) {
      layers += std::string(layers.empty() ? "" : ", ") + "{\"layer\": " + JsonQuote(r.layer) +
                ", \"input_scale\": " + FloatText(r.input_scale) + ", \"input_type\": " +
                JsonQuote(r.input_unsigned ? "uint8" : "int8") + ", \"calibration_min\": " + FloatText(r.input_min) +
                ", \"calibration_max_abs\": " + FloatText(r.input_max) + ", \"clipped_fraction\": " +
                FloatText(r.clipped_fraction) + "}";
    }
    precision->details = "{\"method\": \"int8 QDQ\", \"weights\": \"int8, symmetric, a scale per output channel\", "
                         "\"activations\": \"int8 or uint8 per tensor, zero point 0\", \"calibration_examples\": " +
                         std::to_string(count) + ", \"calibration_percentile\": " + DoubleText(Int8Options().percentile) +
                         ", \"batch_norms_folded\": " + std::to_string(quantized->folded_batch_norms) +
                         ", \"layers\": [" + layers + "]}";
    fields.push_back({"calibration_examples", std::to_string(count)});
    const std::string folded = quantized->folded_batch_norms == 0
                                   ? ""
                                   : " (" + std::to_string(quantized->folded_batch_norms) + " batch norms folded in)";
    std::printf("quantized %zu layers to int8%s, calibrated on %lld training examples\n", quantized->layers.size(),
                folded.c_str(), static_cast<long long>(count));
    std::fflush(stdout);
  }
  auto eval = EvaluateParams(*spec, input_shape, *params);
  if (!eval.ok()) return UsageError(self, "evaluating the quantized model: " + eval.status().message());
  steps->push_back({"quantize", *eval, fields});
  return kExitOk;
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
  const std::string name = fs::path(model_dir).filename().string();
  if (name.empty() || name == "." || name == "..") {
    return UsageError(self, "--out must end in the model's name (MODEL_REPO/NAME), got '" + FLAGS_out + "'");
  }

  // The checkpoint, verified: every file's checksum, every key once, the digest.
  auto loaded = LoadCheckpoint(args.positional[0]);
  if (!loaded.ok()) return UsageError(self, loaded.status().message());
  const std::string* dir = &loaded->dir;
  const std::string& note = loaded->note;
  const proto::CheckpointManifest* m = &loaded->manifest;
  std::vector<float>& params = loaded->params;  // pruning and fine-tuning replace them
  const std::string* digest = &loaded->params_sha256;

  proto::JobSpec spec = m->spec();
  if (Status s = ApplySpecOverrides(args, &spec); !s.ok()) return UsageError(self, s.message());
  const proto::DataSpec& data = spec.data();
  // One example's shape comes from the data; without it (--noevaluate on a
  // machine without the data set) Fashion-MNIST's.
  Shape input_shape = {1, 28, 28};
  uint8_t data_type = kIdxUnsignedByte;
  if (auto dims = ReadIdxDims(DataPath(data, data.test_images()), &data_type); dims.ok()) {
    input_shape = ExampleShape(*dims);
  } else if (FLAGS_evaluate) {
    return UsageError(self, "cannot read the test set to evaluate the model: " + dims.status().message() +
                                " (--data-dir DIR names another place, --noevaluate skips the evaluation)");
  }
  auto model = Model::Create(spec.model(), input_shape, kImageDatasetClasses);
  if (!model.ok()) return UsageError(self, *dir + "/MANIFEST: " + model.status().message());
  // The checkpoint must hold exactly the tensors its spec's model declares.
  std::vector<TensorInfo> tensors = (*model)->tensors();  // the exported model's: pruning may shrink it
  bool same = static_cast<int>(tensors.size()) == m->tensors_size() && (*model)->num_keys() == params.size();
  for (size_t t = 0; same && t < tensors.size(); ++t) {
    const proto::TensorMeta& meta = m->tensors(static_cast<int>(t));
    same = meta.name() == tensors[t].name && meta.offset() == tensors[t].offset &&
           std::vector<int64_t>(meta.shape().begin(), meta.shape().end()) == tensors[t].shape;
  }
  if (!same) {
    return UsageError(self, *dir + ": the checkpoint's tensors are not those of its spec's model for examples of " +
                                ShapeText(input_shape));
  }
  std::copy(params.begin(), params.end(), (*model)->params());

  Evaluation eval;
  if (FLAGS_evaluate) {
    auto e = Evaluate(spec, model->get());
    if (!e.ok()) return UsageError(self, "evaluating on the test set: " + e.status().message());
    eval = *e;
  }
  std::vector<ExportStep> steps = {{"source", eval, {}}};
  PruneSummary pruning;
  std::string exported_digest;
  if (FLAGS_prune_sparsity > 0) {
    if (int code = PruneAndFineTune(self, input_shape, &spec, &params, &tensors, &steps, &pruning); code != kExitOk) {
      return code;
    }
    eval = steps.back().eval;
    exported_digest = ParamsSha256(params.data(), params.size());
    digest = &exported_digest;
  }
  Precision precision;
  if (FLAGS_quantize != "none") {
    if (int code = Quantize(self, input_shape, &spec, &params, &tensors, &steps, &precision); code != kExitOk) {
      return code;
    }
    eval = steps.back().eval;
    exported_digest = ParamsSha256(params.data(), params.size());
    digest = &exported_digest;
  }

  // The ONNX model.
  // Training scaled byte pixels by 1/255 and int32 values (ids) not at all.
  const float scale = data_type == kIdxInt32 ? 1.0f : 1.0f / 255.0f;
  OnnxExportOptions options;
  options.probabilities = FLAGS_probabilities;
  options.fp16_weights = FLAGS_quantize == "fp16";
  options.graph_name = spec.name();
  options.doc_string = "Tessera model '" + spec.name() + "' from checkpoint step " + std::to_string(m->step()) +
                       ". Input: images as float [N, " + std::to_string(input_shape[0]) +
                       ", H, W], each value normalized as (value * scale - mean) / std with the metadata's "
                       "tessera.input_scale, tessera.input_mean and tessera.input_std. Output: logits [N, classes].";
  options.metadata = {
      {"tessera.input_scale", FloatText(scale)},
      {"tessera.input_mean", FloatText(data.mean())},
      {"tessera.input_std", FloatText(data.std())},
      {"tessera.input_normalization", "(pixel * input_scale - input_mean) / input_std"},
      {"tessera.job_name", spec.name()},
      {"tessera.source_step", std::to_string(m->step())},
      {"tessera.params_sha256", *digest},
      {"tessera.precision", precision.name},
  };
  auto onnx_model = BuildOnnxModel(spec.model(), input_shape, kImageDatasetClasses, params.data(), params.size(),
                                   options);
  if (!onnx_model.ok()) return UsageError(self, onnx_model.status().message());
  if (Status s = CheckOnnxModel(*onnx_model); !s.ok()) {
    std::cerr << "tessera export: " << s.message() << std::endl;  // our bug, not the user's
    return kExitFailure;
  }
  auto bytes = SerializeOnnxModel(*onnx_model);
  if (!bytes.ok()) return UsageError(self, bytes.status().message());
  const std::string model_sha256 = Sha256Hex(bytes->data(), bytes->size());

  int64_t trainable = 0, zeros = 0, weights = 0;
  for (const TensorInfo& t : tensors) {
    if (!t.trainable) continue;
    trainable += static_cast<int64_t>(t.size);
    if (t.shape.size() < 2) continue;  // weights only: biases, scales are not pruned
    weights += static_cast<int64_t>(t.size);
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) zeros += params[k] == 0.0f;
  }
  std::error_code ec;
  const std::string checkpoint_abs = fs::absolute(*dir, ec).lexically_normal().string();
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();

  ExportFiles files;
  files.model_bytes = std::move(bytes).value();
  files.manifest = [&](int64_t version) {
    std::string j = "{\n";
    auto field = [&](const std::string& key, const std::string& raw, bool last = false) {
      j += "  " + JsonQuote(key) + ": " + raw + (last ? "\n" : ",\n");
    };
    field("format", JsonQuote("tessera-model"));
    field("format_version", "1");
    field("name", JsonQuote(name));
    field("version", std::to_string(version));
    field("created_unix_seconds", std::to_string(created));
    field("file", JsonQuote("model.onnx"));
    field("file_bytes", std::to_string(files.model_bytes.size()));
    field("sha256", JsonQuote(model_sha256));
    field("format_of_file", JsonQuote("onnx"));
    field("onnx_opset", std::to_string(kOnnxOpset));
    field("onnx_ir_version", std::to_string(kOnnxIrVersion));
    field("precision", JsonQuote(precision.name));
    field("quantization", precision.details);
    field("pruning", JsonQuote(pruning.done ? pruning.mode : "none"));
    field("sparsity", DoubleText(weights > 0 ? static_cast<double>(zeros) / weights : 0.0));
    field("pruning_details", pruning.done ? pruning.Json() : "null");
    field("num_parameters", std::to_string(params.size()));
    field("num_trainable_parameters", std::to_string(trainable));
    field("params_sha256", JsonQuote(*digest));
    field("input", "{\"name\": " + JsonQuote(kOnnxInputName) + ", \"dtype\": \"float32\", \"shape\": " +
                       BatchedShapeJson(input_shape) + "}");
    std::string outputs = "[{\"name\": " + JsonQuote(kOnnxLogitsName) + ", \"dtype\": \"float32\", \"shape\": " +
                          BatchedShapeJson({kImageDatasetClasses}) + "}";
    if (FLAGS_probabilities) {
      outputs += ", {\"name\": " + JsonQuote(kOnnxProbabilitiesName) + ", \"dtype\": \"float32\", \"shape\": " +
                 BatchedShapeJson({kImageDatasetClasses}) + "}";
    }
    field("outputs", outputs + "]");
    field("normalization", "{\"formula\": \"(pixel * scale - mean) / std\", \"scale\": " + FloatText(scale) +
                               ", \"mean\": " + FloatText(data.mean()) + ", \"std\": " + FloatText(data.std()) + "}");
    field("source", "{\"checkpoint\": " + JsonQuote(checkpoint_abs) + ", \"step\": " + std::to_string(m->step()) +
                        ", \"epochs_done\": " + std::to_string(m->cursor().epoch()) +
                        ", \"job_name\": " + JsonQuote(spec.name()) + "}");
    field("steps", StepsJson(steps));
    if (eval.done) {
      field("test_accuracy", DoubleText(eval.accuracy));
      field("test_loss", DoubleText(eval.loss));
      field("test_examples", std::to_string(eval.examples), true);
    } else {
      field("test_accuracy", "null");
      field("test_loss", "null");
      field("test_examples", "0", true);
    }
    return j + "}\n";
  };
  auto version = WriteVersion(model_dir, files);
  if (!version.ok()) return UsageError(self, version.status().message());

  std::printf("%s\n", note.c_str());
  std::string accuracy = eval.done ? ", test accuracy " + DoubleText(std::round(eval.accuracy * 1e4) / 1e4) + " (" +
                                         std::to_string(eval.examples) + " examples)"
                                   : "";
  std::printf("exported %s/%lld: model.onnx (%.2f MB, sha256 %s), %zu parameters%s\n", model_dir.c_str(),
              static_cast<long long>(*version), files.model_bytes.size() / 1e6, model_sha256.c_str(), params.size(),
              accuracy.c_str());
  if (steps.size() > 1 && eval.done) {
    std::string line;
    for (const ExportStep& step : steps) {
      if (!line.empty()) line += ", ";
      line += step.name;
      line += " ";
      line += DoubleText(std::round(step.eval.accuracy * 1e4) / 1e4);
    }
    std::printf("test accuracy after each step: %s\n", line.c_str());
  }
  return kExitOk;
}

}  // namespace tessera
