#include "export/model_repository_layout.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/file_util.h"
#include "export/onnx_export.h"
#include "export/onnx_external_data.h"
#include "export/task_outputs.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

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

// A new directory in model_dir for a version being written: its name starts
// with a dot, so it is never taken for a version. Returns its path.
StatusOr<std::string> MakeTemporaryVersionDir(const std::string& model_dir) {
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%d-%08x", static_cast<int>(getpid()), static_cast<unsigned>(rd()));
  const std::string tmp = model_dir + "/.export-" + suffix;
  std::error_code ec;
  if (!fs::create_directory(tmp, ec) || ec) {
    return UnavailableError("cannot create a directory in " + model_dir + ": " +
                            (ec ? ec.message() : std::string("it exists")));
  }
  return tmp;
}

// Renames `from` to `to` unless `to` exists. Returns 0, or -1 with errno set
// (EEXIST or ENOTEMPTY when `to` exists).
int RenameNoReplace(const std::string& from, const std::string& to) {
  int rc = renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
    // No RENAME_NOREPLACE on this file system: rename() still refuses a
    // non-empty target (every version holds files).
    rc = ::rename(from.c_str(), to.c_str());
  }
  return rc;
}

StatusOr<double> JsonNumberField(const nlohmann::json& object, const std::string& key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return InvalidArgumentError(where + ": '" + key + "' must be a number");
  return it->get<double>();
}

StatusOr<nlohmann::json> ParseManifestObject(const std::string& json, const std::string& path) {
  nlohmann::json manifest = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object()) return InvalidArgumentError(path + " is not a JSON object");
  return manifest;
}

}  // namespace

bool ValidModelName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name[0] == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

int64_t ParseVersion(const std::string& name) {
  if (name.empty() || name.size() > 18 || name[0] == '0') return -1;
  int64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string VersionDir(const std::string& model_dir, int64_t version) {
  return model_dir + "/" + std::to_string(version);
}

std::string ModelFilePath(const std::string& version_dir) { return version_dir + "/" + kModelFileName; }

std::string ManifestPath(const std::string& version_dir) { return version_dir + "/" + kManifestFileName; }

std::map<int64_t, std::string> ListVersions(const std::string& model_dir) {
  std::map<int64_t, std::string> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    const int64_t version = ParseVersion(entry.path().filename().string());
    if (version > 0 && entry.is_directory(ec)) versions[version] = entry.path().string();
  }
  return versions;
}

int64_t HighestVersion(const std::string& model_dir) {
  int64_t highest = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    highest = std::max(highest, ParseVersion(entry.path().filename().string()));
  }
  return highest;
}

