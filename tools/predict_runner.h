// What one process of `tessera predict` does: find and load a model version
// of a model repository, read an IDX images file checked against the
// model's input, and write the CSV rows (docs/FORMATS.md, "Predictions") of
// a range of its images. The parent runs it itself with --workers 1; with
// more, each `tessera predict-worker` child runs one range.
#ifndef TESSERA_TOOLS_PREDICT_RUNNER_H_
#define TESSERA_TOOLS_PREDICT_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/idx_reader.h"
#include "core/status.h"
#include "core/task.h"
#include "export/onnx_import.h"
#include "models/model.h"

namespace tessera {

class PredictSource;  // tools/predict_source.h

// MODEL_DIR as the user gives it: a version directory (it holds
// manifest.json) is taken as it is; a model directory MODEL_REPO/NAME gives
// its newest version that reads completely (ReadModelVersion), as `tessera
// serve` serves the newest version it could load. Newer versions passed over
// are described in *skipped ("VERSION: why"). NotFound when there is no such
// directory or it holds no version; the newest version's error when none reads.
StatusOr<std::string> ResolveModelVersion(const std::string& model_dir, std::vector<std::string>* skipped);

struct PredictModel {
  ModelVersionFiles files;
  std::unique_ptr<Model> model;  // BuildRuntimeModel of files.model
};

// Reads one version directory and builds its model; errors name the directory.
StatusOr<PredictModel> LoadPredictModel(const std::string& version_dir, Device device = Device::kCpu);

struct PredictInput {
  IdxArray images;     // [count, rows, cols] (or [count, C, H, W])
  int64_t count = 0;
  int64_t example_size = 0;  // values per image
};

// Reads an IDX images file whose images have the model's input shape.
// InvalidArgument naming the file for another shape, no images or a file
// that is not an images file; what ReadIdxFile returns for a missing,
// unreadable or malformed file.
StatusOr<PredictInput> LoadPredictInput(const std::string& path, const Shape& model_input);

// How a pixel (a byte of the input) becomes a model input, in float, as
// the workers normalize training data (BatchReader): x = pixel * a + b, with
// a = 1 / (255 * std) and b = -mean / std of the version's normalization.
struct PixelNormalization {
  float a = 1, b = 0;
};
PixelNormalization PredictPixelNormalization(const InputNormalization& normalization);

// InvalidArgument naming `path`, the first image and the byte value when
// some value of the input, normalized, is one the model does not take
// (Model::ValidateInputValues: for an embedding first layer, an id outside
// [0, num_embeddings)); checked before anything runs.
Status ValidatePredictInput(const PredictModel& model, const PredictInput& input, const std::string& path);

// Reads an IDX labels file of exactly `count` labels, each < num_classes.
StatusOr<std::vector<uint8_t>> LoadPredictLabels(const std::string& path, int64_t count, int num_classes);

// The predictions' header for a model of `task` (export/task_outputs.h):
// "index,class,prob_0,...,prob_K-1" (multi-class), "index,probability,class"
// (binary) or "index,value" (regression), then ",class_name" when the model
// names its classes (not for a regression) and ",file" when the input's
// examples are files; a line end.
std::string PredictCsvHeader(Task task, int num_classes, bool class_name = false, bool file = false);

// `field` as a CSV field: as it is, or in double quotes (quotes doubled)
// when it holds a comma, a quote or a line end (RFC 4180).
std::string CsvField(const std::string& field);

struct PredictRangeOptions {
  int64_t begin = 0, end = 0;  // images [begin, end) of the input
  int64_t batch_size = 64;     // batches start at begin, begin + batch_size, ...
  // Called after every batch with the images of the range done so far.
  std::function<void(int64_t done)> on_batch;
  // Checked between batches: Aborted once it is set.
  const std::atomic<bool>* stop = nullptr;
};

// Runs the examples of the range through the model (made into inputs as
// training made them: predict_source.h) and writes one CSV row each to
// `out`, in order, with the class name when the model's manifest names its
// classes and the file when the source's examples are files; the columns
// are the task's (PredictCsvHeader). Each row's second field (its class,
// binary probability or regression value) is also appended to *firsts when
// not null. The source's error (an
// image that does not decode: InvalidArgument); Internal when the model
// gives no logits; Unavailable when writing fails.
Status PredictRange(PredictModel* model, PredictSource* source, const PredictRangeOptions& options, std::FILE* out,
                    std::vector<double>* firsts);

// Reads CSV rows of images [begin, end) written by PredictRange (no header)
// from `path` and appends them to `out`, checking that they are exactly
// those rows in order; each row's second field (as PredictRange) is
// appended to *firsts when not null. DataLoss naming the file when they
// are not.
Status AppendPredictRows(const std::string& path, int64_t begin, int64_t end, std::FILE* out,
                         std::vector<double>* firsts);

// Sets the compute threads of this process (oneDNN's OpenMP, OpenBLAS).
void SetComputeThreads(int threads);

}  // namespace tessera

#endif  // TESSERA_TOOLS_PREDICT_RUNNER_H_
