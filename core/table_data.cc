#include "core/table_data.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/criteo_format.h"
#include "core/sparse_id.h"
#include "core/spec.h"
#include "core/table_records.h"

namespace tessera {
namespace {

// "a, b, c" (at most 20 names), for a message.
std::string ListNames(const std::vector<std::string>& names) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < 20; ++i) list += (i > 0 ? ", " : "") + names[i];
  if (names.size() > 20) list += ", ... (" + std::to_string(names.size()) + " columns)";
  return list;
}

// The header indexes of the label, of each numeric feature, then of each
// categorical column, from data.table.
StatusOr<std::vector<int>> ResolveColumns(const proto::DataSpec& data, const CsvReader& reader) {
  const proto::TableSpec& table = data.table();
  const auto missing = [&](const std::string& name, const std::string& field) {
    return InvalidArgumentError(reader.path() + ": no column '" + name + "' (" + field + "); the header has " +
                                ListNames(reader.Columns()));
  };
  auto label = reader.ColumnIndex(table.label_column());
  if (!label.ok()) return missing(table.label_column(), "data.table.label_column");
  std::vector<int> categorical;
  for (const proto::CategoricalColumnSpec& c : table.categorical_columns()) {
    auto index = reader.ColumnIndex(c.name());
    if (!index.ok()) return missing(c.name(), "data.table.categorical_columns");
    categorical.push_back(*index);
  }
  const auto is_categorical = [&](int c) {
    return std::find(categorical.begin(), categorical.end(), c) != categorical.end();
  };
  std::vector<int> columns = {*label};
  if (table.feature_columns_size() == 0) {
    for (int c = 0; c < static_cast<int>(reader.Columns().size()); ++c) {
      if (c != *label && !is_categorical(c)) columns.push_back(c);
    }
  } else {
    for (const std::string& name : table.feature_columns()) {
      auto index = reader.ColumnIndex(name);
      if (!index.ok()) return missing(name, "data.table.feature_columns");
      if (*index == *label) {
        return InvalidArgumentError("data.table.feature_columns names the label column '" + name + "'");
      }
      columns.push_back(*index);
    }
  }
  columns.insert(columns.end(), categorical.begin(), categorical.end());
  if (columns.size() < 2) return InvalidArgumentError(reader.path() + ": no feature column besides the label");
  return columns;
}

// Opens a split's file, checking its header against the first file's.
StatusOr<std::unique_ptr<CsvReader>> OpenTableFile(const proto::DataSpec& data, const std::string& path,
                                                   uint64_t start_offset,
                                                   const std::vector<std::string>* first_header) {
  CsvOptions options = TableCsvOptions(data);
  options.start_offset = start_offset;
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, CsvReader::Open(path, options));
  if (first_header != nullptr && reader->Columns() != *first_header) {
    return InvalidArgumentError(path + ": its header (" + ListNames(reader->Columns()) +
                                ") differs from the first file's (" + ListNames(*first_header) + ")");
  }
  return reader;
}

// Adds one record to the scan: the label, Welford's update of each present feature.
void Count(const ParsedRecord& record, TableScan* scan) {
  const float y = record.label;
  if (scan->records == 0) scan->min_label_value = scan->max_label_value = y;
  scan->min_label_value = std::min(scan->min_label_value, y);
  scan->max_label_value = std::max(scan->max_label_value, y);
  if (y != std::nearbyint(y)) scan->all_integers = false;
  if (y != 0.0f && y != 1.0f) scan->all_binary = false;
  // Class ids only (NUMBER labels may be anything; their classes are unused).
  if (y >= 0 && y < kMaxTableClasses) scan->max_label = std::max(scan->max_label, static_cast<int>(y));
  for (size_t f = 0; f < record.values.size(); ++f) {
    if (!record.present[f]) continue;
    const int64_t n = ++scan->present[f];
    const double v = record.values[f];
    const double delta = v - scan->mean[f];
    scan->mean[f] += delta / static_cast<double>(n);
    scan->squares[f] += delta * (v - scan->mean[f]);
  }
}

