// CSV/TSV tables (core/table_data): the blocks, classes and scaling
// ScanTable and DescribeTable find in small hand-written and generated files,
// every error's text, ReadTableBlock against the values written, what
// ValidateTableData and ValidateJobSpec refuse; and a TableExampleReader read
// through BatchPrefetcher under TrainingOrder.
#include "core/table_data.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/data_plan.h"
#include "core/spec.h"
#include "tests/test_util.h"
#include "worker/batch_prefetcher.h"
#include "worker/example_reader.h"

namespace tessera {
namespace {

using TempDir = ScopedTestDir;

// A CSV data spec over `train` and `test` (file names under dir), label column "label".
proto::DataSpec CsvData(const std::string& dir, const std::vector<std::string>& train,
                        const std::vector<std::string>& test) {
  proto::DataSpec data;
  data.set_format(proto::DataSpec::CSV);
  data.set_dir(dir);
  for (const std::string& name : train) data.add_train_files(name);
  for (const std::string& name : test) data.add_test_files(name);
  data.mutable_table()->set_label_column("label");
  return data;
}

// A block as (file, offset, first_record, records), for comparisons that print well.
using BlockTuple = std::tuple<int, uint64_t, int64_t, int64_t>;

template <typename Blocks>
std::vector<BlockTuple> BlocksOf(const Blocks& blocks) {
  std::vector<BlockTuple> out;
  for (const proto::TableBlock& b : blocks) out.emplace_back(b.file(), b.offset(), b.first_record(), b.records());
  return out;
}

// A generated table file: its text and what each record holds.
struct TableFile {
  std::string text;
  std::vector<int> labels;
  std::vector<std::vector<std::optional<float>>> values;  // [record][feature]; nullopt: an empty field
  std::vector<uint64_t> offsets;                          // where each record starts in `text`
};

struct TableOptions {
  int features = 1;
  int seed = 0;
  bool gaps = false;  // leave about one value in 7 empty
  char delimiter = ',';
  bool crlf = false;
  bool bom = false;
  int classes = 5;
};

// A header "label,f0,f1,..." and `records` records: label (7i + seed) mod
// classes, values k/4 - 100 for k in [0, 1000) (exact in float and as
// written with two decimals).
TableFile MakeTable(int64_t records, const TableOptions& o = {}) {
  TableFile t;
  const std::string eol = o.crlf ? "\r\n" : "\n";
  if (o.bom) t.text = "\xEF\xBB\xBF";
  t.text += "label";
  for (int f = 0; f < o.features; ++f) {
    t.text += o.delimiter;  // piece by piece: char + std::string trips GCC 12's -Wrestrict
    t.text += 'f';
    t.text += std::to_string(f);
  }
  t.text += eol;
  for (int64_t i = 0; i < records; ++i) {
    t.offsets.push_back(t.text.size());
    const int label = static_cast<int>((i * 7 + o.seed) % o.classes);
    t.labels.push_back(label);
    t.text += std::to_string(label);
    std::vector<std::optional<float>>& row = t.values.emplace_back();
    for (int f = 0; f < o.features; ++f) {
      t.text += o.delimiter;
      if (o.gaps && (i + f + o.seed) % 7 == 3) {
        row.push_back(std::nullopt);
        continue;
      }
      const int k = static_cast<int>((i * 31 + f * 17 + o.seed * 13) % 1000);
      char number[32];
      std::snprintf(number, sizeof(number), "%.2f", k * 0.25 - 100.0);
      t.text += number;
      row.push_back(static_cast<float>(k * 0.25 - 100.0));
    }
    t.text += eol;
  }
  return t;
}

// What ReadTableBlock must give for records [first, first + count) of `t`
// (whose features are the table's, in file order).
void ExpectedRows(const TableFile& t, const proto::TableData& table, float fill, int64_t first, int64_t count,
                  std::vector<float>* x, std::vector<float>* labels) {
  const int features = table.feature_columns_size();
  for (int64_t r = first; r < first + count; ++r) {
    labels->push_back(static_cast<float>(t.labels[r]));
    for (int f = 0; f < features; ++f) {
      const float v = t.values[r][f].value_or(fill);
      x->push_back((v - table.shift(f)) * table.scale(f));
    }
  }
}

// Each feature's mean and population standard deviation over the present
// values of `files` (two passes, for comparison with the scan's running update).
void Moments(const std::vector<const TableFile*>& files, int features, std::vector<double>* mean,
             std::vector<double>* std) {
  mean->assign(features, 0);
  std->assign(features, 0);
  for (int f = 0; f < features; ++f) {
    double sum = 0;
    int64_t n = 0;
    for (const TableFile* t : files) {
      for (const auto& row : t->values) {
        if (row[f].has_value()) sum += *row[f], ++n;
      }
    }
    (*mean)[f] = sum / static_cast<double>(n);
    double squares = 0;
    for (const TableFile* t : files) {
      for (const auto& row : t->values) {
        if (row[f].has_value()) squares += (*row[f] - (*mean)[f]) * (*row[f] - (*mean)[f]);
      }
    }
    (*std)[f] = std::sqrt(squares / static_cast<double>(n));
  }
}

StatusOr<proto::TableData> Describe(const proto::DataSpec& data) { return DescribeTable(data); }

// The error DescribeTable returns (OK when there is none).
Status DescribeError(const proto::DataSpec& data) { return DescribeTable(data).status(); }

// ---------------------------------------------------------------- blocks

TEST(TableDataTest, TableBlockRecordsKeepsBlocksWithinTheValueBudget) {
  EXPECT_EQ(TableBlockRecords(0), kTableBlockRecords);
  EXPECT_EQ(TableBlockRecords(1), 4096);
  EXPECT_EQ(TableBlockRecords(1024), 4096);  // 4 Mi values exactly
  EXPECT_EQ(TableBlockRecords(1025), 4092);  // 4194304 / 1025 = 4092.004
  EXPECT_EQ(TableBlockRecords(2048), 2048);
  EXPECT_EQ(TableBlockRecords(4096), 1024);
  EXPECT_EQ(TableBlockRecords(int{1} << 22), 1);
  EXPECT_EQ(TableBlockRecords((int{1} << 22) + 1), 1);  // at least one record
  EXPECT_EQ(TableBlockRecords(std::numeric_limits<int>::max()), 1);
}

TEST(TableDataTest, ScanCutsAFileIntoBlocksAtItsRecordsOffsets) {
  TempDir dir;
  const TableFile t = MakeTable(10000);
  WriteText(dir.File("train.csv"), t.text);
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  StatusOr<TableScan> scan = ScanTable(data, Split::kTraining, 0);
  ASSERT_OK(scan.status());
  EXPECT_EQ(scan->records, 10000);
  EXPECT_EQ(scan->columns, (std::vector<int>{0, 1}));
  EXPECT_EQ(scan->feature_names, (std::vector<std::string>{"f0"}));
  EXPECT_EQ(scan->max_label, 4);
  EXPECT_EQ(scan->present, (std::vector<int64_t>{10000}));
  EXPECT_EQ(BlocksOf(scan->blocks), (std::vector<BlockTuple>{{0, t.offsets[0], 0, 4096},
                                                             {0, t.offsets[4096], 4096, 4096},
                                                             {0, t.offsets[8192], 8192, 1808}}));
  EXPECT_EQ(t.offsets[0], std::string("label,f0\n").size());
  // max_records cuts the scan short, inside a block.
  scan = ScanTable(data, Split::kTraining, 4100);
  ASSERT_OK(scan.status());
  EXPECT_EQ(scan->records, 4100);
  EXPECT_EQ(BlocksOf(scan->blocks), (std::vector<BlockTuple>{{0, t.offsets[0], 0, 4096}, {0, t.offsets[4096], 4096, 4}}));
}

TEST(TableDataTest, OffsetsCountAByteOrderMarkAndCrlfLineEnds) {
  TempDir dir;
  TableOptions options;
  options.bom = true;
  options.crlf = true;
  options.features = 2;
  const TableFile t = MakeTable(9000, options);
  WriteText(dir.File("train.csv"), t.text);
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()), (std::vector<BlockTuple>{{0, t.offsets[0], 0, 4096},
                                                                      {0, t.offsets[4096], 4096, 4096},
                                                                      {0, t.offsets[8192], 8192, 808}}));
  // The middle block, read from its offset, is records 4096...
  std::vector<float> x, want_x;
  std::vector<float> labels, want_labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(1), &x, &labels));
  ExpectedRows(t, *table, 0, 4096, 4096, &want_x, &want_labels);
  EXPECT_EQ(x, want_x);
  EXPECT_EQ(labels, want_labels);
}

