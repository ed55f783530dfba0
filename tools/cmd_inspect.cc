// `tessera inspect CHECKPOINT`: what a checkpoint holds, verified — every
// file's checksum, every slice read back, params_sha256 recomputed and
// compared with the manifest's. --json prints the same for scripts; two
// checkpoints compare by diffing the output.
#include <cstdio>
#include <iostream>

#include "core/checkpoint_manifest.h"
#include "core/json.h"
#include "core/sha256.h"
#include "models/model.h"
#include "server/slice_store.h"
#include "tools/command.h"
#include "tools/role_flags.h"

namespace tessera {
namespace {

std::string ShapeText(const proto::TensorMeta& t) {
  std::string s;
  for (int i = 0; i < t.shape_size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(t.shape(i));
  }
  return s;
}

// Every parameter and state float in key order, read from the parts.
// DataLoss when a key is missing or stored twice.
Status Assemble(const std::string& dir, const proto::CheckpointManifest& m, std::vector<float>* params,
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

}  // namespace

int RunInspect(const ParsedArgs& args) {
  const Command& self = FindCommand("inspect");
  if (args.positional.size() != 1) return UsageError(self, "expected one checkpoint or run directory");
  std::string note;
  auto dir = ResolveCheckpoint(args.positional[0], &note);
  if (!dir.ok()) return UsageError(self, dir.status().message());
  auto m = ReadManifest(*dir);
  if (!m.ok()) return UsageError(self, m.status().message());
  std::vector<float> params, state;
  int64_t slices = 0;
  if (Status s = Assemble(*dir, *m, &params, &state, &slices); !s.ok()) return UsageError(self, s.message());
  const std::string digest = ParamsSha256(params.data(), params.size());
  if (!m->params_sha256().empty() && m->params_sha256() != digest) {
    return UsageError(self, *dir + ": the parameters' digest " + digest + " differs from the manifest's " +
                                m->params_sha256());
  }
  int64_t file_bytes = 0, files = 0;
  for (const proto::ServerPart& part : m->servers()) {
    for (const proto::FileChecksum& f : part.files()) {
      file_bytes += static_cast<int64_t>(f.size());
      ++files;
    }
  }

  if (FLAGS_json) {
    std::string tensors = "[";
    for (int i = 0; i < m->tensors_size(); ++i) {
      const proto::TensorMeta& t = m->tensors(i);
      JsonObject o;
      o.Add("name", t.name())
          .Add("shape", ShapeText(t))
          .Add("bytes", static_cast<int64_t>(t.size() * 4))
          .Add("sha256", Sha256Hex(params.data() + t.offset(), t.size() * sizeof(float)));
      tensors += (i ? ", " : "") + o.ToString();
    }
    tensors += "]";
    JsonObject out;
    out.Add("checkpoint", *dir)
        .Add("verified", true)
        .Add("step", m->step())
        .Add("epochs_done", m->cursor().epoch())
        .Add("epochs", m->spec().epochs())
        .Add("optimizer", m->optimizer())
        .Add("state_per_param", m->state_per_param())
        .Add("num_parameters", static_cast<int64_t>(m->num_keys()))
        .Add("servers", m->servers_size())
        .Add("slices", slices)
        .Add("files", files)
        .Add("file_bytes", file_bytes)
        .Add("params_sha256", digest);
    std::string text = out.ToString();
    text.insert(text.size() - 1, ", \"tensors\": " + tensors);
    std::cout << text << std::endl;
    return kExitOk;
  }
  std::printf("checkpoint %s\n", dir->c_str());
  std::printf("verified: %lld files (%.1f MB) of %d server parts, %lld slices\n", static_cast<long long>(files),
              file_bytes / 1e6, m->servers_size(), static_cast<long long>(slices));
  std::printf("step %lld, %d of %d epochs done\n", static_cast<long long>(m->step()), m->cursor().epoch(),
              m->spec().epochs());
  std::printf("optimizer %s, %d state floats per parameter (%.1f MB)\n", m->optimizer().c_str(), m->state_per_param(),
              state.size() * 4 / 1e6);
  std::printf("parameters %llu (%.1f MB)\n", static_cast<unsigned long long>(m->num_keys()), params.size() * 4 / 1e6);
  std::printf("params_sha256 %s\n\n", digest.c_str());
  std::printf("%-28s %-12s %12s  %s\n", "tensor", "shape", "bytes", "sha256");
  for (const proto::TensorMeta& t : m->tensors()) {
    std::printf("%-28s %-12s %12llu  %s\n", t.name().c_str(), ShapeText(t).c_str(),
                static_cast<unsigned long long>(t.size() * 4),
                Sha256Hex(params.data() + t.offset(), t.size() * sizeof(float)).c_str());
  }
  return kExitOk;
}

}  // namespace tessera