// Counts the values of every vocabulary column (training records only).
// Fails when a counter cannot spill its counts to disk.
Status CountValues(const proto::TableSpec& table, const CsvRecord& record, TableScan* scan) {
  const size_t first = scan->columns.size() - scan->vocabulary_counts.size();
  for (int c = 0; c < table.categorical_columns_size(); ++c) {
    if (!table.categorical_columns(c).has_vocabulary()) continue;
    RETURN_IF_ERROR(scan->vocabulary_counts[c].Add(record.fields[scan->columns[first + c]]));
  }
  return OkStatus();
}

// One counter per categorical column (only vocabulary columns count). They
// share kVocabularyValuesInMemory, so the scan's memory does not grow with
// the number of columns.
void MakeVocabularyCounters(const proto::TableSpec& table, TableScan* scan) {
  int64_t vocabularies = 0;
  for (const proto::CategoricalColumnSpec& c : table.categorical_columns()) vocabularies += c.has_vocabulary();
  VocabularyCounterOptions options;
  options.max_distinct_in_memory = kVocabularyValuesInMemory / std::max<int64_t>(vocabularies, 1);
  scan->vocabulary_counts.clear();
  for (int c = 0; c < table.categorical_columns_size(); ++c) scan->vocabulary_counts.emplace_back(options);
}

// Adds the record's 64-bit ids (CRITEO, data.table.sparse_ids) to the
// estimate of how many rows training creates (TableScan::sparse_ids).
void CountSparseIds(const proto::DataSpec& data, const CsvRecord& record, TableScan* scan) {
  const int64_t ids = TableIdsPerExample(data);
  const size_t first = scan->columns.size() - ids;
  for (int64_t c = 0; c < ids; ++c) {
    const uint64_t id = SparseColumnId(static_cast<int>(c) + 1, record.fields[scan->columns[first + c]]);
    if (id != kNoSparseId) scan->sparse_ids.Add(id);
  }
}

Status ScanFile(const proto::DataSpec& data, const std::string& path, int file_index, int64_t max_records,
                bool count_values, proto::TableLabels::Kind kind, TableScan* scan,
                std::vector<std::string>* header) {
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader,
                   OpenTableFile(data, path, 0, header->empty() ? nullptr : header));
  if (header->empty()) {
    *header = reader->Columns();
    ASSIGN_OR_RETURN(scan->columns, ResolveColumns(data, *reader));
    for (size_t f = 1; f < scan->columns.size(); ++f) scan->feature_names.push_back(reader->Columns()[scan->columns[f]]);
    const size_t features = scan->columns.size() - 1 - data.table().categorical_columns_size();
    MakeVocabularyCounters(data.table(), scan);
    scan->present.assign(features, 0);
    scan->mean.assign(features, 0);
    scan->squares.assign(features, 0);
  }
  const int64_t block_records = TableBlockRecords(static_cast<int>(scan->columns.size()) - 1);
  GoodRecords records(data, reader.get(), scan->columns, kind, &scan->bad);
  CsvRecord record;
  ParsedRecord parsed;
  int64_t in_file = 0;
  while (max_records <= 0 || scan->records < max_records) {
    ASSIGN_OR_RETURN(bool more, records.Next(&record, &parsed));
    if (!more) break;
    if (in_file % block_records == 0) {
      proto::TableBlock& block = scan->blocks.emplace_back();
      block.set_file(file_index);
      block.set_offset(reader->compressed() ? 0 : record.offset);
      block.set_first_record(in_file);
      block.set_records(0);
    }
    scan->blocks.back().set_records(scan->blocks.back().records() + 1);
    Count(parsed, scan);
    if (count_values) RETURN_IF_ERROR(CountValues(data.table(), record, scan));
    if (count_values) CountSparseIds(data, record, scan);
    ++in_file;
    ++scan->records;
  }
  return OkStatus();
}

}  // namespace

bool IsTableFormat(const proto::DataSpec& data) {
  return data.format() == proto::DataSpec::CSV || data.format() == proto::DataSpec::TSV ||
         data.format() == proto::DataSpec::CRITEO;
}