StatusOr<int64_t> WriteNextVersion(const std::string& model_dir, const std::string& model_bytes,
                                   const std::function<std::string(int64_t version)>& manifest,
                                   const std::function<Status(const std::string& dir)>& write_more) {
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
  auto made = MakeTemporaryVersionDir(model_dir);
  if (!made.ok()) return cleanup(made.status());
  tmp = *made;
  if (Status s = WriteFileAtomic(ModelFilePath(tmp), model_bytes); !s.ok()) return cleanup(s);
  if (write_more) {
    if (Status s = write_more(tmp); !s.ok()) return cleanup(s);
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int64_t version = HighestVersion(model_dir) + 1;
    if (Status s = WriteFileAtomic(ManifestPath(tmp), manifest(version)); !s.ok()) return cleanup(s);
    if (Status s = SyncDirectory(tmp); !s.ok()) return cleanup(s);
    const std::string final_dir = VersionDir(model_dir, version);
    if (RenameNoReplace(tmp, final_dir) == 0) {
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

namespace {

// {"name": "logits", "dtype": "float32", "shape": ["N", 10]}
JsonObject TensorJson(const std::string& name, const std::vector<int64_t>& shape) {
  JsonArray dims;
  dims.Add(kOnnxBatchDim);
  for (int64_t d : shape) dims.Add(d);
  return JsonObject().Add("name", name).Add("dtype", "float32").Add("shape", dims);
}

}  // namespace

std::string ManifestJson(const ModelManifest& m) {
  JsonObject j;
  j.Add("format", "tessera-model").Add("format_version", 1).Add("name", m.name).Add("version", m.version);
  j.Add("created_unix_seconds", m.created_unix_seconds);
  j.Add("file", kModelFileName).Add("file_bytes", static_cast<int64_t>(m.file_bytes)).Add("sha256", m.sha256);
  if (m.external_data_bytes > 0) {
    j.Add("external_data", JsonObject()
                               .Add("file", kExternalDataFileName)
                               .Add("bytes", static_cast<int64_t>(m.external_data_bytes)));
  }
  j.Add("format_of_file", "onnx").Add("onnx_opset", kOnnxOpset).Add("onnx_ir_version", kOnnxIrVersion);
  j.Add("precision", m.precision);
  if (m.quantization.has_value()) {
    j.Add("quantization", *m.quantization);
  } else {
    j.Add("quantization", "none");
  }
  j.Add("pruning", m.pruning).AddFloat64("sparsity", m.sparsity);
  if (m.pruning_details.has_value()) {
    j.Add("pruning_details", *m.pruning_details);
  } else {
    j.AddNull("pruning_details");
  }
  j.Add("num_parameters", static_cast<int64_t>(m.num_parameters));
  j.Add("num_trainable_parameters", static_cast<int64_t>(m.num_trainable_parameters));
  j.Add("params_sha256", m.params_sha256);
  j.Add("task", ManifestTaskName(m.preprocessing.task));
  if (!m.preprocessing.class_names.empty()) j.Add("class_names", m.preprocessing.class_names);
  j.Add("preprocessing", PreprocessingJson(m.preprocessing));
  j.Add("input", TensorJson(kOnnxInputName, m.input_shape));
  JsonArray outputs;
  const Task task = m.preprocessing.task;
  outputs.Add(TensorJson(TaskOutputName(task), {m.num_classes}));
  if (m.probabilities && task != Task::kRegression) {
    outputs.Add(TensorJson(task == Task::kBinary ? kOnnxProbabilityName : kOnnxProbabilitiesName, {m.num_classes}));
  }
  j.Add("outputs", outputs);
  j.Add("normalization", JsonObject()
                             .Add("formula", "(pixel * scale - mean) / std")
                             .AddFloat32("scale", m.scale)
                             .AddFloat32("mean", m.mean)
                             .AddFloat32("std", m.std));
  j.Add("source", JsonObject()
                      .Add("checkpoint", m.checkpoint)
                      .Add("step", m.step)
                      .Add("epochs_done", m.epochs_done)
                      .Add("job_name", m.job_name));
  j.Add("steps", m.steps);
  if (!m.test_metrics.empty()) {
    for (const auto& [key, value] : m.test_metrics) value.has_value() ? j.AddFloat64(key, *value) : j.AddNull(key);
    m.evaluated ? j.AddFloat64("test_loss", m.test_loss) : j.AddNull("test_loss");
    j.Add("test_examples", m.evaluated ? m.test_examples : 0);
  } else if (m.evaluated) {
    j.AddFloat64("test_accuracy", m.test_accuracy).AddFloat64("test_loss", m.test_loss);
    j.Add("test_examples", m.test_examples);
  } else {
    j.AddNull("test_accuracy").AddNull("test_loss").Add("test_examples", 0);
  }
  return j.ToPrettyString();
}

// The string field `key` of `object`; `fallback` when it is absent.
// InvalidArgument when it is there but not a string (nlohmann's value()
// would throw).
StatusOr<std::string> StringFieldOr(const nlohmann::json& object, const std::string& key, const std::string& fallback,
                                    const std::string& path) {
  auto field = object.find(key);
  if (field == object.end()) return fallback;
  if (!field->is_string()) return InvalidArgumentError(path + ": '" + key + "' must be a string");
  return field->get<std::string>();
}

StatusOr<ManifestFields> ParseManifestFields(const std::string& json, const std::string& path) {
  ASSIGN_OR_RETURN(const nlohmann::json manifest, ParseManifestObject(json, path));
  ASSIGN_OR_RETURN(const std::string format, StringFieldOr(manifest, "format", "", path));
  if (format != "tessera-model") return InvalidArgumentError(path + ": format must be \"tessera-model\"");
  ASSIGN_OR_RETURN(const std::string format_of_file, StringFieldOr(manifest, "format_of_file", "onnx", path));
  if (format_of_file != "onnx") return InvalidArgumentError(path + ": format_of_file must be \"onnx\"");
  ManifestFields fields;
  ASSIGN_OR_RETURN(fields.file_bytes, JsonNumberField(manifest, "file_bytes", path));
  auto sha = manifest.find("sha256");
  if (sha == manifest.end() || !sha->is_string()) return InvalidArgumentError(path + ": 'sha256' must be a string");
  fields.sha256 = sha->get<std::string>();
  if (manifest.contains("name") && manifest["name"].is_string()) fields.name = manifest["name"].get<std::string>();
  if (manifest.contains("version") && manifest["version"].is_number_integer()) {
    fields.version = manifest["version"].get<int64_t>();
  }
  return fields;
}

StatusOr<InputNormalization> ParseManifestNormalization(const std::string& json, const std::string& path) {
  ASSIGN_OR_RETURN(const nlohmann::json manifest, ParseManifestObject(json, path));
  auto norm = manifest.find("normalization");
  if (norm == manifest.end() || !norm->is_object()) {
    return InvalidArgumentError(path + ": 'normalization' must be an object");
  }
  InputNormalization n;
  ASSIGN_OR_RETURN(n.scale, JsonNumberField(*norm, "scale", path + " normalization"));
  ASSIGN_OR_RETURN(n.mean, JsonNumberField(*norm, "mean", path + " normalization"));
  ASSIGN_OR_RETURN(n.std, JsonNumberField(*norm, "std", path + " normalization"));
  if (!(n.std > 0) || !std::isfinite(n.mean) || !std::isfinite(n.scale)) {
    return InvalidArgumentError(path + ": normalization needs finite numbers and std > 0");
  }
  return n;
}

}  // namespace tessera