TEST(TableDataTest, QuotedLineEndsInAnotherColumnDoNotMoveTheBlocks) {
  TempDir dir;
  std::string text = "label,note,x\n";
  std::vector<uint64_t> offsets;
  for (int i = 0; i < 5000; ++i) {
    offsets.push_back(text.size());
    text += std::to_string(i % 3) + ",\"a\nb,\"\"c\"\"\"," + std::to_string(i) + "\n";
  }
  WriteText(dir.File("train.csv"), text);
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->add_feature_columns("x");
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()),
            (std::vector<BlockTuple>{{0, offsets[0], 0, 4096}, {0, offsets[4096], 4096, 904}}));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(1), &x, &labels));
  ASSERT_EQ(x.size(), 904u);
  for (int i = 0; i < 904; ++i) {
    ASSERT_EQ(x[i], 4096 + i) << "record " << 4096 + i;
    ASSERT_EQ(labels[i], (4096 + i) % 3) << "record " << 4096 + i;
  }
}

TEST(TableDataTest, BlocksNeverSpanFiles) {
  TempDir dir;
  TableOptions options;
  const TableFile a = MakeTable(5000, options);
  options.seed = 1;
  const TableFile b = MakeTable(3, options);
  options.seed = 2;
  const TableFile c = MakeTable(4097, options);
  WriteText(dir.File("a.csv"), a.text);
  WriteText(dir.File("b.csv"), b.text);
  WriteText(dir.File("c.csv"), c.text);
  const proto::DataSpec data = CsvData(dir.path(), {"a.csv", "b.csv", "c.csv"}, {"c.csv", "b.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()), (std::vector<BlockTuple>{{0, a.offsets[0], 0, 4096},
                                                                      {0, a.offsets[4096], 4096, 904},
                                                                      {1, b.offsets[0], 0, 3},
                                                                      {2, c.offsets[0], 0, 4096},
                                                                      {2, c.offsets[4096], 4096, 1}}));
  EXPECT_EQ(BlocksOf(table->test_blocks()), (std::vector<BlockTuple>{{0, c.offsets[0], 0, 4096},
                                                                     {0, c.offsets[4096], 4096, 1},
                                                                     {1, b.offsets[0], 0, 3}}));
  EXPECT_EQ(table->label_column(), 0);
  EXPECT_EQ(std::vector<int>(table->feature_columns().begin(), table->feature_columns().end()),
            (std::vector<int>{1}));
}

TEST(TableDataTest, GzippedFilesHaveBlocksAtOffsetZero) {
  TempDir dir;
  TableOptions options;
  const TableFile a = MakeTable(10000, options);
  options.seed = 4;
  const TableFile b = MakeTable(20, options);
  WriteGzText(dir.File("a.csv.gz"), a.text);
  WriteText(dir.File("b.csv"), b.text);
  const proto::DataSpec data = CsvData(dir.path(), {"a.csv.gz", "b.csv"}, {"b.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()),
            (std::vector<BlockTuple>{{0, 0, 0, 4096}, {0, 0, 4096, 4096}, {0, 0, 8192, 1808}, {1, b.offsets[0], 0, 20}}));
}

TEST(TableDataTest, MaxExamplesCutTheSplits) {
  TempDir dir;
  // File a: labels 0, 1, 2; file b: labels 3, 4, 9. Feature values 1..6.
  WriteText(dir.File("a.csv"), "label,v\n0,1\n1,2\n2,3\n");
  WriteText(dir.File("b.csv"), "label,v\n3,4\n4,5\n9,6\n");
  WriteText(dir.File("t.csv"), "label,v\n0,1\n1,1\n7,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"a.csv", "b.csv"}, {"t.csv"});
  data.set_max_train_examples(4);
  data.set_max_test_examples(2);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()), (std::vector<BlockTuple>{{0, 8, 0, 3}, {1, 8, 0, 1}}));
  EXPECT_EQ(BlocksOf(table->test_blocks()), (std::vector<BlockTuple>{{0, 8, 0, 2}}));
  EXPECT_EQ(table->num_classes(), 4);  // labels 0..3: the 9 and the test's 7 are cut off
  // The scaling is over the first 4 values only: mean 2.5, variance 1.25.
  ASSERT_EQ(table->shift_size(), 1);
  EXPECT_FLOAT_EQ(table->shift(0), 2.5f);
  EXPECT_FLOAT_EQ(table->scale(0), static_cast<float>(1 / std::sqrt(1.25)));

  data.set_max_train_examples(2);
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()), (std::vector<BlockTuple>{{0, 8, 0, 2}}));
  EXPECT_EQ(table->num_classes(), 2);

  data.set_max_train_examples(0);  // all: the 9 in b
  data.set_max_test_examples(0);   // and the test's 7
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(BlocksOf(table->train_blocks()), (std::vector<BlockTuple>{{0, 8, 0, 3}, {1, 8, 0, 3}}));
  EXPECT_EQ(BlocksOf(table->test_blocks()), (std::vector<BlockTuple>{{0, 8, 0, 3}}));
  EXPECT_EQ(table->num_classes(), 10);
}

TEST(TableDataTest, NumClassesIsFoundOrGiven) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,v\n0,1\n2,2\n1,3\n2,4\n");
  WriteText(dir.File("test.csv"), "label,v\n2,1\n0,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->num_classes(), 3);
  data.mutable_table()->set_num_classes(10);
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->num_classes(), 10);
  data.mutable_table()->set_num_classes(256);
  WriteText(dir.File("train.csv"), "label,v\n255,1\n0,2\n");
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->num_classes(), 256);
  data.mutable_table()->set_num_classes(0);
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->num_classes(), 256);  // found: 255 + 1
}

// ---------------------------------------------------------------- scaling

// A tiny table: column a 1, 2, 4, 5 (mean 3, variance 10/4); b 2, -, 6, 10
// (one missing; mean 6, variance 32/3); c constant 7.
constexpr char kTiny[] = "label,a,b,c\n0,1,2,7\n1,2,,7\n0,4,6,7\n1,5,10,7\n";

TEST(TableDataTest, StandardizeShiftsByTheMeanAndScalesByOneOverThePopulationStd) {
  TempDir dir;
  WriteText(dir.File("train.csv"), kTiny);
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->set_fill_value(100);
  StatusOr<TableScan> scan = ScanTable(data, Split::kTraining, 0);
  ASSERT_OK(scan.status());
  EXPECT_EQ(scan->present, (std::vector<int64_t>{4, 3, 4}));
  EXPECT_DOUBLE_EQ(scan->mean[1], 6.0);
  EXPECT_DOUBLE_EQ(scan->squares[1], 32.0);

  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  ASSERT_EQ(table->shift_size(), 3);
  ASSERT_EQ(table->scale_size(), 3);
  EXPECT_FLOAT_EQ(table->shift(0), 3.0f);
  EXPECT_FLOAT_EQ(table->scale(0), static_cast<float>(1 / std::sqrt(2.5)));
  EXPECT_FLOAT_EQ(table->shift(1), 6.0f);  // the missing value is not a 0 (nor the fill value)
  EXPECT_FLOAT_EQ(table->scale(1), static_cast<float>(1 / std::sqrt(32.0 / 3)));
  EXPECT_FLOAT_EQ(table->shift(2), 7.0f);
  EXPECT_EQ(table->scale(2), 1.0f);  // a constant column
  EXPECT_EQ(table->num_classes(), 2);

  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  EXPECT_EQ(labels, (std::vector<float>{0, 1, 0, 1}));
  const float sa = table->scale(0), sb = table->scale(1);
  const std::vector<float> want = {(1 - 3.0f) * sa, (2 - 6.0f) * sb,   0,  //
                                   (2 - 3.0f) * sa, (100 - 6.0f) * sb, 0,  // b filled, then scaled
                                   (4 - 3.0f) * sa, (6 - 6.0f) * sb,   0,  //
                                   (5 - 3.0f) * sa, (10 - 6.0f) * sb,  0};
  EXPECT_EQ(x, want);
  EXPECT_NEAR(x[0], -2 / std::sqrt(2.5), 1e-6);
  EXPECT_NEAR(x[4], 94 / std::sqrt(32.0 / 3), 1e-4);
}

TEST(TableDataTest, ScalingNoneUsesTheValuesAsTheyAre) {
  TempDir dir;
  WriteText(dir.File("train.csv"), kTiny);
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  data.mutable_table()->set_fill_value(-1.5f);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(std::vector<float>(table->shift().begin(), table->shift().end()), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(std::vector<float>(table->scale().begin(), table->scale().end()), (std::vector<float>{1, 1, 1}));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{1, 2, 7, 2, -1.5f, 7, 4, 6, 7, 5, 10, 7}));
}