proto::DataSpec TableDataSpec(const proto::DataSpec& data) {
  if (data.table().sparse_ids() && data.format() != proto::DataSpec::CRITEO) {
    proto::DataSpec view = data;
    for (proto::CategoricalColumnSpec& column : *view.mutable_table()->mutable_categorical_columns()) {
      column.set_hash_buckets(1);  // unused: ReadTableBlock gives SparseColumnId's 64-bit ids instead
    }
    return view;
  }
  if (data.format() != proto::DataSpec::CRITEO) return data;
  proto::DataSpec view = data;
  proto::TableSpec* table = view.mutable_table();
  table->Clear();
  const std::vector<std::string>& names = CriteoColumnNames();
  table->set_label_column(names[0]);
  for (int i = 1; i <= kCriteoIntegerFields; ++i) table->add_feature_columns(names[i]);
  for (int c = 0; c < kCriteoCategoricalFields; ++c) {
    proto::CategoricalColumnSpec* column = table->add_categorical_columns();
    column->set_name(names[1 + kCriteoIntegerFields + c]);
    column->set_hash_buckets(1);  // unused: ReadTableBlock gives CriteoId's 64-bit ids instead
  }
  table->set_scaling(proto::TableSpec::NONE);  // the features are CriteoNumeric's already
  table->set_skip_bad_records(data.criteo().skip_bad_records());
  return view;
}

int64_t TableIdsPerExample(const proto::DataSpec& data) {
  if (data.format() == proto::DataSpec::CRITEO) return kCriteoCategoricalFields;
  return data.table().sparse_ids() ? data.table().categorical_columns_size() : 0;
}

CsvOptions TableCsvOptions(const proto::DataSpec& data) {
  if (data.format() == proto::DataSpec::CRITEO) return CriteoCsvOptions();
  CsvOptions options;
  options.delimiter = data.format() == proto::DataSpec::TSV ? '\t' : ',';
  return options;
}

std::vector<std::string> TableFiles(const proto::DataSpec& data, Split split) {
  const auto& names = split == Split::kTraining     ? data.train_files()
                      : split == Split::kValidation ? data.validation_files()
                                                    : data.test_files();
  std::vector<std::string> paths;
  for (const std::string& name : names) paths.push_back(DataPath(data, name));
  return paths;
}

int64_t TableBlockRecords(int features) {
  return std::clamp<int64_t>(kTableBlockValues / std::max(1, features), 1, kTableBlockRecords);
}

StatusOr<int> TableFeatureCount(const proto::DataSpec& spec_data) {
  const proto::DataSpec data = TableDataSpec(spec_data);
  const std::vector<std::string> files = TableFiles(data, Split::kTraining);
  if (files.empty()) return InvalidArgumentError("data.train_files is empty");
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, OpenTableFile(data, files[0], 0, nullptr));
  ASSIGN_OR_RETURN(const std::vector<int> columns, ResolveColumns(data, *reader));
  return static_cast<int>(columns.size()) - 1;
}

StatusOr<TableScan> ScanTable(const proto::DataSpec& spec_data, Split split, int64_t max_records,
                              proto::TableLabels::Kind kind) {
  const proto::DataSpec data = TableDataSpec(spec_data);
  TableScan scan;
  std::vector<std::string> header;
  const std::vector<std::string> files = TableFiles(data, split);
  for (size_t i = 0; i < files.size(); ++i) {
    if (max_records > 0 && scan.records >= max_records) break;
    RETURN_IF_ERROR(ScanFile(data, files[i], static_cast<int>(i), max_records, split == Split::kTraining, kind, &scan,
                             &header));
  }
  return scan;
}

namespace {

// The test or validation files (`other`) must have the training files'
// columns, and classes below `classes`.
Status CheckLikeTraining(const TableScan& train, const TableScan& other, const std::string& name, int classes,
                         proto::TableLabels::Kind kind) {
  if (other.columns != train.columns) {
    return InvalidArgumentError("the " + name + " files' columns differ from the training files': label and "
                                "features at " + std::to_string(other.columns.size()) +
                                " header positions, not where the training files have them");
  }
  // At the same positions, other names (no feature_columns, and another
  // header): the workers would evaluate on columns the model never saw.
  if (other.feature_names != train.feature_names) {
    return InvalidArgumentError("the " + name + " files' features (" + ListNames(other.feature_names) +
                                ") differ from the training files' (" + ListNames(train.feature_names) + ")");
  }
  if (kind == proto::TableLabels::CLASS_ID && other.max_label >= classes) {
    return InvalidArgumentError("the " + name + " files hold class " + std::to_string(other.max_label) +
                                ", and the training files only classes below " + std::to_string(classes) +
                                " (set data.table.num_classes)");
  }
  return OkStatus();
}

// The label column's rule and what the training files' labels were.
proto::TableLabels DescribeLabels(const TableScan& train, proto::TableLabels::Kind kind) {
  proto::TableLabels labels;
  labels.set_kind(kind);
  labels.set_all_integers(train.all_integers);
  labels.set_all_binary(train.all_binary);
  labels.set_min(train.min_label_value);
  labels.set_max(train.max_label_value);
  return labels;
}

}  // namespace

