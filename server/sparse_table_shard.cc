#include "server/sparse_table_shard.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/id_partition.h"
#include "server/admission_filter.h"

namespace tessera {

StatusOr<std::unique_ptr<SparseOptimizer>> CreateSparseOptimizer(const proto::SparseOptimizerSpec& spec) {
  if (!(spec.learning_rate() > 0) || !std::isfinite(spec.learning_rate())) {
    return InvalidArgumentError("sparse optimizer: learning_rate must be > 0, got " +
                                std::to_string(spec.learning_rate()));
  }
  SparseOptimizerOptions options;
  switch (spec.type()) {
    case proto::SparseOptimizerSpec::SGD:
      options.type = SparseOptimizerType::kSgd;
      break;
    case proto::SparseOptimizerSpec::ADAGRAD:
      options.type = SparseOptimizerType::kAdagrad;
      break;
    case proto::SparseOptimizerSpec::FTRL:
      options.type = SparseOptimizerType::kFtrl;
      break;
    case proto::SparseOptimizerSpec::ADAM:
      options.type = SparseOptimizerType::kAdam;
      break;
  }
  options.adagrad_epsilon = spec.adagrad_epsilon();
  options.initial_accumulator = spec.initial_accumulator();
  options.ftrl_beta = spec.ftrl_beta();
  options.ftrl_l1 = spec.ftrl_l1();
  options.ftrl_l2 = spec.ftrl_l2();
  options.beta1 = spec.beta1();
  options.beta2 = spec.beta2();
  options.adam_epsilon = spec.epsilon();
  return SparseOptimizer::Create(options);
}

StatusOr<std::unique_ptr<SparseTableShard>> SparseTableShard::Create(const SparseTableShardOptions& options) {
  const proto::SparseTableSpec& spec = options.spec;
  if (spec.dim() < 1) return InvalidArgumentError("sparse table '" + spec.name() + "': dim must be >= 1");
  if (options.workers < 1 || options.servers < 1 || options.server_rank < 0 ||
      options.server_rank >= options.servers) {
    return InvalidArgumentError("sparse table '" + spec.name() + "': server " + std::to_string(options.server_rank) +
                                " of " + std::to_string(options.servers) + " with " +
                                std::to_string(options.workers) + " workers");
  }
  auto optimizer = CreateSparseOptimizer(spec.optimizer());
  if (!optimizer.ok()) return optimizer.status().WithContext("sparse table '" + spec.name() + "'");
  SparseRowStoreOptions store;
  store.dim = spec.dim();
  store.state_floats = (*optimizer)->state_per_value() * spec.dim();
  store.seed = options.seed;
  store.table = static_cast<uint64_t>(options.table);
  store.init_bound = spec.init_bound();
  const SparseOptimizer* rule = optimizer->get();
  const int dim = spec.dim();
  store.init_state = [rule, dim](float* state) { rule->InitState(state, dim); };
  store.memory_budget_bytes = spec.memory_budget_mb() << 20;
  store.spill_dir = options.spill_dir;
  store.admit_after = spec.admit_after();
  store.expire_after_steps = spec.expire_after_steps();
  store.test_spill_writes_before_full = options.test_spill_writes_before_full;
  auto opened = SparseRowStore::Open(std::move(store));
  if (!opened.ok()) return opened.status().WithContext("sparse table '" + spec.name() + "'");
  return std::unique_ptr<SparseTableShard>(
      new SparseTableShard(options, std::move(optimizer).value(), std::move(opened).value()));
}

SparseTableShard::SparseTableShard(SparseTableShardOptions options, std::unique_ptr<SparseOptimizer> optimizer,
                                   std::unique_ptr<SparseRowStore> store)
    : options_(std::move(options)),
      optimizer_(std::move(optimizer)),
      store_(std::move(store)),
      version_(options_.first_version),
      active_(options_.workers, true),
      window_(options_.consistency == proto::ASP ? 1 : options_.staleness + 1,
              std::vector<Pending>(options_.workers)) {}

Status SparseTableShard::CheckIds(std::span<const uint64_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0 && ids[i] <= ids[i - 1]) {
      return InvalidArgumentError("sparse table '" + name() + "': ids not strictly increasing at " +
                                  std::to_string(i));
    }
    if (ServerOfId(static_cast<uint64_t>(options_.table), ids[i], options_.servers) != options_.server_rank) {
      return InvalidArgumentError("sparse table '" + name() + "': id " + std::to_string(ids[i]) +
                                  " is not held by server " + std::to_string(options_.server_rank));
    }
  }
  return OkStatus();
}

