// The model repository's layout, the one place that knows it (docs/FORMATS.md,
// "Model repository"; the layout Triton reads):
//
//   MODEL_REPO/NAME/VERSION/model.onnx
//   MODEL_REPO/NAME/VERSION/manifest.json
//   MODEL_REPO/NAME/VERSION/model.onnx.data   (only a model with external data)
//
// NAME is a model name (ValidModelName), VERSION a positive decimal without a
// leading zero (ParseVersion). `tessera export` writes versions
// (WriteNextVersion, ManifestJson); `tessera serve` and `tessera predict` list them
// (ListVersions) and read them (ReadModelVersion in export/onnx_import.h,
// through ParseManifestFields and ParseManifestNormalization here).
// Functions only, no state: thread-safe.
#ifndef TESSERA_EXPORT_MODEL_REPOSITORY_LAYOUT_H_
#define TESSERA_EXPORT_MODEL_REPOSITORY_LAYOUT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "export/model_preprocessing.h"

namespace tessera {

// The files of a version directory.
inline constexpr char kModelFileName[] = "model.onnx";
inline constexpr char kManifestFileName[] = "manifest.json";

// True for a model name the repository accepts: [A-Za-z0-9_.-]+, at most 200
// characters, not starting with '.'.
bool ValidModelName(const std::string& name);

// The version a version directory's name gives ("1", "42": decimal digits
// only, no leading zero, at most 18 digits so it fits an int64); -1 for any
// other name ("0", "01", "-1", "1x", "").
int64_t ParseVersion(const std::string& name);

// MODEL_DIR/VERSION.
std::string VersionDir(const std::string& model_dir, int64_t version);
// VERSION_DIR/model.onnx and VERSION_DIR/manifest.json.
std::string ModelFilePath(const std::string& version_dir);
std::string ManifestPath(const std::string& version_dir);

// The version directories of `model_dir` (subdirectories whose name is a
// version), by version. Empty when there is none or model_dir cannot be read.
std::map<int64_t, std::string> ListVersions(const std::string& model_dir);

// The highest version name among all the entries of `model_dir`, files too
// (a file takes the name as well); 0 when there is none.
int64_t HighestVersion(const std::string& model_dir);

// Writes VERSION/model.onnx (`model_bytes`) and VERSION/manifest.json
// (`manifest(VERSION)`) into model_dir, creating it when needed, under a
// temporary directory renamed to the next free version (retrying when
// another writer took that number first), so readers see a version whole or
// not at all. Returns the version. Leaves nothing behind on failure, neither
// the temporary directory nor the directories it created: InvalidArgument
// when model_dir is not a directory, Unavailable when a write or the rename
// fails (or no free version was found in 100 attempts), and MakeDirs's and
// WriteFileAtomic's errors.
// `write_more` (when given) writes the version's other files (external
// data) into the temporary directory it is given, before the manifest;
// its error fails the write as the others do.
StatusOr<int64_t> WriteNextVersion(const std::string& model_dir, const std::string& model_bytes,
                                   const std::function<std::string(int64_t version)>& manifest,
                                   const std::function<Status(const std::string& dir)>& write_more = nullptr);

// What manifest.json says of a version (docs/FORMATS.md, "manifest.json"),
// as `tessera export` writes it.
struct ModelManifest {
  std::string name;  // NAME
  int64_t version = 0;
  int64_t created_unix_seconds = 0;
  uint64_t file_bytes = 0;  // of model.onnx
  std::string sha256;       // of model.onnx, hex
  // Of model.onnx.data, the tensors kept as ONNX external data; 0 when
  // there is none (export/onnx_external_data.h).
  uint64_t external_data_bytes = 0;
  std::string precision = "fp32";  // fp32, fp16, int8
  std::optional<JsonObject> quantization;  // how it was quantized; none when not
  std::string pruning = "none";            // none, unstructured, structured
  double sparsity = 0;  // of the exported weights, the fraction that is exactly 0
  std::optional<JsonObject> pruning_details;  // none when not pruned
  uint64_t num_parameters = 0;
  uint64_t num_trainable_parameters = 0;
  std::string params_sha256;
  std::vector<int64_t> input_shape;  // one example's, [C, H, W] or [F]
  int64_t num_classes = 0;           // logits per example (1 for binary; regression: values, 1)
  // The graph outputs 'probabilities' (binary: 'probability') too; never for a regression.
  bool probabilities = true;
  // x = (pixel * scale - mean) / std, as float32 like the model's metadata.
  float scale = 1.0f / 255, mean = 0, std = 1;
  std::string checkpoint;  // the source checkpoint's absolute path
  int64_t step = 0;        // the source checkpoint's
  int64_t epochs_done = 0;
  std::string job_name;
  JsonArray steps;  // {"step": NAME, "test_accuracy": A, ...} per step of the export
  bool evaluated = false;  // when false, the test figures are null (and 0 examples)
  double test_accuracy = 0, test_loss = 0;
  int64_t test_examples = 0;
  // A binary or regression model's test figures in place of test_accuracy
  // (export_steps.h's TestMetricFields: null when undefined or not
  // evaluated); empty for a multi-class model.
  std::vector<std::pair<std::string, std::optional<double>>> test_metrics;
  // "task", "class_names" (when not empty) and "preprocessing": how raw
  // data becomes the model's input (export/model_preprocessing.h).
  ModelPreprocessing preprocessing;
};

// The manifest.json text of `manifest`: one JSON object, a key per line.
std::string ManifestJson(const ModelManifest& manifest);

// What a reader checks of a manifest.json before trusting model.onnx.
struct ManifestFields {
  double file_bytes = 0;  // model.onnx's size, as the JSON number
  std::string sha256;     // model.onnx's SHA-256, hex
  std::string name;       // the model's name; "" when the manifest has none
  int64_t version = 0;    // the version it was written as; 0 when it has none
};

// Parses manifest.json's text (read from `path`, which errors name): a JSON
// object of "format" "tessera-model" whose "format_of_file" (when there) is
// "onnx", with a number "file_bytes" and a string "sha256". InvalidArgument
// otherwise.
StatusOr<ManifestFields> ParseManifestFields(const std::string& json, const std::string& path);

// Input normalization: x = (pixel * scale - mean) / std.
struct InputNormalization {
  double scale = 1.0 / 255;
  double mean = 0;
  double std = 1;
};

// The manifest's "normalization" object: numbers scale, mean and std, all
// finite, std > 0. InvalidArgument naming `path` otherwise.
StatusOr<InputNormalization> ParseManifestNormalization(const std::string& json, const std::string& path);

}  // namespace tessera

#endif  // TESSERA_EXPORT_MODEL_REPOSITORY_LAYOUT_H_