TEST(TableDataTest, AColumnTooNarrowForAFloatScaleIsScaledLikeAConstantOne) {
  TempDir dir;
  // Column a: subnormal values, std 7e-46, whose 1/std is no float; b: narrow
  // (std 5e-31) but its 1/std is one.
  WriteText(dir.File("train.csv"), "label,a,b\n0,0,0\n1,1e-45,1e-30\n0,0,0\n1,1e-45,1e-30\n");
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->scale(0), 1.0f);
  EXPECT_FLOAT_EQ(table->scale(1), 2e30f);
  EXPECT_FLOAT_EQ(table->shift(1), 5e-31f);
  // What DescribeTable returns passes the workers' check, and reads back finite.
  ASSERT_OK(ValidateTableData(data, *table, 4, 4));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(std::isfinite(x[i])) << "value " << i << ": " << x[i];
  EXPECT_NEAR(x[1], -1, 1e-5);  // b standardized: -1, 1, -1, 1
  EXPECT_NEAR(x[3], 1, 1e-5);
}

TEST(TableDataTest, ScalingOfAGeneratedTableMatchesTwoPassMoments) {
  TempDir dir;
  TableOptions options;
  options.features = 3;
  options.gaps = true;
  const TableFile a = MakeTable(700, options);
  options.seed = 3;
  const TableFile b = MakeTable(300, options);
  WriteText(dir.File("a.csv"), a.text);
  WriteText(dir.File("b.csv"), b.text);
  const proto::DataSpec data = CsvData(dir.path(), {"a.csv", "b.csv"}, {"b.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  std::vector<double> mean, std;
  Moments({&a, &b}, 3, &mean, &std);
  for (int f = 0; f < 3; ++f) {
    EXPECT_NEAR(table->shift(f), mean[f], 1e-4 * std::max(1.0, std::abs(mean[f]))) << "feature " << f;
    EXPECT_NEAR(table->scale(f), 1 / std[f], 1e-6 / std[f]) << "feature " << f;
  }
}

// ---------------------------------------------------------------- columns

TEST(TableDataTest, FeatureColumnsAreChosenAndOrderedByTheSpec) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "a,label,b,c\n1,0,2,3\n4,1,5,6\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  data.mutable_table()->add_feature_columns("c");
  data.mutable_table()->add_feature_columns("a");
  StatusOr<TableScan> scan = ScanTable(data, Split::kTraining, 0);
  ASSERT_OK(scan.status());
  EXPECT_EQ(scan->columns, (std::vector<int>{1, 3, 0}));
  EXPECT_EQ(scan->feature_names, (std::vector<std::string>{"c", "a"}));
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->label_column(), 1);
  EXPECT_EQ(std::vector<int>(table->feature_columns().begin(), table->feature_columns().end()),
            (std::vector<int>{3, 0}));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{3, 1, 6, 4}));
  EXPECT_EQ(labels, (std::vector<float>{0, 1}));

  // Without feature_columns: every column but the label, in file order.
  data.mutable_table()->clear_feature_columns();
  table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(std::vector<int>(table->feature_columns().begin(), table->feature_columns().end()),
            (std::vector<int>{0, 2, 3}));
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(TableDataTest, TsvIsTabSeparated) {
  TempDir dir;
  WriteText(dir.File("train.tsv"), "label\tx\ty\n1\t0.5\t-2\n0\t\"1,5\"\t3\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.tsv"}, {"train.tsv"});
  data.set_format(proto::DataSpec::TSV);
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  // "1,5" is one field in a TSV file, and not a number.
  EXPECT_EQ(DescribeError(data).message(), dir.File("train.tsv") + ":3: column \"x\": expected a finite number, got \"1,5\"");
  WriteText(dir.File("train.tsv"), "label\tx\ty\n1\t0.5\t-2\n0\t1.5\t3\n");
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{0.5f, -2, 1.5f, 3}));
  EXPECT_EQ(labels, (std::vector<float>{1, 0}));
  // Read as CSV, the header is one column named "label\tx\ty".
  data.set_format(proto::DataSpec::CSV);
  EXPECT_EQ(DescribeError(data).message(),
            dir.File("train.tsv") + ": no column 'label' (data.table.label_column); the header has label\tx\ty");
}

// ---------------------------------------------------------------- errors

TEST(TableDataErrorTest, MissingLabelColumnListsTheHeader) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "class,a,b\n1,2,3\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  const Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("train.csv") + ": no column 'label' (data.table.label_column); the header has "
                                                      "class, a, b");
  // A long header is listed up to 20 names.
  std::string header = "c0";
  for (int i = 1; i < 25; ++i) header += ",c" + std::to_string(i);
  WriteText(dir.File("train.csv"), header + "\n");
  EXPECT_EQ(DescribeError(data).message(),
            dir.File("train.csv") + ": no column 'label' (data.table.label_column); the header has c0, c1, c2, c3, c4, "
                                    "c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, ... (25 "
                                    "columns)");
}

TEST(TableDataErrorTest, UnknownFeatureColumn) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,a,b\n1,2,3\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->add_feature_columns("b");
  data.mutable_table()->add_feature_columns("z");
  const Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            dir.File("train.csv") + ": no column 'z' (data.table.feature_columns); the header has label, a, b");
}

TEST(TableDataErrorTest, FeatureColumnsNamingTheLabel) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,a,b\n1,2,3\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->add_feature_columns("a");
  data.mutable_table()->add_feature_columns("label");
  const Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "data.table.feature_columns names the label column 'label'");
}

TEST(TableDataErrorTest, NoFeatureBesidesTheLabel) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label\n1\n");
  const Status status = DescribeError(CsvData(dir.path(), {"train.csv"}, {"train.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("train.csv") + ": no feature column besides the label");
}

TEST(TableDataErrorTest, LabelsMustBeIntegersBelow256) {
  TempDir dir;
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  for (const std::string label : {"cat", "-1", "256", "1.5", "", " 1", "1 ", "+1", "0x1", "1e2", "99999999999"}) {
    SCOPED_TRACE("label \"" + label + "\"");
    WriteText(dir.File("train.csv"), "x,label\n1,0\n2," + label + "\n");
    const Status status = DescribeError(data);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), dir.File("train.csv") +
                                    ":3: column 'label': expected a class id, an integer in [0, 256), got \"" + label +
                                    "\"");
  }
  for (const std::string label : {"0", "255", "007"}) {
    SCOPED_TRACE("label \"" + label + "\"");
    WriteText(dir.File("train.csv"), "x,label\n1," + label + "\n");
    EXPECT_OK(DescribeError(data));
  }
}

TEST(TableDataErrorTest, ALabelErrorIsOneLine) {
  TempDir dir;
  // A quoted label may hold a line end, or be long: the message stays one line, and short.
  WriteText(dir.File("train.csv"), "x,label\n1,\"1\r\n2\"\n");
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("train.csv") +
                                  ":2: column 'label': expected a class id, an integer in [0, 256), got \"1\\r\\n2\"");
  WriteText(dir.File("train.csv"), "x,label\n1," + std::string(100, '7') + "\n");
  status = DescribeError(data);
  EXPECT_EQ(status.message(), dir.File("train.csv") + ":2: column 'label': expected a class id, an integer in [0, "
                                                      "256), got \"" + std::string(64, '7') + "...\"");
}

TEST(TableDataErrorTest, LabelAtOrAboveTheGivenNumClasses) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,x\n0,1\n2,1\n3,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  data.mutable_table()->set_num_classes(3);
  const Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("train.csv") +
                                  ":4: column 'label': expected a class id below data.table.num_classes 3, got 3");
  data.mutable_table()->set_num_classes(4);
  EXPECT_OK(DescribeError(data));
}

TEST(TableDataErrorTest, TestLabelBeyondTheTrainingClasses) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,x\n0,1\n2,1\n1,1\n");
  WriteText(dir.File("test.csv"), "label,x\n0,1\n5,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  const Status status = DescribeError(data);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "the test files hold class 5, and the training files only classes below 3 (set data.table.num_classes)");
  data.mutable_table()->set_num_classes(6);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  EXPECT_EQ(table->num_classes(), 6);
  // Given too few, the test file's record is named.
  data.mutable_table()->set_num_classes(5);
  EXPECT_EQ(DescribeError(data).message(),
            dir.File("test.csv") + ":3: column 'label': expected a class id below data.table.num_classes 5, got 5");
}

