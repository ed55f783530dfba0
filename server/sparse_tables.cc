#include "server/sparse_tables.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <glog/logging.h>

#include "core/consistency.h"
#include "core/file_util.h"
#include "server/admission_filter.h"

namespace tessera {

namespace {

// A new directory under $TMPDIR (or /tmp) for the spill databases.
StatusOr<std::string> MakeSpillDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tessera-spill-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return UnavailableError("cannot make a spill directory " + pattern + ": " + std::strerror(errno));
  }
  return pattern;
}

}  // namespace

StatusOr<std::unique_ptr<SparseTables>> SparseTables::Create(const proto::ClusterMap& map, int server_rank,
                                                             int64_t first_version, const std::string& spill_dir,
                                                             int64_t test_spill_writes_before_full) {
  std::unique_ptr<SparseTables> tables(new SparseTables());
  tables->server_rank_ = server_rank;
  tables->servers_ = map.servers_size();
  const auto& specs = map.spec().model().sparse_table();
  std::string dir = spill_dir;
  for (const proto::SparseTableSpec& spec : specs) {
    if (spec.memory_budget_mb() > 0 && dir.empty()) {
      ASSIGN_OR_RETURN(dir, MakeSpillDir());
      tables->made_spill_dir_ = dir;
    }
  }
  if (!dir.empty()) RETURN_IF_ERROR(MakeDirs(dir).WithContext("the spill directory"));
  tables->spill_dir_ = dir;
  for (int t = 0; t < specs.size(); ++t) {
    SparseTableShardOptions o;
    o.spec = specs[t];
    o.table = t;
    o.seed = map.spec().seed();
    o.server_rank = server_rank;
    o.servers = map.servers_size();
    o.consistency = map.spec().consistency();
    o.workers = map.num_workers();
    o.staleness = static_cast<int>(StalenessBound(map.spec()));
    if (specs[t].memory_budget_mb() > 0) {
      o.spill_dir = dir + "/server-" + std::to_string(server_rank) + "-" + specs[t].name();
      tables->spill_dirs_.push_back(o.spill_dir);
    }
    o.first_version = first_version;
    o.test_spill_writes_before_full = test_spill_writes_before_full;
    ASSIGN_OR_RETURN(std::unique_ptr<SparseTableShard> shard, SparseTableShard::Create(o));
    tables->tables_.push_back(std::move(shard));
  }
  return tables;
}

SparseTables::~SparseTables() {
  tables_.clear();  // closes the spill databases first
  // The spilled rows are a cache of this run, worthless once it ends.
  std::error_code ignored;
  for (const std::string& dir : spill_dirs_) std::filesystem::remove_all(dir, ignored);
  if (!made_spill_dir_.empty()) std::filesystem::remove_all(made_spill_dir_, ignored);
  if (!spill_dir_.empty()) std::filesystem::remove(spill_dir_, ignored);  // only when nothing else is in it
}

StatusOr<int> SparseTables::TableOf(const proto::Header& h) const {
  const proto::SparseRows& rows = h.sparse_rows();
  if (rows.table() >= size()) {
    return InvalidArgumentError("sparse table " + std::to_string(rows.table()) + " of " + std::to_string(size()));
  }
  if (rows.dim() != tables_[rows.table()]->dim()) {
    return InvalidArgumentError("rows of " + std::to_string(rows.dim()) + " floats for sparse table '" +
                                tables_[rows.table()]->name() + "' of dim " +
                                std::to_string(tables_[rows.table()]->dim()));
  }
  return rows.table();
}

StatusOr<bool> SparseTables::Push(const Message& m) {
  ASSIGN_OR_RETURN(const int t, TableOf(m.header));
  const std::vector<uint64_t> ids = FrameIds(m.frames[0]);
  std::vector<float> scratch;
  const float* grads = FrameFloats(m.frames[1], &scratch);
  ASSIGN_OR_RETURN(const bool applied,
                   tables_[t]->AddPush(m.header.sender_rank(), m.header.step(), m.header.examples(), ids,
                                       std::span<const float>(grads, m.frames[1].size() / sizeof(float))));
  if (!applied) return false;
  RETURN_IF_ERROR(ApplyHeldSteps(t));
  return true;
}

Status SparseTables::ApplyHeldSteps(int t) {
  // Under SSP the push may have completed the steps held after it as well:
  // one at a time, so an armed cut sees the table at its step.
  while (true) {
    RETURN_IF_ERROR(Capture());
    ASSIGN_OR_RETURN(const bool applied, tables_[t]->ApplyNextStep());
    if (!applied) return OkStatus();
  }
}

Status SparseTables::Pull(Message m, const Reply& reply) {
  ASSIGN_OR_RETURN(const int t, TableOf(m.header));
  Waiting w{std::move(m.peer), t, m.header.step(), FrameIds(m.frames[0])};
  RETURN_IF_ERROR(tables_[t]->CheckIds(w.ids));  // so that answering it later can only fail in the store
  if (tables_[t]->version() >= w.step) return Answer(w, reply);
  waiting_.push_back(std::move(w));
  return OkStatus();
}

Status SparseTables::AnswerWaiting(const Reply& reply) {
  std::vector<Waiting> still;
  Status first = OkStatus();
  for (Waiting& w : waiting_) {
    if (tables_[w.table]->version() < w.step) {
      still.push_back(std::move(w));
      continue;
    }
    Status answered = Answer(w, reply);
    if (first.ok() && !answered.ok()) first = answered;
  }
  waiting_ = std::move(still);
  return first;
}

