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
#include "server/sparse_table_file.h"
#include "tools/checkpoint_params.h"
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

// The training loss of a cut's epoch before the cut, from the workers' sums
// (added in rank order, as the scheduler adds them).
struct PartialLoss {
  int64_t examples = 0;
  double mean = 0;  // 0 for no examples
};

PartialLoss SumPartialLoss(const proto::PartialEpochLoss& partial) {
  double sum = 0;
  PartialLoss loss;
  for (const proto::RankLoss& rank : partial.by_rank()) {
    sum += rank.loss_sum();
    loss.examples += rank.examples();
  }
  if (loss.examples > 0) loss.mean = sum / static_cast<double>(loss.examples);
  return loss;
}

// For a cut inside an epoch: how far into it, and the loss so far.
void PrintCutInsideEpoch(const proto::CheckpointManifest& m) {
  if (m.cursor().steps_into_epoch() == 0) return;
  std::printf("cut inside epoch %d: %lld steps into it", m.cursor().epoch() + 1,
              static_cast<long long>(m.cursor().steps_into_epoch()));
  if (m.has_partial_epoch_loss()) {
    const PartialLoss partial = SumPartialLoss(m.partial_epoch_loss());
    std::printf(", train loss so far %.6g over %lld examples (each worker's sums kept for the resumed epoch)",
                partial.mean, static_cast<long long>(partial.examples));
  }
  std::printf("\n");
}

// A sparse table's rows over every server part of a checkpoint, and how
// its parts' files were cut: full, or incremental on a chain of files.
struct SparseTableSummary {
  std::string name;
  int dim = 0;
  int64_t rows = 0;
  int full_parts = 0, incremental_parts = 0;
  int64_t chain_files = 0;  // every part's files of the table

  std::string Kind() const {
    if (incremental_parts == 0) return "full";
    return full_parts == 0 ? "incremental" : "mixed";
  }
};

// Reads every part's chain of every sparse table of the checkpoint's job,
// chain applied and each row checked (docs/FORMATS.md, "Sparse table
// files"). DataLoss naming the file for a missing or bad one (a base
// included), or one of another table or step.
StatusOr<std::vector<SparseTableSummary>> ReadSparseTables(const std::string& dir, const proto::CheckpointManifest& m) {
  std::vector<SparseTableSummary> tables;
  const auto& specs = m.spec().model().sparse_table();
  for (int t = 0; t < specs.size(); ++t) {
    SparseTableSummary summary;
    summary.name = specs[t].name();
    summary.dim = specs[t].dim();
    for (const proto::ServerPart& part : m.servers()) {
      const std::string part_dir = dir + "/" + part.dir();
      const std::string path = part_dir + "/" + SparseTableFileName(t);
      auto header = ReadCheckpointSparseTable(part_dir, t, [](uint64_t, const float*, int64_t) { return OkStatus(); });
      if (!header.ok()) return DataLossError(header.status().message());
      if (header->name != summary.name || header->dim != summary.dim || header->step != m.step()) {
        return DataLossError(path + ": holds table '" + header->name + "' at step " + std::to_string(header->step) +
                             ", not '" + summary.name + "' at step " + std::to_string(m.step()));
      }
      summary.rows += static_cast<int64_t>(header->count);
      (header->incremental ? summary.incremental_parts : summary.full_parts) += 1;
      summary.chain_files += header->chain_length;
    }
    tables.push_back(summary);
  }
  return tables;
}

}  // namespace

int RunInspect(const ParsedArgs& args) {
  const Command& self = FindCommand("inspect");
  if (args.positional.size() != 1) return UsageError(self, "expected one checkpoint or run directory");
  auto loaded = LoadCheckpoint(args.positional[0]);
  if (!loaded.ok()) return UsageError(self, loaded.status().message());
  const std::string* dir = &loaded->dir;
  const proto::CheckpointManifest* m = &loaded->manifest;
  const std::vector<float>& params = loaded->params;
  const std::vector<float>& state = loaded->state;
  const int64_t slices = loaded->slices;
  const std::string& digest = loaded->params_sha256;
  auto sparse_tables = ReadSparseTables(*dir, *m);
  if (!sparse_tables.ok()) return UsageError(self, sparse_tables.status().message());
  int64_t file_bytes = 0, files = 0;
  for (const proto::ServerPart& part : m->servers()) {
    for (const proto::FileChecksum& f : part.files()) {
      file_bytes += static_cast<int64_t>(f.size());
      ++files;
    }
  }

  if (FLAGS_json) {
    std::vector<JsonObject> tensors;
    for (const proto::TensorMeta& t : m->tensors()) {
      JsonObject o;
      o.Add("name", t.name())
          .Add("shape", ShapeText(t))
          .Add("bytes", static_cast<int64_t>(t.size() * 4))
          .Add("sha256", Sha256Hex(params.data() + t.offset(), t.size() * sizeof(float)));
      tensors.push_back(o);
    }
    std::vector<JsonObject> tables;
    for (const SparseTableSummary& t : *sparse_tables) {
      JsonObject o;
      o.Add("name", t.name)
          .Add("dim", t.dim)
          .Add("rows", t.rows)
          .Add("kind", t.Kind())
          .Add("full_parts", t.full_parts)
          .Add("incremental_parts", t.incremental_parts)
          .Add("chain_files", t.chain_files);
      tables.push_back(o);
    }
    JsonObject out;
    if (m->cursor().steps_into_epoch() > 0 && m->has_partial_epoch_loss()) {
      const PartialLoss partial = SumPartialLoss(m->partial_epoch_loss());
      JsonObject loss;
      loss.Add("examples", partial.examples).Add("train_loss", partial.mean);
      out.Add("partial_epoch_loss", loss);
    }
    out.Add("checkpoint", *dir)
        .Add("verified", true)
        .Add("step", m->step())
        .Add("epochs_done", m->cursor().epoch())
        .Add("epochs", m->spec().epochs())
        .Add("steps_into_epoch", m->cursor().steps_into_epoch())
        .Add("optimizer", m->optimizer())
        .Add("state_per_param", m->state_per_param())
        .Add("num_parameters", static_cast<int64_t>(m->num_keys()))
        .Add("servers", m->servers_size())
        .Add("slices", slices)
        .Add("files", files)
        .Add("file_bytes", file_bytes)
        .Add("params_sha256", digest)
        .Add("tensors", tensors)
        .Add("sparse_tables", tables);
    std::cout << out.ToString() << std::endl;
    return kExitOk;
  }
  std::printf("checkpoint %s\n", dir->c_str());
  std::printf("verified: %lld files (%.1f MB) of %d server parts, %lld slices\n", static_cast<long long>(files),
              file_bytes / 1e6, m->servers_size(), static_cast<long long>(slices));
  std::printf("step %lld, %d of %d epochs done\n", static_cast<long long>(m->step()), m->cursor().epoch(),
              m->spec().epochs());
  PrintCutInsideEpoch(*m);
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
  if (!sparse_tables->empty()) {
    std::printf("\n%-28s %-12s %12s  %s\n", "sparse table", "dim", "rows", "files (parts: full, incremental)");
  }
  for (const SparseTableSummary& t : *sparse_tables) {
    std::printf("%-28s %-12d %12lld  %s: %lld files (%d full, %d incremental)\n", t.name.c_str(), t.dim,
                static_cast<long long>(t.rows), t.Kind().c_str(), static_cast<long long>(t.chain_files),
                t.full_parts, t.incremental_parts);
  }
  return kExitOk;
}

}  // namespace tessera
