// Criteo click logs as a job's data (DataSpec format CRITEO): the 64-bit
// ids and numeric features of docs/FORMATS.md, "Criteo click logs", the
// checking pass and block reads of core/table_data.h, the worker's reader
// and prefetcher carrying the ids beside x, and the spec's and scheduler's
// view of such a job.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/criteo_format.h"
#include "core/sparse_id.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "models/model.h"
#include "scheduler/job_shape.h"
#include "scheduler/job_task.h"
#include "tests/test_util.h"
#include "tools/spec_flags.h"
#include "worker/batch_prefetcher.h"
#include "worker/example_reader.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// A line of the layout: label, the 13 integers, the 26 categorical values.
std::string Line(const std::string& label, const std::vector<std::string>& integers,
                 const std::vector<std::string>& categorical) {
  std::string line = label;
  for (int i = 0; i < kCriteoIntegerFields; ++i) {
    line += "\t" + (i < static_cast<int>(integers.size()) ? integers[i] : "");
  }
  for (int c = 0; c < kCriteoCategoricalFields; ++c) {
    line += "\t" + (c < static_cast<int>(categorical.size()) ? categorical[c] : "");
  }
  return line + "\n";
}

// The value `prefix` then the digits of n. (Not "a" + std::to_string(n),
// which GCC 12 warns about wrongly, -Wrestrict.)
std::string Value(const std::string& prefix, int n) { return prefix + std::to_string(n); }

// Line r of a generated file: label r % 2, I1 = r, C1 = "a<r % 7>", C26 = "b<r>" (hex digits).
std::string NumberedLine(int r) {
  std::vector<std::string> categorical(kCriteoCategoricalFields);
  categorical[0] = Value("a", r % 7);
  categorical[25] = Value("b", r);
  return Line(std::to_string(r % 2), {std::to_string(r)}, categorical);
}

proto::JobSpec CriteoSpec(const std::string& dir, const std::string& extra_data = "") {
  StatusOr<proto::JobSpec> spec = ParseJobSpec(R"(name: "criteo"
      data { format: CRITEO dir: ")" + dir + R"(" train_files: "train.tsv" test_files: "test.tsv" )" +
                                                   extra_data + R"( }
      model {
        sparse_table { name: "ids" dim: 4 }
        layer { sparse_embedding { table: "ids" fields: 26 } }
        layer { linear { out_features: 8 } }
        layer { relu {} }
        layer { linear { out_features: 1 } }
      })",
                                               "test");
  EXPECT_OK(spec.status());
  return *spec;
}

TEST(CriteoIdTest, IdsAreFnv1aOverTheFieldNumberThenTheValue) {
  // By hand (FNV-1a 64: xor each byte, multiply by 0x100000001b3): the byte
  // 0x01, then "68fd1e64".
  EXPECT_EQ(CriteoId(1, "68fd1e64"), 0xd7c1500f3305ffa0ULL);
  EXPECT_EQ(CriteoId(2, "68fd1e64"), 0x6dd5ed79e36c127dULL);  // another field, another id
  EXPECT_EQ(CriteoId(26, "a"), 0x088b4307b5372384ULL);
  EXPECT_EQ(CriteoId(7, ""), kNoSparseId);
  EXPECT_EQ(CriteoId(1, "68fd1e64"), CriteoId(1, std::string("68fd1e64")));  // stable: bytes only
}

TEST(CriteoIdTest, NumericFeaturesAreLogOnePlusX) {
  EXPECT_EQ(CriteoNumeric(std::nullopt), 0.0f);
  EXPECT_EQ(CriteoNumeric(0), 0.0f);
  EXPECT_EQ(CriteoNumeric(-3), 0.0f);
  EXPECT_EQ(CriteoNumeric(1), static_cast<float>(std::log(2.0)));
  EXPECT_EQ(CriteoNumeric(1000), 6.908754825592041f);
  EXPECT_EQ(CriteoNumeric(int64_t{1} << 62), static_cast<float>(std::log1p(std::ldexp(1.0, 62))));
}