TEST(TableDataErrorTest, NonNumericFeatureNamesTheFileLineAndColumn) {
  TempDir dir;
  const proto::DataSpec data = CsvData(dir.path(), {"a.csv", "b.csv"}, {"a.csv"});
  WriteText(dir.File("a.csv"), "label,a,b\n0,1,2\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"x", "expected a finite number, got \"x\""},
      {"nan", "expected a finite number, got \"nan\""},
      {"inf", "expected a finite number, got \"inf\""},
      {"1.5.2", "expected a finite number, got \"1.5.2\""},
      {" 1", "expected a finite number, got \" 1\""},
      {"1e39", "expected a number within float range, got \"1e39\""},
  };
  for (const auto& [value, what] : cases) {
    SCOPED_TRACE(value);
    WriteText(dir.File("b.csv"), "label,a,b\n1,3,4\n0,5," + value + "\n");
    const Status status = DescribeError(data);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), dir.File("b.csv") + ":3: column \"b\": " + what);
  }
}

TEST(TableDataErrorTest, WrongFieldCount) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,a,b\n0,1,2\n1,2\n");
  const Status status = DescribeError(CsvData(dir.path(), {"train.csv"}, {"train.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("train.csv") + ":3: 2 fields, expected 3 (the header's)");
  WriteText(dir.File("train.csv"), "label,a,b\n0,1,2\n1,2,3,4\n");
  EXPECT_EQ(DescribeError(CsvData(dir.path(), {"train.csv"}, {"train.csv"})).message(),
            dir.File("train.csv") + ":3: 4 fields, expected 3 (the header's)");
}

TEST(TableDataErrorTest, ASecondFileWhoseHeaderDiffers) {
  TempDir dir;
  WriteText(dir.File("a.csv"), "label,a,b\n0,1,2\n");
  WriteText(dir.File("b.csv"), "label,a,c\n0,1,2\n");
  WriteText(dir.File("c.csv"), "label,b,a\n0,1,2\n");
  Status status = DescribeError(CsvData(dir.path(), {"a.csv", "b.csv"}, {"a.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            dir.File("b.csv") + ": its header (label, a, c) differs from the first file's (label, a, b)");
  // The same columns in another order differ too; and the test split is checked the same way.
  status = DescribeError(CsvData(dir.path(), {"a.csv"}, {"a.csv", "a.csv", "c.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            dir.File("c.csv") + ": its header (label, b, a) differs from the first file's (label, a, b)");
}

TEST(TableDataErrorTest, TestFilesWhoseColumnsAreNotTheTrainingFiles) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,a,b\n0,1,2\n");
  WriteText(dir.File("test.csv"), "a,label,b\n1,0,2\n");
  const Status status = DescribeError(CsvData(dir.path(), {"train.csv"}, {"test.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "the test files' columns differ from the training files': label and features at 3 header positions, not "
            "where the training files have them");
  // The same positions, other names: the test files hold other features.
  WriteText(dir.File("test.csv"), "label,c,d\n0,1,2\n");
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  EXPECT_EQ(DescribeError(data).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DescribeError(data).message(), "the test files' features (c, d) differ from the training files' (a, b)");
  WriteText(dir.File("test.csv"), "label,a,d\n0,1,2\n");
  EXPECT_EQ(DescribeError(data).message(), "the test files' features (a, d) differ from the training files' (a, b)");
  // Named in the spec, the features are found by name: an extra column in the test files is no matter.
  WriteText(dir.File("test.csv"), "label,a,b,note\n0,1,2,x\n");
  proto::DataSpec chosen = data;
  chosen.mutable_table()->add_feature_columns("a");
  chosen.mutable_table()->add_feature_columns("b");
  EXPECT_OK(DescribeError(chosen));
}

TEST(TableDataErrorTest, AMissingFileIsNotFound) {
  TempDir dir;
  WriteText(dir.File("a.csv"), "label,a\n0,1\n");
  Status status = DescribeError(CsvData(dir.path(), {"a.csv", "nope.csv"}, {"a.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "CSV file not found: " + dir.File("nope.csv"));
  status = DescribeError(CsvData(dir.path(), {"a.csv"}, {"a.csv", "gone.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "CSV file not found: " + dir.File("gone.csv"));
  // An absolute name is used as it is.
  status = DescribeError(CsvData(dir.path(), {"/nonexistent-dir/x.csv"}, {"a.csv"}));
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "CSV file not found: /nonexistent-dir/x.csv");
}

// ---------------------------------------------------------------- ReadTableBlock

// Two training files (the second a little over one block) and a test file
// of 3 features with missing values; plain or gzip'd.
struct ThreeFiles {
  TableFile a, b, t;
};

ThreeFiles WriteThreeFiles(const TempDir& dir, bool gzip, proto::DataSpec* data) {
  TableOptions options;
  options.features = 3;
  options.gaps = true;
  ThreeFiles files;
  files.a = MakeTable(5000, options);
  options.seed = 1;
  files.b = MakeTable(4200, options);
  options.seed = 2;
  files.t = MakeTable(4100, options);
  const std::string ext = gzip ? ".csv.gz" : ".csv";
  const auto write = gzip ? WriteGzText : WriteText;
  write(dir.File("a" + ext), files.a.text);
  write(dir.File("b" + ext), files.b.text);
  write(dir.File("t" + ext), files.t.text);
  *data = CsvData(dir.path(), {"a" + ext, "b" + ext}, {"t" + ext});
  data->mutable_table()->set_fill_value(0.75f);
  return files;
}

void ExpectEveryBlockReadsBack(bool gzip) {
  TempDir dir;
  proto::DataSpec data;
  const ThreeFiles files = WriteThreeFiles(dir, gzip, &data);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  ASSERT_EQ(table->train_blocks_size(), 4);
  ASSERT_EQ(table->test_blocks_size(), 2);
  ASSERT_OK(ValidateTableData(data, *table, 9200, 4100));
  for (const bool test : {false, true}) {
    const auto& blocks = test ? table->test_blocks() : table->train_blocks();
    for (int i = 0; i < blocks.size(); ++i) {
      SCOPED_TRACE((test ? "test block " : "training block ") + std::to_string(i));
      const proto::TableBlock& block = blocks[i];
      const TableFile& file = test ? files.t : (block.file() == 0 ? files.a : files.b);
      std::vector<float> x, want_x;
      std::vector<float> labels, want_labels;
      ASSERT_OK(ReadTableBlock(data, test ? Split::kTest : Split::kTraining, *table, block, &x, &labels));
      ExpectedRows(file, *table, 0.75f, block.first_record(), block.records(), &want_x, &want_labels);
      ASSERT_EQ(x.size(), static_cast<size_t>(block.records() * 3));
      EXPECT_EQ(x, want_x);
      EXPECT_EQ(labels, want_labels);
    }
  }
  // Reading again into used vectors gives the same (they are resized, not appended to).
  std::vector<float> x(7, 1.0f), again;
  std::vector<float> labels(99, 1), again_labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(3), &x, &labels));
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(3), &again, &again_labels));
  EXPECT_EQ(x, again);
  EXPECT_EQ(labels, again_labels);
  EXPECT_EQ(labels.size(), 104u);
}

TEST(ReadTableBlockTest, EveryBlockOfAPlainTable) { ExpectEveryBlockReadsBack(/*gzip=*/false); }

TEST(ReadTableBlockTest, EveryBlockOfAGzippedTable) { ExpectEveryBlockReadsBack(/*gzip=*/true); }

void ExpectShortenedFileIsDataLoss(bool gzip) {
  TempDir dir;
  proto::DataSpec data;
  ThreeFiles files = WriteThreeFiles(dir, gzip, &data);
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  // b.csv loses its last 50 records (whole lines): its second block (4096..4200) ends early.
  const std::string b = dir.File(gzip ? "b.csv.gz" : "b.csv");
  const auto write = gzip ? WriteGzText : WriteText;
  write(b, files.b.text.substr(0, files.b.offsets[4150]));
  std::vector<float> x;
  std::vector<float> labels;
  Status status = ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(3), &x, &labels);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), b + " ends before record 4200, which it held when the job was planned");
  // The first block is all there still.
  EXPECT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(2), &x, &labels));
  // Cut before the second block starts.
  write(b, files.b.text.substr(0, files.b.offsets[1000]));
  status = ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(3), &x, &labels);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), b + " ends before record 4200, which it held when the job was planned");
  // A header of fewer columns.
  write(b, "label,f0\n1,2\n");
  status = ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(2), &x, &labels);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), b + " has 2 columns now, fewer than when the job was planned");
}