namespace {

// The categorical columns of the job: hashed, or with the vocabulary built
// from the training scan, or as `stored` holds them (checked against the spec).
Status DescribeCategorical(const proto::TableSpec& spec, const TableScan& train, const proto::TableVocabularies* stored,
                           proto::TableData* table) {
  const int categorical = spec.categorical_columns_size();
  const size_t first = train.columns.size() - categorical;
  if (stored != nullptr && stored->columns_size() != categorical) {
    return InvalidArgumentError("the stored vocabularies hold " + std::to_string(stored->columns_size()) +
                                " categorical columns, the spec " + std::to_string(categorical));
  }
  for (int c = 0; c < categorical; ++c) {
    const proto::CategoricalColumnSpec& column_spec = spec.categorical_columns(c);
    proto::CategoricalColumn* column = table->add_categorical_columns();
    if (stored != nullptr) {
      *column = stored->columns(c);
      RETURN_IF_ERROR(ValidateCategoricalColumn(*column).WithContext("the stored vocabularies"));
      RETURN_IF_ERROR(CheckColumnMatchesSpec(column_spec, *column).WithContext("the stored vocabularies"));
    } else if (column_spec.has_hash_buckets()) {
      column->set_hash_buckets(column_spec.hash_buckets());
    } else {
      ASSIGN_OR_RETURN(std::vector<std::string> vocabulary,
                       train.vocabulary_counts[c].Build(column_spec.vocabulary(), column_spec.name()));
      for (std::string& value : vocabulary) column->add_vocabulary(std::move(value));
    }
    column->set_name(column_spec.name());
    column->set_column(train.columns[first + c]);
  }
  return OkStatus();
}

}  // namespace

StatusOr<proto::TableData> DescribeTable(const proto::DataSpec& spec_data, BadRecords* bad,
                                         const proto::TableVocabularies* stored, proto::TableLabels::Kind kind,
                                         double* distinct_sparse_ids) {
  const proto::DataSpec data = TableDataSpec(spec_data);
  ASSIGN_OR_RETURN(TableScan train, ScanTable(data, Split::kTraining, data.max_train_examples(), kind));
  ASSIGN_OR_RETURN(TableScan test, ScanTable(data, Split::kTest, data.max_test_examples(), kind));
  const int found = train.max_label + 1;
  const int classes = kind == proto::TableLabels::BINARY ? 2
                      : kind == proto::TableLabels::NUMBER ? std::max(found, 1)
                      : data.table().num_classes() > 0     ? data.table().num_classes()
                                                           : found;
  RETURN_IF_ERROR(CheckLikeTraining(train, test, "test", classes, kind));
  proto::TableData table;
  *table.mutable_labels() = DescribeLabels(train, kind);
  BadRecords validation_bad;
  if (data.validation_files_size() > 0) {
    ASSIGN_OR_RETURN(TableScan validation,
                     ScanTable(data, Split::kValidation, data.max_validation_examples(), kind));
    RETURN_IF_ERROR(CheckLikeTraining(train, validation, "validation", classes, kind));
    for (const proto::TableBlock& b : validation.blocks) *table.add_validation_blocks() = b;
    validation_bad = std::move(validation.bad);
    table.set_validation_bad_records(validation_bad.count);
  }
  table.set_num_classes(std::max(classes, 1));
  for (const proto::TableBlock& b : train.blocks) *table.add_train_blocks() = b;
  for (const proto::TableBlock& b : test.blocks) *table.add_test_blocks() = b;
  table.set_label_column(train.columns[0]);
  const bool standardize = data.table().scaling() == proto::TableSpec::STANDARDIZE;
  for (size_t f = 0; f < train.present.size(); ++f) {
    table.add_feature_columns(train.columns[f + 1]);
    const double variance = train.present[f] > 0 ? train.squares[f] / static_cast<double>(train.present[f]) : 0;
    const double std = std::sqrt(variance);
    // 1/std overflows a float when std is below about 3e-39 (subnormal
    // values): such a column is constant to float arithmetic, and scaled by
    // 1 like a constant one (ValidateTableData refuses an infinite scale).
    const float scale = std > 0 ? static_cast<float>(1.0 / std) : 1.0f;
    table.add_shift(standardize ? static_cast<float>(train.mean[f]) : 0.0f);
    table.add_scale(standardize && std::isfinite(scale) ? scale : 1.0f);
  }
  RETURN_IF_ERROR(DescribeCategorical(data.table(), train, stored, &table));
  table.set_train_bad_records(train.bad.count);
  table.set_test_bad_records(test.bad.count);
  if (distinct_sparse_ids != nullptr) *distinct_sparse_ids = train.sparse_ids.Estimate();
  if (bad != nullptr) {
    bad->count = train.bad.count + validation_bad.count + test.bad.count;
    bad->first = train.bad.first;
    for (const BadRecords* other : {&validation_bad, &test.bad}) {
      for (const std::string& m : other->first) {
        if (bad->first.size() < BadRecords::kNamed) bad->first.push_back(m);
      }
    }
  }
  return table;
}

