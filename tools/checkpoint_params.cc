#include "tools/checkpoint_params.h"

#include <algorithm>

#include "core/checkpoint_manifest.h"
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

}  // namespace tessera