TEST(ReadTableBlockTest, AShortenedPlainFileIsDataLoss) { ExpectShortenedFileIsDataLoss(/*gzip=*/false); }

TEST(ReadTableBlockTest, AShortenedGzippedFileIsDataLoss) { ExpectShortenedFileIsDataLoss(/*gzip=*/true); }

TEST(ReadTableBlockTest, AClassBeyondTheTablesIsDataLoss) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,x\n0,1\n1,2\n");
  const proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"train.csv"});
  StatusOr<proto::TableData> table = Describe(data);
  ASSERT_OK(table.status());
  WriteText(dir.File("train.csv"), "label,x\n0,1\n2,2\n");
  std::vector<float> x;
  std::vector<float> labels;
  const Status status = ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), dir.File("train.csv") + ":3: class 2, beyond the job's 2");
}

// ---------------------------------------------------------------- ValidateTableData

TEST(ValidateTableDataTest, RefusesWhatDoesNotFitTheSpecOrTheCounts) {
  TempDir dir;
  WriteText(dir.File("a.csv"), "label,x,y\n0,1,2\n1,2,3\n");
  WriteText(dir.File("b.csv"), "label,x,y\n1,1,2\n");
  const proto::DataSpec data = CsvData(dir.path(), {"a.csv", "b.csv"}, {"b.csv"});
  StatusOr<proto::TableData> described = Describe(data);
  ASSERT_OK(described.status());
  const proto::TableData good = *described;
  ASSERT_OK(ValidateTableData(data, good, 3, 1));

  const auto expect_loss = [&](const proto::TableData& table, int64_t train, int64_t test, const std::string& message) {
    const Status status = ValidateTableData(data, table, train, test);
    EXPECT_EQ(status.code(), StatusCode::kDataLoss) << message;
    EXPECT_EQ(status.message(), message);
  };
  expect_loss(good, 4, 1, "table data: the training blocks hold 3 records, the job 4");
  expect_loss(good, 2, 1, "table data: the training blocks hold 3 records, the job 2");
  expect_loss(good, 3, 0, "table data: the test blocks hold 1 records, the job 0");

  proto::TableData t = good;
  t.mutable_train_blocks(1)->set_file(2);  // two training files
  expect_loss(t, 3, 1, "table data: a bad training block");
  t = good;
  t.mutable_train_blocks(0)->set_file(-1);
  expect_loss(t, 3, 1, "table data: a bad training block");
  t = good;
  t.mutable_test_blocks(0)->set_file(1);  // one test file
  expect_loss(t, 3, 1, "table data: a bad test block");
  t = good;
  t.add_train_blocks()->set_records(0);  // the sum still fits: the block itself is refused
  expect_loss(t, 3, 1, "table data: a bad training block");
  t = good;
  t.mutable_train_blocks(0)->set_records(kTableBlockRecords + 1);
  expect_loss(t, kTableBlockRecords + 2, 1, "table data: a bad training block");
  t = good;
  t.mutable_train_blocks(0)->set_first_record(-1);
  expect_loss(t, 3, 1, "table data: a bad training block");

  t = good;
  t.add_shift(0);
  expect_loss(t, 3, 1, "table data: 2 features with 3 shifts and 2 scales");
  t = good;
  t.mutable_scale()->RemoveLast();
  expect_loss(t, 3, 1, "table data: 2 features with 2 shifts and 1 scales");
  t = good;
  t.clear_feature_columns();
  t.clear_shift();
  t.clear_scale();
  expect_loss(t, 3, 1, "table data: 0 features with 0 shifts and 0 scales");
  t = good;
  t.set_scale(1, std::numeric_limits<float>::quiet_NaN());
  expect_loss(t, 3, 1, "table data: feature 1 has a bad column or scaling");
  t = good;
  t.set_shift(0, std::numeric_limits<float>::infinity());
  expect_loss(t, 3, 1, "table data: feature 0 has a bad column or scaling");
  t = good;
  t.set_feature_columns(1, -2);
  expect_loss(t, 3, 1, "table data: feature 1 has a bad column or scaling");

  t = good;
  t.set_num_classes(0);
  expect_loss(t, 3, 1, "table data: 0 classes, label column 0");
  t.set_num_classes(257);
  expect_loss(t, 3, 1, "table data: 257 classes, label column 0");
  t.set_num_classes(256);
  EXPECT_OK(ValidateTableData(data, t, 3, 1));
  t.set_label_column(-1);
  expect_loss(t, 3, 1, "table data: 256 classes, label column -1");
}

// ---------------------------------------------------------------- the job spec

proto::JobSpec CsvJob() {
  StatusOr<proto::JobSpec> spec = ParseJobSpec(
      "model { layer { linear { out_features: 3 } } }\n"
      "data { format: CSV train_files: \"train.csv\" test_files: \"test.csv\" table { label_column: \"y\" } }\n",
      "csv.pbtxt");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : proto::JobSpec();
}

void ExpectInvalid(const proto::JobSpec& spec, const std::string& message) {
  const Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << message;
  EXPECT_EQ(status.message(), message);
}

TEST(TableSpecTest, ValidateJobSpecChecksTheTableFields) {
  proto::JobSpec spec = CsvJob();
  ASSERT_OK(ValidateJobSpec(spec));
  spec.mutable_data()->set_format(proto::DataSpec::TSV);
  ASSERT_OK(ValidateJobSpec(spec));

  spec = CsvJob();
  spec.mutable_data()->clear_train_files();
  ExpectInvalid(spec, "data.format CSV needs data.train_files and data.test_files (one or more each)");
  spec = CsvJob();
  spec.mutable_data()->clear_test_files();
  spec.mutable_data()->set_format(proto::DataSpec::TSV);
  ExpectInvalid(spec, "data.format TSV needs data.train_files and data.test_files (one or more each)");

  spec = CsvJob();
  spec.mutable_data()->mutable_table()->clear_label_column();
  ExpectInvalid(spec, "data.format CSV needs data.table.label_column: the column of each record's class");

  for (const int classes : {-1, 257, 1000}) {
    spec = CsvJob();
    spec.mutable_data()->mutable_table()->set_num_classes(classes);
    ExpectInvalid(spec, "data.table.num_classes must be in [0, 256], got " + std::to_string(classes));
  }
  for (const int classes : {0, 1, 256}) {
    spec = CsvJob();
    spec.mutable_data()->mutable_table()->set_num_classes(classes);
    EXPECT_OK(ValidateJobSpec(spec));
  }

  spec = CsvJob();
  spec.mutable_data()->mutable_table()->set_fill_value(std::numeric_limits<float>::quiet_NaN());
  ExpectInvalid(spec, "data.table.fill_value must be a finite number");
  spec = CsvJob();
  spec.mutable_data()->mutable_table()->add_feature_columns("a");
  spec.mutable_data()->mutable_table()->add_feature_columns("");
  ExpectInvalid(spec, "data.table.feature_columns must not hold an empty name");

  spec = CsvJob();
  proto::ModelSpec* model = spec.mutable_model();
  model->clear_layer();
  model->add_layer()->mutable_embedding()->set_num_embeddings(10);
  model->mutable_layer(0)->mutable_embedding()->set_embedding_dim(4);
  model->add_layer()->mutable_flatten();
  model->add_layer()->mutable_linear()->set_out_features(3);
  ExpectInvalid(spec, "an Embedding first layer takes ids, and data.format CSV gives scaled numbers: use IDX data for "
                      "ids, or a table's data.table.categorical_columns with a column_embedding first layer");
  spec.mutable_data()->set_format(proto::DataSpec::IDX);
  spec.mutable_data()->clear_train_files();
  spec.mutable_data()->clear_test_files();
  spec.mutable_data()->mutable_table()->clear_label_column();
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << "the same model on IDX data: " << ValidateJobSpec(spec).ToString();
}

