#include "worker/sparse_batch.h"

#include <algorithm>
#include <string>

#include "core/sparse_id.h"

namespace tessera {
namespace {

// The distinct ids of `slot_ids`, sorted, without kNoSparseId.
std::vector<uint64_t> DistinctIds(const std::vector<uint64_t>& slot_ids) {
  std::vector<uint64_t> ids;
  ids.reserve(slot_ids.size());
  for (const uint64_t id : slot_ids) {
    if (id != kNoSparseId) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace

StatusOr<SparseBatch> MakeSparseBatch(const std::vector<uint64_t>& slot_ids, int64_t batch, int64_t numeric,
                                      int64_t slots, float* x) {
  if (batch < 0 || numeric < 0 || slots < 0 || static_cast<int64_t>(slot_ids.size()) != batch * slots) {
    return InvalidArgumentError("a sparse batch of " + std::to_string(batch) + " examples of " + std::to_string(slots) +
                                " id slots needs " + std::to_string(batch * slots) + " ids, got " +
                                std::to_string(slot_ids.size()));
  }
  SparseBatch sparse;
  sparse.ids = DistinctIds(slot_ids);
  if (static_cast<int64_t>(sparse.ids.size()) >= kMaxSparseBatchRows) {
    return InvalidArgumentError("a batch holds " + std::to_string(sparse.ids.size()) +
                                " distinct ids; its rows travel as float32, exact below " +
                                std::to_string(kMaxSparseBatchRows) + ": use a smaller batch_size");
  }
  for (int64_t e = 0; e < batch; ++e) {
    float* out = x + e * (numeric + slots) + numeric;
    for (int64_t s = 0; s < slots; ++s) {
      const uint64_t id = slot_ids[e * slots + s];
      if (id == kNoSparseId) {
        out[s] = -1.0f;
        continue;
      }
      const auto row = std::lower_bound(sparse.ids.begin(), sparse.ids.end(), id) - sparse.ids.begin();
      out[s] = static_cast<float>(row);  // exact: row < 2^24
    }
  }
  return sparse;
}

}  // namespace tessera