StatusOr<bool> SparseTableShard::AddPush(int rank, int64_t step, int64_t examples, std::span<const uint64_t> ids,
                                         std::span<const float> grads) {
  const std::string where = "sparse table '" + name() + "': ";
  if (rank < 0 || rank >= options_.workers || !active_[rank]) {
    return InvalidArgumentError(where + "a push from worker " + std::to_string(rank) + ", which does not take part");
  }
  if (examples < 0) return InvalidArgumentError(where + "a push of " + std::to_string(examples) + " examples");
  if (grads.size() != ids.size() * static_cast<size_t>(dim())) {
    return InvalidArgumentError(where + std::to_string(grads.size()) + " gradient values for " +
                                std::to_string(ids.size()) + " rows of " + std::to_string(dim()));
  }
  RETURN_IF_ERROR(CheckIds(ids));
  for (float g : grads) {
    if (!std::isfinite(g)) return InvalidArgumentError(where + "a non-finite gradient");
  }
  if (options_.consistency == proto::ASP) {
    // ASP: this push is a step of its own.
    if (examples > 0) RETURN_IF_ERROR(ApplyRows(ids, grads, 1.0f / static_cast<float>(examples)));
    ++version_;
    return true;
  }
  if (step < version_ || (step > version_ && options_.consistency == proto::BSP)) {
    return InvalidArgumentError(where + "a push for step " + std::to_string(step) + ", the table is at " +
                                std::to_string(version_));
  }
  if (step > version_ + options_.staleness) {
    return InvalidArgumentError(where + "a push for step " + std::to_string(step) + " from worker " +
                                std::to_string(rank) + ", more than the staleness bound " +
                                std::to_string(options_.staleness) + " steps ahead of the table's step " +
                                std::to_string(version_));
  }
  Pending& p = PendingOf(step)[rank];
  if (p.in) return InvalidArgumentError(where + "a second push from worker " + std::to_string(rank));
  p.in = true;
  p.examples = examples;
  p.ids.assign(ids.begin(), ids.end());
  p.grads.assign(grads.begin(), grads.end());
  return ApplyNextStep();
}

StatusOr<bool> SparseTableShard::ApplyNextStep() {
  if (options_.consistency == proto::ASP || !Complete()) return false;
  RETURN_IF_ERROR(ApplyPending());
  return true;
}

bool SparseTableShard::Complete() const {
  const std::vector<Pending>& pending = PendingOf(version_);
  bool any = false;
  for (int r = 0; r < options_.workers; ++r) {
    if (active_[r] && !pending[r].in) return false;
    any = any || pending[r].in;
  }
  return any;
}

Status SparseTableShard::ApplyPending() {
  std::vector<Pending>& pending = PendingOf(version_);
  int64_t examples = 0;
  std::vector<const Pending*> in;
  for (const Pending& p : pending) {
    if (!p.in) continue;
    examples += p.examples;
    in.push_back(&p);
  }
  if (examples > 0) {
    // A k-way merge of the ranks' increasing ids: each id's rows are summed
    // in rank order, then the row is stepped once.
    const float scale = 1.0f / static_cast<float>(examples);
    const size_t d = static_cast<size_t>(dim());
    std::vector<size_t> next(in.size(), 0);
    std::vector<float> sum(d);
    for (;;) {
      bool found = false;
      uint64_t id = 0;
      for (size_t k = 0; k < in.size(); ++k) {
        if (next[k] < in[k]->ids.size() && (!found || in[k]->ids[next[k]] < id)) {
          id = in[k]->ids[next[k]];
          found = true;
        }
      }
      if (!found) break;
      bool first = true;
      for (size_t k = 0; k < in.size(); ++k) {
        if (next[k] >= in[k]->ids.size() || in[k]->ids[next[k]] != id) continue;
        const float* g = in[k]->grads.data() + next[k] * d;
        for (size_t j = 0; j < d; ++j) sum[j] = first ? g[j] : sum[j] + g[j];
        first = false;
        ++next[k];
      }
      RETURN_IF_ERROR(StepRow(id, sum.data(), scale));
    }
  }
  for (Pending& p : pending) {
    p.in = false;
    p.ids.clear();
    p.grads.clear();
  }
  ++version_;
  return OkStatus();
}

