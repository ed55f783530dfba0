#include "worker/worker_sparse_table.h"

#include <string>

#include "core/feature_cross.h"

namespace tessera {

StatusOr<std::unique_ptr<WorkerSparseTable>> WorkerSparseTable::Create(Transport* transport,
                                                                       const proto::ClusterMap& map, uint64_t job_id,
                                                                       const Model& model, int64_t values_per_example,
                                                                       int64_t ids_per_example) {
  if (model.sparse_row_dim() == 0) return std::unique_ptr<WorkerSparseTable>();
  const proto::ModelSpec& spec = map.spec().model();
  // Model::Create accepts a sparse_embedding only as the first layer.
  const proto::SparseEmbeddingSpec& layer = spec.layer(0).sparse_embedding();
  const std::string& name = layer.table();
  int table = -1, wide_table = -1;
  std::vector<int> dims;
  for (int t = 0; t < spec.sparse_table_size(); ++t) {
    dims.push_back(spec.sparse_table(t).dim());
    if (spec.sparse_table(t).name() == name) table = t;
    if (!layer.wide_table().empty() && spec.sparse_table(t).name() == layer.wide_table()) wide_table = t;
  }
  if (table < 0) return InvalidArgumentError("the sparse_embedding reads table '" + name + "', which the job lacks");
  if (!layer.wide_table().empty() &&
      (wide_table < 0 || model.wide_slots() != WideSlots(layer) || ids_per_example != layer.fields())) {
    return InvalidArgumentError("the sparse_embedding's wide_table '" + layer.wide_table() +
                                "' needs the job's table, the model's wide part and one id slot per field");
  }
  if (ids_per_example < 1 || ids_per_example > values_per_example) {
    return InvalidArgumentError("examples of " + std::to_string(values_per_example) + " values with " +
                                std::to_string(ids_per_example) + " id slots");
  }
  std::vector<std::string> addresses, public_keys;
  for (const proto::ServerInfo& s : map.servers()) {
    addresses.push_back(s.address());
    public_keys.push_back(s.curve_public_key());
  }
  auto client = std::make_unique<SparseTableClient>(transport, std::move(addresses), std::move(dims), map.rank(),
                                                    job_id);
  client->set_server_public_keys(std::move(public_keys));
  return std::unique_ptr<WorkerSparseTable>(new WorkerSparseTable(
      std::move(client), table, static_cast<int>(model.sparse_row_dim()), values_per_example - ids_per_example,
      ids_per_example, layer, wide_table));
}

Status WorkerSparseTable::Prepare(const std::vector<uint64_t>& slot_ids, int64_t count, float* x) {
  ASSIGN_OR_RETURN(batch_, MakeSparseBatch(slot_ids, count, numeric_, slots_, x));
  if (wide_table_ < 0) return OkStatus();
  // The slots hold one id per field (values_per_field is 1 with a wide part).
  const int64_t wide = WideSlots(layer_);
  wide_slots_.resize(count * wide);
  ASSIGN_OR_RETURN(wide_batch_, MakeSparseBatch(WideIds(layer_, slot_ids, count), count, /*numeric=*/0, wide,
                                                wide_slots_.data()));
  return OkStatus();
}

Status WorkerSparseTable::PullAndBind(int64_t version, Model* model, int timeout_ms, int64_t* got_version) {
  const size_t floats = batch_.ids.size() * static_cast<size_t>(dim_);
  rows_.resize(floats);
  row_grads_.resize(floats);
  RETURN_IF_ERROR(client_->PullRows(table_, version, batch_.ids, rows_.data(), timeout_ms, got_version));
  model->BindSparseRows(rows_.data(), row_grads_.data(), rows());
  if (wide_table_ < 0) return OkStatus();
  wide_rows_.resize(wide_batch_.ids.size());
  wide_grads_.resize(wide_batch_.ids.size());
  RETURN_IF_ERROR(client_->PullRows(wide_table_, version, wide_batch_.ids, wide_rows_.data(), timeout_ms));
  model->BindWideRows(wide_rows_.data(), wide_grads_.data(), wide_rows(), wide_slots_.data());
  return OkStatus();
}

Status WorkerSparseTable::Push(int64_t step, int64_t examples) {
  RETURN_IF_ERROR(client_->PushRows(table_, step, examples, batch_.ids, row_grads_.data()));
  if (wide_table_ < 0) return OkStatus();
  return client_->PushRows(wide_table_, step, examples, wide_batch_.ids, wide_grads_.data());
}

}  // namespace tessera
