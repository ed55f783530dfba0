#include "tools/checkpoint_params.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "models/model.h"
#include "server/slice_store.h"

namespace tessera {

Status AssembleCheckpoint(const std::string& dir, const proto::CheckpointManifest& m, std::vector<float>* params,
                          std::vector<float>* state, int64_t* slices) {
  const uint64_t n = m.num_keys();
  const int per = m.state_per_param();
  // The manifest sizes what is allocated: check it against the files first.
  uint64_t file_bytes = 0;
  for (const proto::ServerPart& part : m.servers()) {
    for (const proto::FileChecksum& f : part.files()) file_bytes += f.size();
  }
  if (per < 0 || per > 8 || n == 0 || n > file_bytes / sizeof(float)) {
    return DataLossError(dir + "/MANIFEST: " + std::to_string(n) + " parameters with " + std::to_string(per) +
                         " state floats each cannot be held in " + std::to_string(file_bytes) + " bytes of files");
  }
  uint64_t next = 0;
  for (const proto::TensorMeta& t : m.tensors()) {
    if (t.offset() != next || t.size() == 0 || t.offset() + t.size() > n) {
      return DataLossError(dir + "/MANIFEST: tensor " + t.name() + " does not tile the parameters");
    }
    next += t.size();
  }
  if (next != n) return DataLossError(dir + "/MANIFEST: the tensors hold " + std::to_string(next) + " of " +
                                      std::to_string(n) + " parameters");
  params->assign(n, 0.0f);
  state->assign(n * per, 0.0f);
  std::vector<bool> seen(n, false);
  *slices = 0;
  for (const proto::ServerPart& part : m.servers()) {
    ASSIGN_OR_RETURN(std::vector<SliceRecord> records, ReadSliceStore(dir + "/" + part.dir()));
    for (const SliceRecord& r : records) {
      if (r.range.end > n || r.state_per_param != per || r.version != m.step()) {
        return DataLossError(dir + "/" + part.dir() + ": slice " + ToString(r.range) + " does not fit the manifest");
      }
      for (uint64_t k = r.range.begin; k < r.range.end; ++k) {
        if (seen[k]) return DataLossError(dir + "/" + part.dir() + ": key " + std::to_string(k) + " is stored twice");
        seen[k] = true;
      }
      std::copy(r.params.begin(), r.params.end(), params->begin() + r.range.begin);
      for (int j = 0; j < per; ++j) {
        std::copy(r.state.begin() + j * r.range.size(), r.state.begin() + (j + 1) * r.range.size(),
                  state->begin() + j * n + r.range.begin);
      }
      ++*slices;
    }
  }
  for (uint64_t k = 0; k < n; ++k) {
    if (!seen[k]) return DataLossError(dir + ": key " + std::to_string(k) + " is in no server part");
  }
  return OkStatus();
}

StatusOr<std::string> VerifyParamsDigest(const std::string& dir, const proto::CheckpointManifest& m,
                                         const std::vector<float>& params) {
  const std::string digest = ParamsSha256(params.data(), params.size());
  if (!m.params_sha256().empty() && m.params_sha256() != digest) {
    return DataLossError(dir + ": the parameters' digest " + digest + " differs from the manifest's " +
                         m.params_sha256());
  }
  return digest;
}

StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path) {
  LoadedCheckpoint c;
  ASSIGN_OR_RETURN(c.dir, ResolveCheckpoint(path, &c.note));
  ASSIGN_OR_RETURN(c.manifest, ReadManifest(c.dir));
  RETURN_IF_ERROR(AssembleCheckpoint(c.dir, c.manifest, &c.params, &c.state, &c.slices));
  ASSIGN_OR_RETURN(c.params_sha256, VerifyParamsDigest(c.dir, c.manifest, c.params));
  return c;
}

StatusOr<std::string> BestCheckpointOfRun(const std::string& run_dir, std::string* note) {
  const std::string path = run_dir + "/summary.json";
  StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return InvalidArgumentError(path + " is missing: --best exports the best checkpoint a finished run recorded");
  }
  const nlohmann::json summary = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!summary.is_object()) return InvalidArgumentError(path + " does not parse");
  if (!summary.contains("validation_examples")) {
    return InvalidArgumentError(run_dir + " has no best checkpoint: its job had no validation split "
                                "(data.validation_fraction or data.validation_files)");
  }
  const nlohmann::json& best = summary.value("best_checkpoint", nlohmann::json());
  const nlohmann::json& epoch = summary.value("best_epoch", nlohmann::json());
  if (!best.is_string() || best.get<std::string>().empty()) {
    return InvalidArgumentError(
        run_dir + " has no best checkpoint: " +
        (epoch.is_number_integer() ? "no checkpoint was committed at the end of its best epoch, " +
                                         std::to_string(epoch.get<int64_t>()) + " (checkpoint.every_epochs)"
                                   : std::string("no validation scored a metric")));
  }
  if (note != nullptr) {
    *note = "the best checkpoint of " + run_dir + " (epoch " +
            (epoch.is_number_integer() ? std::to_string(epoch.get<int64_t>()) : std::string("?")) +
            "): " + best.get<std::string>();
  }
  return best.get<std::string>();
}

}  // namespace tessera