TEST(TableSpecTest, IdxDataTakesNoTableColumns) {
  const std::string message =
      "data.train_files, data.test_files and data.table's columns are for data.format CSV or TSV; this spec's format "
      "is IDX (set data.format)";
  proto::JobSpec spec = CsvJob();
  spec.mutable_data()->set_format(proto::DataSpec::IDX);
  ExpectInvalid(spec, message);
  spec.mutable_data()->clear_train_files();
  ExpectInvalid(spec, message);  // test_files and the label column are left
  spec.mutable_data()->clear_test_files();
  ExpectInvalid(spec, message);  // the label column
  spec.mutable_data()->mutable_table()->clear_label_column();
  EXPECT_OK(ValidateJobSpec(spec));
  spec.mutable_data()->add_train_files("train.csv");
  ExpectInvalid(spec, message);
  spec.mutable_data()->clear_train_files();
  spec.mutable_data()->mutable_table()->add_feature_columns("a");
  ExpectInvalid(spec, message);
  // A table block of defaults (as a spec written back holds) is fine.
  spec.mutable_data()->mutable_table()->clear_feature_columns();
  spec.mutable_data()->mutable_table()->set_num_classes(3);
  spec.mutable_data()->mutable_table()->set_scaling(proto::TableSpec::NONE);
  EXPECT_OK(ValidateJobSpec(spec));
}

TEST(TableSpecTest, SpecsWrittenBackStillValidate) {
  for (const bool csv : {true, false}) {
    proto::JobSpec spec = CsvJob();
    if (!csv) {
      spec.mutable_data()->set_format(proto::DataSpec::IDX);
      spec.mutable_data()->clear_train_files();
      spec.mutable_data()->clear_test_files();
      spec.mutable_data()->clear_table();
    }
    ASSERT_OK(ValidateJobSpec(spec));
    StatusOr<proto::JobSpec> again = ParseJobSpec(JobSpecToText(spec), "written.pbtxt");
    ASSERT_OK(again.status());
    EXPECT_TRUE(ValidateJobSpec(*again).ok()) << ValidateJobSpec(*again).ToString() << "\n" << JobSpecToText(spec);
  }
}

// ---------------------------------------------------------------- TableExampleReader

// Six training files of 2 features (one gzip'd): blocks of 4096, 904, 7, 300,
// 1, 4096, 104 and 64 records; and a test file of 5000.
struct ReaderFixture {
  TempDir dir;
  proto::DataSpec data;
  proto::TableData table;
  proto::ClusterMap map;
  int64_t train = 0, test = 0;

  void SetUp() {
    TableOptions options;
    options.features = 2;
    options.gaps = true;
    const std::vector<int64_t> sizes = {5000, 7, 300, 1, 4200, 64};
    std::vector<std::string> names;
    for (size_t i = 0; i < sizes.size(); ++i) {
      options.seed = static_cast<int>(i);
      const TableFile file = MakeTable(sizes[i], options);
      names.push_back("part" + std::to_string(i) + (i == 4 ? ".csv.gz" : ".csv"));
      (i == 4 ? WriteGzText : WriteText)(dir.File(names.back()), file.text);
      train += sizes[i];
    }
    options.seed = 9;
    WriteText(dir.File("test.csv"), MakeTable(5000, options).text);
    test = 5000;
    data = CsvData(dir.path(), names, {"test.csv"});
    StatusOr<proto::TableData> described = DescribeTable(data);
    ASSERT_OK(described.status());
    table = *described;
    ASSERT_EQ(table.train_blocks_size(), 8);
    map.set_train_examples(train);
    map.set_test_examples(test);
    *map.mutable_table_data() = table;
  }

  // Every record of a split in file order, read block by block.
  void AllRows(bool test_split, std::vector<float>* x, std::vector<float>* labels) {
    for (const proto::TableBlock& block : test_split ? table.test_blocks() : table.train_blocks()) {
      std::vector<float> bx;
      std::vector<float> bl;
      ASSERT_OK(ReadTableBlock(data, test_split ? Split::kTest : Split::kTraining, table, block, &bx, &bl));
      x->insert(x->end(), bx.begin(), bx.end());
      labels->insert(labels->end(), bl.begin(), bl.end());
    }
  }

  std::vector<int64_t> BlockSizes() const {
    std::vector<int64_t> sizes;
    for (const proto::TableBlock& b : table.train_blocks()) sizes.push_back(b.records());
    return sizes;
  }
};

// The block (index in file order) holding `record`.
int64_t BlockOfRecord(const std::vector<int64_t>& sizes, int64_t record) {
  for (size_t b = 0; b < sizes.size(); ++b) {
    if (record < sizes[b]) return static_cast<int64_t>(b);
    record -= sizes[b];
  }
  return -1;
}

// Reads positions [shard.begin, shard.end) of `order` through `prefetcher` in
// batches of `batch`, checking each against `want` at `reference`'s records.
void ExpectShard(BatchPrefetcher& prefetcher, const ExampleOrder& order, const BlockedOrder* reference, Shard shard,
                 int64_t batch, const std::vector<float>& want_x, const std::vector<float>& want_labels) {
  constexpr int64_t kFeatures = 2;
  for (int64_t p = shard.begin; p < shard.end; p += batch) {
    const int64_t count = std::min(batch, shard.end - p);
    std::vector<float> x;
    std::vector<float> labels;
    ASSERT_OK(prefetcher.Read(order, p, count, shard.end, &x, &labels));
    ASSERT_EQ(x.size(), static_cast<size_t>(count * kFeatures));
    ASSERT_EQ(labels.size(), static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      const int64_t record = reference != nullptr ? reference->RecordAt(p + i) : p + i;
      ASSERT_EQ(labels[i], want_labels[record]) << "position " << p + i;
      for (int64_t f = 0; f < kFeatures; ++f) {
        ASSERT_EQ(x[i * kFeatures + f], want_x[record * kFeatures + f]) << "position " << p + i << " feature " << f;
      }
    }
  }
}

TEST(TableExampleReaderTest, OpenExampleReaderDescribesTheSplit) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->count(), fixture.train);
  EXPECT_EQ((*reader)->example_shape(), (Shape{2}));
  EXPECT_EQ((*reader)->num_classes(), 5);
  auto* table_reader = dynamic_cast<TableExampleReader*>(reader->get());
  ASSERT_NE(table_reader, nullptr);
  EXPECT_EQ(table_reader->BlockSizes(), (std::vector<int64_t>{4096, 904, 7, 300, 1, 4096, 104, 64}));
  EXPECT_EQ(table_reader->blocks_read(), 0);
  StatusOr<std::unique_ptr<ExampleReader>> test = OpenExampleReader(fixture.data, fixture.map, Split::kTest);
  ASSERT_OK(test.status());
  EXPECT_EQ((*test)->count(), 5000);

  // The map's table data is checked against its counts.
  proto::ClusterMap bad = fixture.map;
  bad.set_train_examples(fixture.train - 1);
  reader = OpenExampleReader(fixture.data, bad, Split::kTraining);
  EXPECT_EQ(reader.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(reader.status().message(), "table data: the training blocks hold 9572 records, the job 9571");
}

TEST(TableExampleReaderTest, TrainingOrderIsTheBlockedOrderOfTheTablesBlocks) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(reader.status());
  const ExampleOrder order = TrainingOrder(/*seed=*/7, /*epoch=*/2, **reader);
  const BlockedOrder reference(7, 2, fixture.BlockSizes());
  ASSERT_EQ(reference.size(), fixture.train);
  int64_t same_as_epoch_order = 0;
  const std::vector<int64_t> epoch_order = EpochOrder(7, 2, fixture.train);
  for (int64_t p = 0; p < fixture.train; ++p) {
    ASSERT_EQ(order.At(p), reference.RecordAt(p)) << "position " << p;
    same_as_epoch_order += order.At(p) == epoch_order[p];
  }
  EXPECT_LT(same_as_epoch_order, 100) << "a table's order is blocked, not EpochOrder";
}

TEST(TableExampleReaderTest, ARanksShardsThroughThePrefetcherAreTheBlocksRows) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  std::vector<float> want_x;
  std::vector<float> want_labels;
  ASSERT_NO_FATAL_FAILURE(fixture.AllRows(false, &want_x, &want_labels));
  ASSERT_EQ(want_labels.size(), static_cast<size_t>(fixture.train));
  const std::vector<int64_t> sizes = fixture.BlockSizes();

  for (const int epoch : {0, 1}) {
    SCOPED_TRACE("epoch " + std::to_string(epoch));
    StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
    ASSERT_OK(reader.status());
    auto* table_reader = dynamic_cast<TableExampleReader*>(reader->get());
    ASSERT_NE(table_reader, nullptr);
    const ExampleOrder order = TrainingOrder(/*seed=*/3, epoch, **reader);
    const BlockedOrder reference(3, epoch, sizes);
    BatchPrefetcher prefetcher(reader->get());
    // Rank 1 of 3 workers, 9 shards: shards 1, 4 and 7.
    const std::vector<Shard> shards = CutShards(fixture.train, 9);
    const std::vector<int> mine = ShardsOfRank(9, 3, 1);
    int64_t runs = 0;  // block runs inside the shards: at most one read each
    std::set<int64_t> touched;
    for (int s : mine) {
      ASSERT_NO_FATAL_FAILURE(ExpectShard(prefetcher, order, &reference, shards[s], 50, want_x, want_labels));
      for (int64_t p = shards[s].begin; p < shards[s].end; ++p) {
        const int64_t block = BlockOfRecord(sizes, reference.RecordAt(p));
        if (p == shards[s].begin || block != BlockOfRecord(sizes, reference.RecordAt(p - 1))) ++runs;
        touched.insert(block);
      }
    }
    EXPECT_EQ(prefetcher.misses(), 3) << "only each shard's first batch";
    EXPECT_GE(table_reader->blocks_read(), static_cast<int64_t>(touched.size()));
    EXPECT_LE(table_reader->blocks_read(), runs);
  }
}