TEST(CriteoDataTest, ATableOfCriteosColumnsWithIdsBesideTheFloats) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), Line("1", {"0", "", "1000", "-2"}, {"68fd1e64", "", "f"}) + NumberedLine(3));
  WriteText(dir.File("test.tsv"), NumberedLine(4));
  const proto::JobSpec spec = CriteoSpec(dir.path());
  ASSERT_OK(ValidateJobSpec(spec));
  StatusOr<proto::TableData> table = DescribeTable(spec.data(), nullptr, nullptr, proto::TableLabels::BINARY);
  ASSERT_OK(table.status());
  EXPECT_EQ(TableExampleValues(*table), 13 + 26);
  EXPECT_EQ(TableIdsPerExample(spec.data()), 26);
  ASSERT_EQ(table->train_blocks_size(), 1);
  std::vector<float> x, labels;
  std::vector<uint64_t> ids;
  ASSERT_OK(ReadTableBlock(spec.data(), Split::kTraining, *table, table->train_blocks(0), &x, &labels, &ids));
  ASSERT_EQ(x.size(), 2u * 39);
  ASSERT_EQ(ids.size(), 2u * 26);
  EXPECT_EQ(labels, std::vector<float>({1, 1}));
  EXPECT_EQ(x[0], 0.0f);  // log(1 + 0) is 0 anyway
  EXPECT_EQ(x[1], 0.0f);  // missing
  EXPECT_EQ(x[2], CriteoNumeric(1000));
  EXPECT_EQ(x[3], 0.0f);  // x <= 0
  EXPECT_EQ(x[39], CriteoNumeric(3));
  for (int c = 0; c < 26; ++c) EXPECT_EQ(x[13 + c], -1.0f) << c;  // placeholders
  EXPECT_EQ(ids[0], CriteoId(1, "68fd1e64"));
  EXPECT_EQ(ids[1], kNoSparseId);
  EXPECT_EQ(ids[2], CriteoId(3, "f"));
  EXPECT_EQ(ids[26 + 0], CriteoId(1, "a3"));
  EXPECT_EQ(ids[26 + 25], CriteoId(26, "b3"));
  // CSV and TSV tables keep their ids in x.
  EXPECT_EQ(TableIdsPerExample(proto::DataSpec()), 0);
}

