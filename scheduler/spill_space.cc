#include "scheduler/spill_space.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/distinct_counter.h"
#include "core/sparse_table_spec.h"

namespace tessera {
namespace {

// The table the first layer (a sparse_embedding) reads, when it has a
// memory budget; nullptr otherwise.
const proto::SparseTableSpec* BudgetedTable(const proto::ModelSpec& model) {
  if (model.layer_size() == 0 || !model.layer(0).has_sparse_embedding()) return nullptr;
  const proto::SparseTableSpec* table = FindSparseTable(model, model.layer(0).sparse_embedding().table());
  return table != nullptr && table->memory_budget_mb() > 0 ? table : nullptr;
}

// The estimate plus 3 standard errors, whole rows.
int64_t MostRows(double distinct_ids) {
  return static_cast<int64_t>(std::ceil(distinct_ids * (1 + 3 * DistinctCounter::kRelativeError)));
}

std::string MiB(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

int64_t SpillBytesNeeded(const proto::ModelSpec& model, double distinct_ids) {
  const proto::SparseTableSpec* table = BudgetedTable(model);
  return table == nullptr ? 0 : MostRows(distinct_ids) * SparseRowBytes(*table);
}

StatusOr<int64_t> FreeDiskBytes(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(dir, ec);
  if (ec) path = dir;
  while (!std::filesystem::exists(path, ec) && path.has_parent_path() && path != path.parent_path()) {
    path = path.parent_path();
  }
  struct statvfs fs;
  if (statvfs(path.c_str(), &fs) != 0) {
    return UnavailableError("cannot find the free space of " + path.string() + ": " + std::strerror(errno));
  }
  return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
}

Status CheckSpillSpace(const proto::ModelSpec& model, double distinct_ids, const std::string& dir,
                       int64_t free_bytes) {
  const int64_t needed = SpillBytesNeeded(model, distinct_ids);
  if (needed <= free_bytes) return OkStatus();
  const proto::SparseTableSpec& table = *BudgetedTable(model);
  return InvalidArgumentError(
      "model.sparse_table '" + table.name() + "' may spill more than the disk holds: about " +
      std::to_string(MostRows(distinct_ids)) + " rows (the training files' distinct ids, estimated, plus 3 "
      "standard errors) x " + std::to_string(SparseRowBytes(table)) + " bytes = " + MiB(needed) + ", and " + dir +
      " has " + MiB(free_bytes) + " free: free some disk or put the run directory on a larger one");
}

}  // namespace tessera