TEST(TableExampleReaderTest, ASequentialPassReadsEachBlockOnce) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  std::vector<float> want_x;
  std::vector<float> want_labels;
  ASSERT_NO_FATAL_FAILURE(fixture.AllRows(false, &want_x, &want_labels));
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(reader.status());
  auto* table_reader = dynamic_cast<TableExampleReader*>(reader->get());
  ASSERT_NE(table_reader, nullptr);
  const ExampleOrder order = TrainingOrder(/*seed=*/11, /*epoch=*/5, **reader);
  const BlockedOrder reference(11, 5, fixture.BlockSizes());
  BatchPrefetcher prefetcher(reader->get());
  // Every shard in turn, in batches of 64 (batches span block ends).
  for (const Shard& shard : CutShards(fixture.train, 4)) {
    ASSERT_NO_FATAL_FAILURE(ExpectShard(prefetcher, order, &reference, shard, 64, want_x, want_labels));
  }
  EXPECT_EQ(table_reader->blocks_read(), 8);
  EXPECT_EQ(prefetcher.misses(), 4);

  // The test split, in file order (ExampleOrder's default), block by block too.
  std::vector<float> test_x;
  std::vector<float> test_labels;
  ASSERT_NO_FATAL_FAILURE(fixture.AllRows(true, &test_x, &test_labels));
  StatusOr<std::unique_ptr<ExampleReader>> test = OpenExampleReader(fixture.data, fixture.map, Split::kTest);
  ASSERT_OK(test.status());
  BatchPrefetcher test_prefetcher(test->get());
  for (const Shard& shard : CutShards(fixture.test, 3)) {
    ASSERT_NO_FATAL_FAILURE(ExpectShard(test_prefetcher, ExampleOrder(), nullptr, shard, 100, test_x, test_labels));
  }
  EXPECT_EQ(dynamic_cast<TableExampleReader*>(test->get())->blocks_read(), 2);
}

TEST(TableExampleReaderTest, KeepsTheLastTwoBlocksRead) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  std::vector<float> want_x;
  std::vector<float> want_labels;
  ASSERT_NO_FATAL_FAILURE(fixture.AllRows(false, &want_x, &want_labels));
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(reader.status());
  auto* table_reader = dynamic_cast<TableExampleReader*>(reader->get());
  ASSERT_NE(table_reader, nullptr);
  // Block 0 is records 0..4095, block 1 4096..4999, block 2 5000..5006.
  const auto read = [&](const std::vector<int64_t>& examples) {
    std::vector<float> x;
    std::vector<float> labels;
    ASSERT_OK((*reader)->Read(examples, &x, &labels));
    ASSERT_EQ(labels.size(), examples.size());
    for (size_t i = 0; i < examples.size(); ++i) {
      EXPECT_EQ(labels[i], want_labels[examples[i]]) << "example " << examples[i];
      EXPECT_EQ(x[2 * i], want_x[2 * examples[i]]) << "example " << examples[i];
      EXPECT_EQ(x[2 * i + 1], want_x[2 * examples[i] + 1]) << "example " << examples[i];
    }
  };
  read({0, 4096, 1, 4097, 4095, 4999});  // back and forth between two blocks: each read once
  EXPECT_EQ(table_reader->blocks_read(), 2);
  read({5000, 4098});  // block 2 replaces the older of the two (block 0); block 1 stays
  EXPECT_EQ(table_reader->blocks_read(), 3);
  read({5006, 4500});
  EXPECT_EQ(table_reader->blocks_read(), 3);
  read({7});  // block 0 again, in place of block 1
  EXPECT_EQ(table_reader->blocks_read(), 4);
  read({5001, 8});
  EXPECT_EQ(table_reader->blocks_read(), 4);
}

TEST(TableExampleReaderTest, AFileThatShrankIsTheReadsError) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  WriteText(fixture.dir.File("part2.csv"), "label,f0,f1\n1,2,3\n");  // 300 records planned
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(reader.status());
  std::vector<float> x;
  std::vector<float> labels;
  // Records 5007... are part2's (after 5000 + 7).
  Status status = (*reader)->Read({0, 5007, 1}, &x, &labels);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), fixture.dir.File("part2.csv") + " ends before record 300, which it held when the job "
                                                              "was planned");
  // The reader goes on with the blocks that are still there.
  ASSERT_OK((*reader)->Read({0, 5006, 9571}, &x, &labels));
  EXPECT_EQ(labels.size(), 3u);
}


