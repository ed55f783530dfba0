// The model repository's layout, the one place that knows it (docs/FORMATS.md,
// "Model repository"; the layout Triton reads):
//
//   MODEL_REPO/NAME/VERSION/model.onnx
//   MODEL_REPO/NAME/VERSION/manifest.json
//
// NAME is a model name (ValidModelName), VERSION a positive decimal without a
// leading zero (ParseVersion). `tessera export` writes versions
// (WriteNextVersion); `tessera serve` and `tessera predict` list them
// (ListVersions) and read them (ReadModelVersion in export/onnx_import.h,
// through ParseManifestFields and ParseManifestNormalization here).
// Functions only, no state: thread-safe.
#ifndef TESSERA_EXPORT_MODEL_REPOSITORY_LAYOUT_H_
#define TESSERA_EXPORT_MODEL_REPOSITORY_LAYOUT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/status.h"

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
StatusOr<int64_t> WriteNextVersion(const std::string& model_dir, const std::string& model_bytes,
                                   const std::function<std::string(int64_t version)>& manifest);

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