// Blocks of 4096 records: a read of any examples, across blocks, through the
// worker's reader and prefetcher, gives exactly those records and their ids.
TEST(CriteoDataTest, ExactBlockReadsThroughTheReaderAndThePrefetcher) {
  ScopedTestDir dir;
  const int records = 4096 + 300;
  std::string text;
  for (int r = 0; r < records; ++r) text += NumberedLine(r);
  WriteGzText(dir.File("train.tsv"), text);  // gzip'd, though named .tsv: read from its start
  WriteText(dir.File("test.tsv"), NumberedLine(0));
  const proto::JobSpec spec = CriteoSpec(dir.path());
  proto::ClusterMap map;
  StatusOr<proto::TableData> table = DescribeTable(spec.data(), nullptr, nullptr, proto::TableLabels::BINARY);
  ASSERT_OK(table.status());
  ASSERT_EQ(table->train_blocks_size(), 2);
  *map.mutable_table_data() = *table;
  map.set_train_examples(records);
  map.set_test_examples(1);
  StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(spec.data(), map, Split::kTraining);
  ASSERT_OK(reader.status());
  EXPECT_EQ((*reader)->ids_per_example(), 26);
  const std::vector<int64_t> examples = {4095, 4096, 7, records - 1};
  std::vector<float> x, labels;
  std::vector<uint64_t> ids;
  ASSERT_OK((*reader)->ReadWithIds(examples, &x, &labels, &ids));
  ASSERT_EQ(ids.size(), examples.size() * 26);
  for (size_t i = 0; i < examples.size(); ++i) {
    const int r = static_cast<int>(examples[i]);
    EXPECT_EQ(labels[i], static_cast<float>(r % 2)) << r;
    EXPECT_EQ(x[i * 39], CriteoNumeric(r)) << r;
    EXPECT_EQ(ids[i * 26], CriteoId(1, Value("a", r % 7))) << r;
    EXPECT_EQ(ids[i * 26 + 1], kNoSparseId) << r;
    EXPECT_EQ(ids[i * 26 + 25], CriteoId(26, Value("b", r))) << r;
  }
  // The prefetcher: the batch asked for, then the one it guessed, ids and all.
  BatchPrefetcher prefetcher(reader->get());
  const ExampleOrder order;  // position p is example p
  std::vector<float> px, plabels;
  std::vector<uint64_t> pids;
  ASSERT_OK(prefetcher.Read(order, 4090, 10, records, &px, &plabels, &pids));
  ASSERT_OK(prefetcher.Read(order, 4100, 10, records, &px, &plabels, &pids));
  EXPECT_EQ(prefetcher.hits(), 1);
  std::vector<int64_t> expected(10);
  for (int i = 0; i < 10; ++i) expected[i] = 4100 + i;
  ASSERT_OK((*reader)->ReadWithIds(expected, &x, &labels, &ids));
  EXPECT_EQ(px, x);
  EXPECT_EQ(plabels, labels);
  EXPECT_EQ(pids, ids);
}

TEST(CriteoDataTest, AMalformedLineIsOneLineNamingFileLineAndFieldOrIsSkipped) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), NumberedLine(1) + Line("0", {"1", "2", "3.5"}, {}) + NumberedLine(2));
  WriteText(dir.File("test.tsv"), NumberedLine(0));
  const proto::JobSpec strict = CriteoSpec(dir.path());
  EXPECT_EQ(
      DescribeTable(strict.data()).status().message(),
      dir.File("train.tsv") + ":2: column \"I3\": expected an integer (or nothing, for a missing value), got \"3.5\"");
  EXPECT_EQ(CheckSpecRunnable(strict, "spec.pbtxt").code(), StatusCode::kInvalidArgument);
  WriteText(dir.File("train.tsv"), NumberedLine(1) + "1\t2\n");
  EXPECT_THAT(DescribeTable(strict.data()).status().message(),
              HasSubstr(dir.File("train.tsv") + ":2: 2 fields, expected 40"));
  WriteText(dir.File("train.tsv"), NumberedLine(1) + Line("2", {}, {}) + NumberedLine(2));
  const proto::JobSpec skipping = CriteoSpec(dir.path(), "criteo { skip_bad_records: true }");
  BadRecords bad;
  StatusOr<proto::TableData> table = DescribeTable(skipping.data(), &bad);
  ASSERT_OK(table.status());
  EXPECT_EQ(bad.count, 1);
  EXPECT_EQ(bad.first.at(0), dir.File("train.tsv") + ":2: column \"label\": expected 0 or 1, got \"2\"");
  EXPECT_EQ(table->train_blocks(0).records(), 2);
}