Status SparseTables::Answer(const Waiting& w, const Reply& reply) {
  SparseTableShard& table = *tables_[w.table];
  ASSIGN_OR_RETURN(std::vector<float> rows, table.ReadRows(w.ids));
  proto::Header h;
  h.set_op(proto::SPARSE_ROWS);
  h.set_step(table.version());
  h.mutable_sparse_rows()->set_table(w.table);
  h.mutable_sparse_rows()->set_count(w.ids.size());
  h.mutable_sparse_rows()->set_dim(table.dim());
  auto owned = std::make_shared<const std::vector<float>>(std::move(rows));
  reply(w.peer, h, {OutFrame{owned->data(), owned->size() * sizeof(float), owned}});
  return OkStatus();
}

StatusOr<bool> SparseTables::SetActive(const std::vector<int>& ranks) {
  bool applied = false;
  for (size_t t = 0; t < tables_.size(); ++t) {
    ASSIGN_OR_RETURN(const bool a, tables_[t]->SetActive(ranks));
    if (a) RETURN_IF_ERROR(ApplyHeldSteps(static_cast<int>(t)));
    applied = applied || a;
  }
  return applied;
}

Status SparseTables::AdvanceTo(int64_t version) {
  // An armed cut inside the steps skipped is the table as it is now.
  for (size_t t = 0; t < tables_.size(); ++t) {
    if (armed_step_.has_value() && !cut_[t].has_value() && tables_[t]->version() < *armed_step_ &&
        *armed_step_ <= version) {
      ASSIGN_OR_RETURN(cut_[t], tables_[t]->Snapshot(*armed_step_));
    }
  }
  for (auto& table : tables_) RETURN_IF_ERROR(table->AdvanceTo(version));
  return Capture();
}

Status SparseTables::ArmCut(int64_t step, bool asp) {
  for (const auto& table : tables_) {
    if (!asp && table->version() > step) {
      return FailedPreconditionError("sparse table '" + table->name() + "' is at step " +
                                     std::to_string(table->version()) + ", past the cut's " + std::to_string(step));
    }
  }
  // A snapshot taken for a cut given up on carried expired ids no file
  // will hold: the next files must not be incremental.
  for (const auto& c : cut_) lost_tombstones_ = lost_tombstones_ || c.has_value();
  armed_step_ = step;
  cut_.assign(tables_.size(), std::nullopt);
  if (asp) {
    for (size_t t = 0; t < tables_.size(); ++t) {
      ASSIGN_OR_RETURN(cut_[t], tables_[t]->Snapshot(step));
    }
  }
  return Capture();
}

Status SparseTables::Capture() {
  if (!armed_step_.has_value()) return OkStatus();
  for (size_t t = 0; t < tables_.size(); ++t) {
    if (cut_[t].has_value() || tables_[t]->version() != *armed_step_) continue;
    ASSIGN_OR_RETURN(cut_[t], tables_[t]->Snapshot(*armed_step_));
  }
  return OkStatus();
}

bool SparseTables::CutReady() const {
  if (!armed_step_.has_value()) return tables_.empty();
  for (const auto& c : cut_) {
    if (!c.has_value()) return false;
  }
  return true;
}

std::vector<SparseTableSnapshot> SparseTables::TakeCut() {
  std::vector<SparseTableSnapshot> cut;
  for (auto& c : cut_) {
    c->must_be_full = c->must_be_full || lost_tombstones_;
    cut.push_back(std::move(*c));
  }
  lost_tombstones_ = false;
  cut_.clear();
  armed_step_.reset();
  return cut;
}

Status SparseTables::Restore(const proto::Restore& restore) {
  const std::string mine = "server-" + std::to_string(server_rank_);
  const bool same_servers = restore.parts_size() == servers_;
  for (auto& table : tables_) {
    std::optional<AdmissionFilter> merged;
    int64_t kept = 0;
    for (const proto::RestorePart& part : restore.parts()) {
      const std::string part_dir = restore.dir() + "/" + part.dir();
      const std::string path = part_dir + "/" + SparseTableFileName(table->table_index());
      auto header = ReadCheckpointSparseTable(
          part_dir, table->table_index(), [&](uint64_t id, const float* row, int64_t last_step) -> Status {
            ASSIGN_OR_RETURN(const bool held, table->RestoreRow(id, row, last_step));
            kept += held ? 1 : 0;
            return OkStatus();
          });
      if (!header.ok()) {
        if (header.status().code() == StatusCode::kNotFound) {
          return DataLossError(path + ": the checkpoint has no rows of sparse table '" + table->name() + "'");
        }
        return header.status();
      }
      if (header->name != table->name() || header->dim != table->dim() ||
          header->state_floats != table->state_floats() || header->optimizer_type != table->optimizer_type() ||
          header->step != restore.step()) {
        return DataLossError(path + ": holds table '" + header->name + "' of dim " + std::to_string(header->dim) +
                             " at step " + std::to_string(header->step) + " with another optimizer or shape, not '" +
                             table->name() + "' of dim " + std::to_string(table->dim()) + " at step " +
                             std::to_string(restore.step()));
      }
      if (header->admission.empty()) continue;
      if (same_servers) {
        if (part.dir() == mine) RETURN_IF_ERROR(table->RestoreAdmission(header->admission).WithContext(path));
        continue;
      }
      auto filter = AdmissionFilter::Parse(header->admission);
      if (!filter.ok()) return DataLossError(path + ": " + filter.status().message());
      if (!merged.has_value()) {
        merged = std::move(filter).value();
      } else if (merged->log2_width() == filter->log2_width()) {
        merged->MergeMax(*filter);
      } else {
        return DataLossError(path + ": an admission filter of another width than the other parts'");
      }
    }
    if (merged.has_value()) RETURN_IF_ERROR(table->RestoreAdmission(merged->Serialize()));
    LOG(INFO) << "sparse table '" << table->name() << "': " << kept << " rows restored at step " << restore.step();
  }
  return OkStatus();
}

}  // namespace tessera