int64_t TableExampleValues(const proto::TableData& table) {
  return table.feature_columns_size() + table.categorical_columns_size();
}

std::vector<CategoricalIds> MakeCategoricalIds(const proto::TableData& table) {
  std::vector<CategoricalIds> ids;
  for (const proto::CategoricalColumn& column : table.categorical_columns()) ids.emplace_back(column);
  return ids;
}

Status ReadTableBlock(const proto::DataSpec& data, Split split, const proto::TableData& table,
                      const proto::TableBlock& block, std::vector<float>* x, std::vector<float>* labels,
                      std::vector<uint64_t>* sparse_ids) {
  return ReadTableBlock(data, split, table, MakeCategoricalIds(table), block, x, labels, sparse_ids);
}

namespace {

// The id slots of a record with 64-bit ids (CRITEO, data.table.sparse_ids):
// x gets -1 (no row yet: the worker writes each slot's row of the batch,
// worker/sparse_batch.h), *sparse_ids the ids, column k's salted by k.
void WriteSparseIds(const CsvRecord& record, const std::vector<int>& id_columns, float* x, uint64_t* sparse_ids) {
  for (size_t c = 0; c < id_columns.size(); ++c) {
    x[c] = -1.0f;
    sparse_ids[c] = SparseColumnId(static_cast<int>(c) + 1, record.fields[id_columns[c]]);
  }
}

}  // namespace