// A validation_fraction holds out the training files' last records: the
// training reader ends where the validation reader begins, and the
// training epochs' order never reaches a held-out record.
TEST(TableExampleReaderTest, AValidationFractionHoldsOutTheTrainingFilesLastRecords) {
  ReaderFixture fixture;
  ASSERT_NO_FATAL_FAILURE(fixture.SetUp());
  std::vector<float> all_x;
  std::vector<float> all_labels;
  ASSERT_NO_FATAL_FAILURE(fixture.AllRows(false, &all_x, &all_labels));
  fixture.data.set_validation_fraction(0.1f);
  const int64_t held_out = 957;  // round(0.1 * 9572)
  fixture.map.set_train_examples(fixture.train - held_out);
  fixture.map.set_validation_examples(held_out);

  StatusOr<std::unique_ptr<ExampleReader>> training = OpenExampleReader(fixture.data, fixture.map, Split::kTraining);
  ASSERT_OK(training.status());
  EXPECT_EQ((*training)->count(), fixture.train - held_out);
  auto* table_reader = dynamic_cast<TableExampleReader*>(training->get());
  ASSERT_NE(table_reader, nullptr);
  // The last training block is cut where the held-out records begin (4096 + 104 + 64 - 957 = 3307 left of it).
  EXPECT_EQ(table_reader->BlockSizes(), (std::vector<int64_t>{4096, 904, 7, 300, 1, 3307}));
  const ExampleOrder order = TrainingOrder(/*seed=*/7, /*epoch=*/1, **training);
  std::vector<bool> seen(fixture.train - held_out, false);
  for (int64_t p = 0; p < fixture.train - held_out; ++p) {
    const int64_t record = order.At(p);
    ASSERT_TRUE(record >= 0 && record < fixture.train - held_out) << "position " << p << " is record " << record;
    ASSERT_FALSE(seen[record]);
    seen[record] = true;
  }

  StatusOr<std::unique_ptr<ExampleReader>> validation =
      OpenExampleReader(fixture.data, fixture.map, Split::kValidation);
  ASSERT_OK(validation.status());
  ASSERT_EQ((*validation)->count(), held_out);
  std::vector<int64_t> examples(held_out);
  for (int64_t i = 0; i < held_out; ++i) examples[i] = i;
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK((*validation)->Read(examples, &x, &labels));
  const int64_t first = fixture.train - held_out;
  EXPECT_EQ(labels, std::vector<float>(all_labels.begin() + first, all_labels.end()));
  EXPECT_EQ(x, std::vector<float>(all_x.begin() + 2 * first, all_x.end()));

  // The map's counts are checked against the training blocks, held-out records included.
  proto::ClusterMap bad = fixture.map;
  bad.set_validation_examples(held_out - 1);
  EXPECT_EQ(OpenExampleReader(fixture.data, bad, Split::kValidation).status().code(), StatusCode::kDataLoss);
  // A job without a validation split has no validation reader.
  fixture.data.set_validation_fraction(0);
  EXPECT_EQ(OpenExampleReader(fixture.data, fixture.map, Split::kValidation).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(TableExampleReaderTest, ValidationFilesAreDescribedCheckedAndReadLikeTheTestFiles) {
  TempDir dir;
  TableOptions options;
  options.features = 2;
  WriteText(dir.File("train.csv"), MakeTable(100, options).text);
  WriteText(dir.File("test.csv"), MakeTable(30, options).text);
  options.seed = 3;
  const TableFile valid = MakeTable(40, options);
  WriteText(dir.File("valid.csv"), valid.text);
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  data.add_validation_files("valid.csv");
  data.set_max_validation_examples(25);
  StatusOr<proto::TableData> table = DescribeTable(data);
  ASSERT_OK(table.status());
  ASSERT_EQ(table->validation_blocks_size(), 1);
  EXPECT_EQ(table->validation_blocks(0).records(), 25) << "max_validation_examples";
  EXPECT_EQ(table->train_blocks(0).records(), 100);

  proto::ClusterMap map;
  map.set_train_examples(100);
  map.set_test_examples(30);
  map.set_validation_examples(25);
  *map.mutable_table_data() = *table;
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(data, map, Split::kValidation);
  ASSERT_OK(reader.status());
  ASSERT_EQ((*reader)->count(), 25);
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK((*reader)->Read({0, 24}, &x, &labels));
  EXPECT_EQ(labels, (std::vector<float>{static_cast<float>(valid.labels[0]), static_cast<float>(valid.labels[24])}));
  const float want = (*valid.values[24][1] - table->shift(1)) * table->scale(1);
  EXPECT_EQ(x[3], want) << "scaled as the training features are";
  EXPECT_EQ(OpenExampleReader(data, map, Split::kTraining).value()->count(), 100) << "all the training records";

  // A validation file must have the training files' columns and classes.
  WriteText(dir.File("valid.csv"), "label,f1,f0\n1,2,3\n");
  EXPECT_EQ(DescribeTable(data).status().message(),
            "the validation files' features (f1, f0) differ from the training files' (f0, f1)");
  WriteText(dir.File("valid.csv"), "label,f0,f1\n7,2,3\n");
  EXPECT_EQ(DescribeTable(data).status().message(),
            "the validation files hold class 7, and the training files only classes below 5 (set "
            "data.table.num_classes)");
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// 10,000 records of "label,x" where every 7th line (from the 3rd) is bad in
// one of four ways; the good ones hold x = their index among the good.
struct TableWithBadRecords {
  std::string text = "label,x\n";
  int64_t good = 0, bad = 0;
  TableWithBadRecords() {
    const char* kBad[] = {"1,2,3\n", "cat,1\n", "1,one\n", "7,1\n"};  // fields, label, number, class >= 5
    for (int line = 0; line < 10000; ++line) {
      if (line % 7 == 2) {
        text += kBad[bad++ % 4];
      } else {
        text += std::to_string(good % 5) + "," + std::to_string(good) + "\n";
        ++good;
      }
    }
  }
};

TEST(TableBadRecordsTest, SkippedRecordsAreCountedNamedAndPassedOverWhenBlocksAreRead) {
  for (bool gzipped : {false, true}) {
    TempDir dir;
    const TableWithBadRecords table;
    const std::string name = gzipped ? "train.csv.gz" : "train.csv";
    if (gzipped) {
      WriteGzText(dir.File(name), table.text);
    } else {
      WriteText(dir.File(name), table.text);
    }
    WriteText(dir.File("test.csv"), "label,x\n0,1\n");
    proto::DataSpec data = CsvData(dir.path(), {name}, {"test.csv"});
    data.mutable_table()->set_num_classes(5);
    data.mutable_table()->set_scaling(proto::TableSpec::NONE);
    EXPECT_FALSE(DescribeTable(data).ok()) << "without skip_bad_records the first bad record stops it";
    data.mutable_table()->set_skip_bad_records(true);
    BadRecords bad;
    StatusOr<proto::TableData> described = DescribeTable(data, &bad);
    ASSERT_OK(described.status());
    EXPECT_EQ(described->train_bad_records(), table.bad);
    EXPECT_EQ(described->test_bad_records(), 0);
    EXPECT_EQ(bad.count, table.bad);
    ASSERT_EQ(bad.first.size(), BadRecords::kNamed);
    const std::string file = dir.File(name);
    EXPECT_EQ(bad.first[0], file + ":4: 3 fields, expected 2 (the header's)");
    EXPECT_EQ(bad.first[1], file + ":11: column 'label': expected a class id, an integer in [0, 256), got \"cat\"");
    EXPECT_EQ(bad.first[2], file + ":18: column \"x\": expected a finite number, got \"one\"");
    EXPECT_EQ(bad.first[3], file + ":25: column 'label': expected a class id below data.table.num_classes 5, got 7");
    // Blocks hold good records only, and reading one passes over the bad ones again.
    int64_t total = 0;
    std::vector<float> x;
    std::vector<float> labels;
    for (const proto::TableBlock& block : described->train_blocks()) {
      ASSERT_OK(ReadTableBlock(data, Split::kTraining, *described, block, &x, &labels));
      ASSERT_EQ(static_cast<int64_t>(x.size()), block.records());
      for (int64_t r = 0; r < block.records(); ++r) {
        ASSERT_EQ(x[r], static_cast<float>(block.first_record() + r)) << "block at record " << block.first_record();
        ASSERT_EQ(labels[r], (block.first_record() + r) % 5);
      }
      total += block.records();
    }
    EXPECT_EQ(total, table.good);
  }
}

// skip_bad_records with a validation split: validation_files count their
// own bad records and their readers pass over them; a validation_fraction
// holds out the training files' last good records.
TEST(TableBadRecordsTest, AValidationSplitPassesOverTheSameBadRecords) {
  TempDir dir;
  const TableWithBadRecords table;
  WriteText(dir.File("train.csv"), table.text);
  WriteText(dir.File("valid.csv"), table.text);
  WriteText(dir.File("test.csv"), "label,x\n0,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  data.mutable_table()->set_num_classes(5);
  data.mutable_table()->set_scaling(proto::TableSpec::NONE);
  data.mutable_table()->set_skip_bad_records(true);
  data.add_validation_files("valid.csv");
  BadRecords bad;
  StatusOr<proto::TableData> described = DescribeTable(data, &bad);
  ASSERT_OK(described.status());
  EXPECT_EQ(described->train_bad_records(), table.bad);
  EXPECT_EQ(described->validation_bad_records(), table.bad);
  EXPECT_EQ(described->test_bad_records(), 0);
  EXPECT_EQ(bad.count, 2 * table.bad);
  proto::ClusterMap map;
  map.set_train_examples(table.good);
  map.set_validation_examples(table.good);
  map.set_test_examples(1);
  *map.mutable_table_data() = *described;
  StatusOr<std::unique_ptr<ExampleReader>> validation = OpenExampleReader(data, map, Split::kValidation);
  ASSERT_OK(validation.status());
  ASSERT_EQ((*validation)->count(), table.good);
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK((*validation)->Read({0, 4999, table.good - 1}, &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{0, 4999, static_cast<float>(table.good - 1)})) << "good records only";

  // A fraction: the last round(0.1 * good) good training records.
  data.clear_validation_files();
  data.set_validation_fraction(0.1f);
  described = DescribeTable(data);
  ASSERT_OK(described.status());
  EXPECT_EQ(described->validation_bad_records(), 0);
  const int64_t held_out = ValidationCount(0.1, table.good);
  map.set_train_examples(table.good - held_out);
  map.set_validation_examples(held_out);
  *map.mutable_table_data() = *described;
  validation = OpenExampleReader(data, map, Split::kValidation);
  ASSERT_OK(validation.status());
  ASSERT_EQ((*validation)->count(), held_out);
  ASSERT_OK((*validation)->Read({0, held_out - 1}, &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{static_cast<float>(table.good - held_out), static_cast<float>(table.good - 1)}));
  StatusOr<std::unique_ptr<ExampleReader>> training = OpenExampleReader(data, map, Split::kTraining);
  ASSERT_OK(training.status());
  EXPECT_EQ((*training)->count(), table.good - held_out);
}

TEST(TableBadRecordsTest, AnUnterminatedQuoteStopsTheScanEvenWhenSkipping) {
  TempDir dir;
  WriteText(dir.File("train.csv"), "label,x\n1,2\n1,\"3\n1,4\n");
  WriteText(dir.File("test.csv"), "label,x\n0,1\n");
  proto::DataSpec data = CsvData(dir.path(), {"train.csv"}, {"test.csv"});
  data.mutable_table()->set_skip_bad_records(true);
  StatusOr<proto::TableData> described = DescribeTable(data);
  ASSERT_FALSE(described.ok());
  EXPECT_NE(described.status().message().find("quote"), std::string::npos) << described.status().message();
}

}  // namespace
}  // namespace tessera
