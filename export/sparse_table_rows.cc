#include "export/sparse_table_rows.h"

#include <algorithm>
#include <cstring>

#include "core/sparse_id.h"
#include "server/sparse_table_file.h"

namespace tessera {
namespace {

// One server part's rows of the table, checked against the spec's.
struct PartRows {
  std::vector<uint64_t> ids;
  std::vector<float> values;
};

StatusOr<PartRows> ReadPartRows(const std::string& part_dir, const proto::CheckpointManifest& m, int table) {
  const proto::SparseTableSpec& spec = m.spec().model().sparse_table(table);
  const int dim = spec.dim();
  PartRows part;
  auto header = ReadCheckpointSparseTable(part_dir, table, [&](uint64_t id, const float* row, int64_t) {
    part.ids.push_back(id);
    part.values.insert(part.values.end(), row, row + dim);  // the values; the optimizer state after them stays
    return OkStatus();
  });
  const std::string path = part_dir + "/" + SparseTableFileName(table);
  if (!header.ok()) return DataLossError(header.status().message());
  if (header->name != spec.name() || header->dim != dim || header->step != m.step()) {
    return DataLossError(path + ": holds table '" + header->name + "' of dim " + std::to_string(header->dim) +
                         " at step " + std::to_string(header->step) + ", expected '" + spec.name() + "' of dim " +
                         std::to_string(dim) + " at step " + std::to_string(m.step()));
  }
  return part;
}

}  // namespace

int64_t SparseTableRows::RowOf(uint64_t id) const {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return it != ids.end() && *it == id ? it - ids.begin() : -1;
}

StatusOr<SparseTableRows> ReadCheckpointTableRows(const std::string& dir, const proto::CheckpointManifest& m,
                                                  int table) {
  if (table < 0 || table >= m.spec().model().sparse_table_size()) {
    return InvalidArgumentError(dir + ": the job has no sparse table " + std::to_string(table));
  }
  SparseTableRows rows;
  rows.name = m.spec().model().sparse_table(table).name();
  rows.dim = m.spec().model().sparse_table(table).dim();
  // Each part is sorted; ids are spread over the parts by hash, so the
  // parts are concatenated, then put in id order once.
  std::vector<std::pair<uint64_t, std::pair<int, int64_t>>> order;  // id -> (part, row in part)
  std::vector<PartRows> parts;
  for (const proto::ServerPart& server : m.servers()) {
    ASSIGN_OR_RETURN(PartRows part, ReadPartRows(dir + "/" + server.dir(), m, table));
    for (size_t k = 0; k < part.ids.size(); ++k) {
      order.push_back({part.ids[k], {static_cast<int>(parts.size()), static_cast<int64_t>(k)}});
    }
    parts.push_back(std::move(part));
  }
  std::sort(order.begin(), order.end());
  rows.ids.reserve(order.size());
  rows.values.resize(order.size() * static_cast<size_t>(rows.dim));
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& [id, where] = order[k];
    if (k > 0 && order[k - 1].first == id) {
      return DataLossError(dir + ": table '" + rows.name + "' holds id " + std::to_string(id) +
                           " in two server parts (" + m.servers(order[k - 1].second.first).dir() + " and " +
                           m.servers(where.first).dir() + ")");
    }
    rows.ids.push_back(id);
    const float* from = parts[where.first].values.data() + where.second * rows.dim;
    std::memcpy(rows.values.data() + k * rows.dim, from, sizeof(float) * rows.dim);
  }
  return rows;
}

void GatherBatchRows(const SparseTableRows& table, const std::vector<uint64_t>& batch_ids, std::vector<float>* rows) {
  const size_t dim = static_cast<size_t>(table.dim);
  rows->assign(batch_ids.size() * dim, 0.0f);
  for (size_t k = 0; k < batch_ids.size(); ++k) {
    const int64_t row = table.RowOf(batch_ids[k]);
    if (row < 0) continue;  // unseen or not admitted: zeros
    std::memcpy(rows->data() + k * dim, table.values.data() + row * dim, sizeof(float) * dim);
  }
}

}  // namespace tessera