Status ReadTableBlock(const proto::DataSpec& spec_data, Split split, const proto::TableData& table,
                      const std::vector<CategoricalIds>& ids, const proto::TableBlock& block, std::vector<float>* x,
                      std::vector<float>* labels, std::vector<uint64_t>* sparse_ids) {
  const proto::DataSpec data = TableDataSpec(spec_data);
  const std::vector<std::string> files = TableFiles(data, split);
  const std::string& path = files[block.file()];
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, OpenTableFile(data, path, block.offset(), nullptr));
  std::vector<int> columns = {table.label_column()};
  columns.insert(columns.end(), table.feature_columns().begin(), table.feature_columns().end());
  for (const proto::CategoricalColumn& c : table.categorical_columns()) columns.push_back(c.column());
  const int columns_in_file = static_cast<int>(reader->Columns().size());
  if (*std::max_element(columns.begin(), columns.end()) >= columns_in_file) {
    return DataLossError(path + " has " + std::to_string(columns_in_file) +
                         " columns now, fewer than when the job was planned");
  }
  // The bad records the scheduler counted are passed over again, uncounted.
  BadRecords passed_over;
  const proto::TableLabels::Kind kind = table.labels().kind();
  GoodRecords records(data, reader.get(), columns, kind, &passed_over);
  CsvRecord record;
  ParsedRecord parsed;
  auto next = [&]() -> Status {
    ASSIGN_OR_RETURN(bool more, records.Next(&record, &parsed));
    if (!more) return DataLossError(path + " ends before record " + std::to_string(block.first_record() + block.records()) +
                                    ", which it held when the job was planned");
    return OkStatus();
  };
  // A plain file starts at the block's offset; a gzip'd one is read from its start up to the block.
  const int64_t skip = reader->compressed() || block.offset() == 0 ? block.first_record() : 0;
  for (int64_t i = 0; i < skip; ++i) RETURN_IF_ERROR(next());
  const size_t features = table.feature_columns_size();
  const size_t values = TableExampleValues(table);
  x->resize(block.records() * values);
  labels->resize(block.records());
  const int64_t ids_per_record = TableIdsPerExample(data);
  const std::vector<int> id_columns(columns.end() - ids_per_record, columns.end());
  std::vector<uint64_t> ignored_ids;
  if (sparse_ids == nullptr) sparse_ids = &ignored_ids;
  sparse_ids->resize(block.records() * ids_per_record);
  for (int64_t r = 0; r < block.records(); ++r) {
    RETURN_IF_ERROR(next());
    if (kind == proto::TableLabels::CLASS_ID && parsed.label >= table.num_classes()) {
      return DataLossError(reader->Place(record) + ": class " + std::to_string(static_cast<int>(parsed.label)) +
                           ", beyond the job's " + std::to_string(table.num_classes()));
    }
    (*labels)[r] = parsed.label;
    float* out = x->data() + r * values;
    for (size_t f = 0; f < features; ++f) out[f] = (parsed.values[f] - table.shift(f)) * table.scale(f);
    if (ids_per_record > 0) {
      WriteSparseIds(record, id_columns, out + features, sparse_ids->data() + r * ids_per_record);
      continue;
    }
    // Ids are below 2^24, so exact as floats.
    for (size_t c = 0; c < ids.size(); ++c) {
      out[features + c] = static_cast<float>(ids[c].Id(record.fields[columns[1 + features + c]]));
    }
  }
  return OkStatus();
}

Status ValidateTableData(const proto::DataSpec& spec_data, const proto::TableData& table, int64_t train_records,
                         int64_t test_records, int64_t validation_file_records) {
  const proto::DataSpec data = TableDataSpec(spec_data);
  const int features = table.feature_columns_size();
  if (features + table.categorical_columns_size() < 1 || table.shift_size() != features ||
      table.scale_size() != features) {
    return DataLossError("table data: " + std::to_string(features) + " features with " +
                         std::to_string(table.shift_size()) + " shifts and " + std::to_string(table.scale_size()) +
                         " scales");
  }
  if (table.num_classes() < 1 || table.num_classes() > kMaxTableClasses || table.label_column() < 0) {
    return DataLossError("table data: " + std::to_string(table.num_classes()) + " classes, label column " +
                         std::to_string(table.label_column()));
  }
  for (int f = 0; f < features; ++f) {
    if (table.feature_columns(f) < 0 || !std::isfinite(table.shift(f)) || !std::isfinite(table.scale(f))) {
      return DataLossError("table data: feature " + std::to_string(f) + " has a bad column or scaling");
    }
  }
  if (table.categorical_columns_size() != data.table().categorical_columns_size()) {
    return DataLossError("table data: " + std::to_string(table.categorical_columns_size()) +
                         " categorical columns, the spec " + std::to_string(data.table().categorical_columns_size()));
  }
  for (const proto::CategoricalColumn& column : table.categorical_columns()) {
    RETURN_IF_ERROR(ValidateCategoricalColumn(column).WithContext("table data"));
  }
  const auto check_blocks = [&](const auto& blocks, int files, int64_t examples, const char* split) -> Status {
    int64_t total = 0;
    for (const proto::TableBlock& b : blocks) {
      if (b.file() < 0 || b.file() >= files || b.records() < 1 || b.records() > kTableBlockRecords ||
          b.first_record() < 0) {
        return DataLossError(std::string("table data: a bad ") + split + " block");
      }
      total += b.records();
    }
    if (total != examples) {
      return DataLossError(std::string("table data: the ") + split + " blocks hold " + std::to_string(total) +
                           " records, the job " + std::to_string(examples));
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(check_blocks(table.train_blocks(), data.train_files_size(), train_records, "training"));
  RETURN_IF_ERROR(check_blocks(table.validation_blocks(), data.validation_files_size(), validation_file_records,
                               "validation"));
  return check_blocks(table.test_blocks(), data.test_files_size(), test_records, "test");
}

}  // namespace tessera