Status SparseTableShard::ApplyRows(std::span<const uint64_t> ids, std::span<const float> grads, float scale) {
  for (size_t i = 0; i < ids.size(); ++i) {
    RETURN_IF_ERROR(StepRow(ids[i], grads.data() + i * static_cast<size_t>(dim()), scale));
  }
  return OkStatus();
}

Status SparseTableShard::StepRow(uint64_t id, const float* grad, float scale) {
  const int d = dim();
  const int64_t step = version_ + 1;  // the optimizer counts steps from 1
  ASSIGN_OR_RETURN(float* row, store_->Row(id, step));
  if (row == nullptr) return OkStatus();  // not admitted yet: its gradient is dropped
  mean_.resize(static_cast<size_t>(d));
  for (int j = 0; j < d; ++j) mean_[j] = grad[j] * scale;
  optimizer_->ApplyRow(step, options_.spec.optimizer().learning_rate(), row, mean_.data(), row + d, d);
  return OkStatus();
}

StatusOr<std::vector<float>> SparseTableShard::ReadRows(std::span<const uint64_t> ids) {
  RETURN_IF_ERROR(CheckIds(ids));
  const size_t d = static_cast<size_t>(dim());
  std::vector<float> rows(ids.size() * d);
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSIGN_OR_RETURN(const float* row, store_->ReadRow(ids[i]));
    std::copy(row, row + d, rows.data() + i * d);
  }
  return rows;
}

StatusOr<bool> SparseTableShard::SetActive(const std::vector<int>& ranks) {
  std::vector<bool> active(options_.workers, false);
  for (int r : ranks) {
    if (r < 0 || r >= options_.workers) {
      return InvalidArgumentError("sparse table '" + name() + "': worker rank " + std::to_string(r) + " of " +
                                  std::to_string(options_.workers));
    }
    active[r] = true;
  }
  active_ = std::move(active);
  return ApplyNextStep();
}

Status SparseTableShard::AdvanceTo(int64_t version) {
  // The window's steps below `version` must hold nothing; those at or past
  // it stay where they are (a ring by step).
  const int64_t last = std::min<int64_t>(version, version_ + static_cast<int64_t>(window_.size()));
  for (int64_t step = version_; step < last; ++step) {
    for (const Pending& p : PendingOf(step)) {
      if (p.in) {
        return FailedPreconditionError("sparse table '" + name() + "' holds pushes for step " +
                                       std::to_string(step));
      }
    }
  }
  if (version > version_) version_ = version;
  return OkStatus();
}

StatusOr<SparseTableSnapshot> SparseTableShard::Snapshot(int64_t step) {
  RETURN_IF_ERROR(store_->ExpireRows(version_).status());
  SparseTableSnapshot snapshot;
  snapshot.table = options_.table;
  snapshot.name = name();
  snapshot.dim = dim();
  snapshot.state_floats = state_floats();
  snapshot.optimizer_type = optimizer_type();
  snapshot.step = step;
  snapshot.latest_step = store_->latest_step();
  snapshot.expired = store_->TakeExpiredIds();
  if (store_->admission() != nullptr) snapshot.admission = store_->admission()->Serialize();
  std::shared_ptr<const SparseRowSnapshot> rows = store_->Snapshot();
  snapshot.for_each_row = [rows](const SparseRowVisitor& visit) { return rows->ForEachRow(visit); };
  return snapshot;
}

StatusOr<bool> SparseTableShard::RestoreRow(uint64_t id, const float* row, int64_t last_step) {
  if (ServerOfId(static_cast<uint64_t>(options_.table), id, options_.servers) != options_.server_rank) return false;
  RETURN_IF_ERROR(store_->PutRow(id, row, last_step));
  return true;
}

Status SparseTableShard::RestoreAdmission(const std::string& bytes) {
  if (bytes.empty()) return OkStatus();
  ASSIGN_OR_RETURN(AdmissionFilter filter, AdmissionFilter::Parse(bytes));
  return store_->RestoreAdmission(std::move(filter));
}

}  // namespace tessera
