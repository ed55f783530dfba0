// CSV and TSV data sets (DataSpec format CSV or TSV), and Criteo click logs
// (CRITEO) read as such a table: which columns are the label and the
// features, one pass over a split that checks every record and cuts the
// split into blocks, and reading one block back.
//
// A table's examples are its records: the feature columns as numbers, in
// the spec's order, scaled by x = (v - shift) * scale, and a label: a class
// id, 0 or 1, or a number, by the task (core/task.h). The
// scheduler describes the table once (DescribeTable: blocks, classes,
// scaling) and sends it in the cluster map; each worker then reads only the
// blocks of its shards (ReadTableBlock), a block at a time, so its memory
// does not grow with the data set.
//
// Blocks hold consecutive records of one file, at most kTableBlockRecords
// and at most kTableBlockValues feature values; a plain file's block starts
// at its byte offset, a gzip'd file's is reached by reading the file from its
// start (so large data sets are better plain, or cut into many files).
#ifndef TESSERA_CORE_TABLE_DATA_H_
#define TESSERA_CORE_TABLE_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/categorical.h"
#include "core/csv_reader.h"
#include "core/distinct_counter.h"
#include "core/spec.h"
#include "core/status.h"
#include "core/vocabulary_counter.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

inline constexpr int64_t kTableBlockRecords = 4096;
inline constexpr int64_t kTableBlockValues = int64_t{4} << 20;  // 16 MiB of floats
inline constexpr int kMaxTableClasses = 256;

// True for the CSV and TSV formats, and CRITEO: Criteo's click logs are
// read as a table of given column names (CriteoColumnNames) whose 26
// categorical columns become 64-bit ids (CriteoId), which travel beside the
// example's floats (ReadTableBlock's sparse_ids).
bool IsTableFormat(const proto::DataSpec& data);

// The spec the table functions read: `data` itself, or for CRITEO `data`
// with data.table describing Criteo's layout (label "label", features
// I1-I13 unscaled, categorical columns C1-C26, data.criteo's
// skip_bad_records); for a CSV/TSV table with data.table.sparse_ids,
// `data` with each categorical column marked hashed (hash_buckets 1,
// unused: its ids are 64-bit). Every function below takes the user's spec
// and applies this itself.
proto::DataSpec TableDataSpec(const proto::DataSpec& data);

// The 64-bit ids of one example (CRITEO: 26, one per categorical field;
// CSV and TSV with data.table.sparse_ids: one per categorical column); 0
// for other CSV and TSV tables, whose ids are small and travel as floats.
int64_t TableIdsPerExample(const proto::DataSpec& data);

// The reader options of data.format: ',' or '\t' between fields; CRITEO:
// CriteoCsvOptions().
CsvOptions TableCsvOptions(const proto::DataSpec& data);

// The paths of a split's files (data.train_files, data.validation_files or
// data.test_files under data.dir).
std::vector<std::string> TableFiles(const proto::DataSpec& data, Split split);

// The records of one block a file of `features` feature columns has.
int64_t TableBlockRecords(int features);

// Records passed over as bad (data.table.skip_bad_records).
struct BadRecords {
  static constexpr size_t kNamed = 5;
  int64_t count = 0;
  std::vector<std::string> first;  // the messages of the first kNamed
};

// One pass over a split's files: each record checked, the blocks cut, and
// what the scheduler needs to describe the table.
struct TableScan {
  // Header indexes: the label, then each numeric feature, then each
  // categorical column (data.table.categorical_columns' order).
  std::vector<int> columns;
  std::vector<std::string> feature_names;  // of columns[1...]
  std::vector<proto::TableBlock> blocks;
  int64_t records = 0;
  int max_label = -1;  // the largest class id (of labels in [0, 256))
  // Over every label: each an integer, each 0 or 1, the smallest and largest.
  bool all_integers = true, all_binary = true;
  float min_label_value = 0, max_label_value = 0;
  // Per feature, over the present (non-empty) values: count, mean and the
  // sum of squared deviations (Welford's running update, in file order).
  std::vector<int64_t> present;
  std::vector<double> mean, squares;
  // Per categorical column: its values' counts (vocabulary columns of the
  // training split only; empty otherwise).
  std::vector<VocabularyCounter> vocabulary_counts;
  // The training split's distinct 64-bit ids (TableIdsPerExample > 0): the
  // rows training may create in the sparse tables.
  DistinctCounter sparse_ids;
  BadRecords bad;
};