// Untrusted bytes: random lines and a file cut short, plain or gzip'd, are
// an error or records, never a crash.
TEST(CriteoDataTest, RandomAndTruncatedFilesAreErrorsNotCrashes) {
  ScopedTestDir dir;
  WriteText(dir.File("test.tsv"), NumberedLine(0));
  std::mt19937 rng(11);
  const std::string alphabet = "01\t\t\t\n-9ax\"\r ";
  for (int round = 0; round < 50; ++round) {
    std::string text;
    const int size = static_cast<int>(rng() % 400);
    for (int i = 0; i < size; ++i) text += alphabet[rng() % alphabet.size()];
    WriteText(dir.File("train.tsv"), text);
    (void)DescribeTable(CriteoSpec(dir.path()).data()).status();
  }
  std::string lines;
  for (int r = 0; r < 50; ++r) lines += NumberedLine(r);
  // The second line cut 20 bytes in: fewer than 40 fields.
  WriteText(dir.File("train.tsv"), lines.substr(0, NumberedLine(0).size() + 20));
  EXPECT_THAT(DescribeTable(CriteoSpec(dir.path()).data()).status().message(),
              HasSubstr(dir.File("train.tsv") + ":2: "));
  WriteGzText(dir.File("train.tsv"), lines);
  const std::string gz = FileText(dir.File("train.tsv"));
  WriteText(dir.File("train.tsv"), gz.substr(0, gz.size() / 2));
  EXPECT_FALSE(DescribeTable(CriteoSpec(dir.path()).data()).ok());
}

TEST(CriteoDataTest, TheSpecNeedsASparseEmbeddingOf26BagsOfOneId) {
  ScopedTestDir dir;
  proto::JobSpec spec = CriteoSpec(dir.path());
  ASSERT_OK(ValidateJobSpec(spec));
  spec.mutable_model()->mutable_layer(0)->mutable_sparse_embedding()->set_fields(13);
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "data.format CRITEO gives 26 bags of one id each: model.layer[0].sparse_embedding needs fields: 26 and "
            "values_per_field: 1, got 13 and 1");
  spec = CriteoSpec(dir.path());
  spec.mutable_model()->mutable_layer()->DeleteSubrange(0, 1);
  EXPECT_THAT(ValidateJobSpec(spec).message(), HasSubstr("data.format CRITEO gives 26 categorical fields as 64-bit "
                                                         "ids: the model's first layer must be a sparse_embedding"));
  spec = CriteoSpec(dir.path());
  spec.mutable_data()->mutable_table()->set_label_column("label");
  EXPECT_THAT(ValidateJobSpec(spec).message(), HasSubstr("this spec's format is CRITEO"));
  spec = CriteoSpec(dir.path());
  spec.mutable_data()->set_format(proto::DataSpec::CSV);
  spec.mutable_data()->mutable_table()->set_label_column("label");
  EXPECT_THAT(ValidateJobSpec(spec).message(),
              HasSubstr("model.layer[0] is a sparse_embedding: it needs data whose examples carry 64-bit ids"));
}

// The scheduler's view: Criteo's 0/1 labels and one output make model.loss
// AUTO a binary task, and the model builds on 13 + 26 values without the
// table among its tensors; the spec is runnable and the job plans.
TEST(CriteoDataTest, ThePlanInfersABinaryTask) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), NumberedLine(1) + NumberedLine(2) + NumberedLine(3));
  WriteText(dir.File("test.tsv"), NumberedLine(4));
  const proto::JobSpec spec = CriteoSpec(dir.path());
  DataLayout layout;
  StatusOr<DataAndTask> shape = ShapeOfJobData(spec, &layout);
  ASSERT_OK(shape.status());
  EXPECT_EQ(shape->task.loss, proto::SIGMOID_BINARY_CROSS_ENTROPY);
  EXPECT_THAT(shape->task.description, HasSubstr("binary classification (inferred from the label column 'label'"));
  EXPECT_EQ(shape->data.train_examples, 3);
  EXPECT_EQ(shape->data.test_examples, 1);
  EXPECT_EQ(shape->data.example_shape, Shape({13 + 26}));
  StatusOr<std::unique_ptr<Model>> model =
      Model::Create(WithTask(spec, shape->task).model(), shape->data.example_shape, shape->data.num_classes);
  ASSERT_OK(model.status());
  EXPECT_EQ((*model)->tensors().front().name, "layer1.linear.weight");
  EXPECT_OK(CheckSpecRunnable(spec, "spec.pbtxt"));
  EXPECT_OK(PlanJob(spec).status());
}

}  // namespace
}  // namespace tessera
