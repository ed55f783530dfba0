#include "tools/predict_criteo_source.h"

#include <algorithm>
#include <vector>

#include "core/criteo_format.h"
#include "core/csv_reader.h"
#include "core/file_util.h"
#include "core/sparse_id.h"
#include "export/sparse_table_rows.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

constexpr int64_t kValues = kCriteoIntegerFields + kCriteoCategoricalFields;

class CriteoSource : public PredictSource {
 public:
  // `table` and `model` must outlive this.
  CriteoSource(const SparseTableRows& table, Model* model) : table_(table), model_(model) {}

  // Every line of `path`, parsed.
  Status Load(const std::string& path);

  int64_t count() const override { return static_cast<int64_t>(labels_.size()); }
  Status Read(int64_t first, int64_t n, std::vector<float>* x) override;

 private:
  const SparseTableRows& table_;
  Model* const model_;
  std::vector<float> numeric_;  // [count, 13]
  std::vector<uint64_t> ids_;   // [count, 26]; kNoSparseId for an empty field
  std::vector<float> rows_;     // the last batch's rows, bound to model_
};

Status CriteoSource::Load(const std::string& path) {
  ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, CriteoCsvOptions()));
  CsvRecord record;
  CriteoExample example;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader->Next(&record));
    if (!more) break;
    RETURN_IF_ERROR(ParseCriteoRecord(*reader, record, &example));
    labels_.push_back(static_cast<float>(example.label));
    for (const std::optional<int64_t>& v : example.integers) numeric_.push_back(CriteoNumeric(v));
    for (int c = 0; c < kCriteoCategoricalFields; ++c) {
      const std::string_view value = example.categorical[c];
      ids_.push_back(value.empty() ? kNoSparseId : CriteoId(c + 1, value));
    }
  }
  if (labels_.empty()) return InvalidArgumentError(path + ": expected Criteo lines, found none");
  return OkStatus();
}

Status CriteoSource::Read(int64_t first, int64_t n, std::vector<float>* x) {
  if (first < 0 || n < 0 || first + n > count()) {
    return InvalidArgumentError("examples [" + std::to_string(first) + ", " + std::to_string(first + n) +
                                ") outside the input's " + std::to_string(count()));
  }
  x->resize(static_cast<size_t>(n * kValues));
  for (int64_t e = 0; e < n; ++e) {
    std::copy_n(numeric_.begin() + (first + e) * kCriteoIntegerFields, kCriteoIntegerFields,
                x->begin() + e * kValues);
  }
  const std::vector<uint64_t> slot_ids(ids_.begin() + first * kCriteoCategoricalFields,
                                       ids_.begin() + (first + n) * kCriteoCategoricalFields);
  ASSIGN_OR_RETURN(const SparseBatch batch,
                   MakeSparseBatch(slot_ids, n, kCriteoIntegerFields, kCriteoCategoricalFields, x->data()));
  GatherBatchRows(table_, batch.ids, &rows_);
  model_->BindSparseRows(rows_.data(), /*row_grads=*/nullptr, static_cast<int64_t>(batch.ids.size()));
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<PredictSource>> OpenCriteoSource(const std::string& path, const PredictModel& model) {
  const SparseTableRows* table = model.files.model.sparse_table.get();
  if (table == nullptr || model.model->sparse_row_dim() != table->dim) {
    return InvalidArgumentError(path + ": the model has no sparse table for Criteo's ids");
  }
  if (!FileExists(path)) return NotFoundError(path + " does not exist");
  auto source = std::make_unique<CriteoSource>(*table, model.model.get());
  RETURN_IF_ERROR(source->Load(path));
  return std::unique_ptr<PredictSource>(std::move(source));
}

}  // namespace tessera