// Reads every record of the split `split` of `data` (at most max_records when
// > 0), checking each: as many fields as the header, the label by the rule
// `kind` (CLASS_ID: an integer in [0, 256), and below data.table.num_classes
// when that is set; BINARY: 0 or 1; NUMBER: any finite float), every
// feature a number or empty. Every file's header must name the same columns
// as the first's. Errors are one line naming the file, the line and the
// column, what was expected and what was found (with
// data.table.skip_bad_records, such a record is counted in `bad` and passed
// over instead); InvalidArgument for a mistake in the data, NotFound for a missing file, DataLoss for a damaged
// gzip stream.
StatusOr<TableScan> ScanTable(const proto::DataSpec& data, Split split, int64_t max_records,
                              proto::TableLabels::Kind kind = proto::TableLabels::CLASS_ID);

// The number of feature columns of the table `data` describes, from the
// first training file's header (no record read). Errors as ScanTable's.
StatusOr<int> TableFeatureCount(const proto::DataSpec& data);

// Scans every split with files (after max_train_examples / max_test_examples
// / max_validation_examples), whose label and features must be the same
// named columns at the same header positions (InvalidArgument otherwise),
// and returns what every worker needs: the blocks, the classes (given or
// found: one more than the largest training label; a test or validation
// label beyond them is InvalidArgument) and each
// feature's shift and scale (STANDARDIZE: the mean and 1/std of its present
// training values; scale 1 for a constant column, and for one whose std is
// too small for 1/std to be a float), and how many records of each split
// were passed over as bad, and each categorical column: hashed, or its
// vocabulary built from the training records (VocabularyCounter) — or, when
// `stored` is not null (a resumed job), the stored columns, which must match
// the spec's (InvalidArgument otherwise). `bad`, when not null, gets the
// skipped records of every split (training, validation, test). Labels are
// read by the rule `kind` (ScanTable), which TableData.labels records with
// what the training labels were; num_classes is 2 for BINARY, and for
// NUMBER one more than the largest label in [0, 256) (unused: a regression
// has none). `distinct_sparse_ids`, when not null, gets the estimated number
// of distinct 64-bit ids in the training files (TableScan::sparse_ids; 0
// when examples carry none).
StatusOr<proto::TableData> DescribeTable(const proto::DataSpec& data, BadRecords* bad = nullptr,
                                         const proto::TableVocabularies* stored = nullptr,
                                         proto::TableLabels::Kind kind = proto::TableLabels::CLASS_ID,
                                         double* distinct_sparse_ids = nullptr);

// The values of one example of `table`: its numeric features, then one id
// per categorical column.
int64_t TableExampleValues(const proto::TableData& table);

// Each categorical column's ids (data.table.categorical_columns' order), for ReadTableBlock.
std::vector<CategoricalIds> MakeCategoricalIds(const proto::TableData& table);

// Reads block `block` of split `split`'s files: x[records * values]
// (TableExampleValues: the numeric features scaled, then each categorical
// column's id as a float) and labels[records] (by the rule
// table.labels().kind; class ids exact as floats). CRITEO and
// data.table.sparse_ids: each categorical column's place in x holds -1 (a
// placeholder the worker overwrites with the id's row of its batch) and
// *sparse_ids[records * TableIdsPerExample] gets the ids (SparseColumnId of
// the column's number; kNoSparseId for an empty field); with sparse_ids null
// they are not kept. Other tables leave *sparse_ids empty. DataLoss when the file no
// longer holds what the scheduler found there (fewer records, another
// header); the record's errors as in ScanTable otherwise. REQUIRES: `table`
// passed ValidateTableData; `ids` is MakeCategoricalIds(table).
Status ReadTableBlock(const proto::DataSpec& data, Split split, const proto::TableData& table,
                      const std::vector<CategoricalIds>& ids, const proto::TableBlock& block, std::vector<float>* x,
                      std::vector<float>* labels, std::vector<uint64_t>* sparse_ids = nullptr);
// The same, making the ids for this one call.
Status ReadTableBlock(const proto::DataSpec& data, Split split, const proto::TableData& table,
                      const proto::TableBlock& block, std::vector<float>* x, std::vector<float>* labels,
                      std::vector<uint64_t>* sparse_ids = nullptr);

// Checks a TableData from the wire against the spec and the records of
// each split's files (training: those a validation_fraction holds out
// included; validation: of data.validation_files): the blocks cover each
// split in order, columns and scales fit, one categorical column per
// data.table.categorical_columns, each valid (ValidateCategoricalColumn).
// DataLoss naming the first problem.
Status ValidateTableData(const proto::DataSpec& data, const proto::TableData& table, int64_t train_records,
                         int64_t test_records, int64_t validation_file_records = 0);

}  // namespace tessera

#endif  // TESSERA_CORE_TABLE_DATA_H_
