// libsvm data sets (core/libsvm_data, worker/libsvm_example_reader): what
// DescribeLibsvm finds in small hand-written files, each refusal's text
// (FILE:LINE), bad lines passed over, blocks read back from their offsets
// (plain and gzip'd) as padded pairs, a validation_fraction's held-out
// lines, what ValidateLibsvmData and ValidateJobSpec refuse; and a million
// features read without a dense vector.
#include "core/libsvm_data.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/spec.h"
#include "models/model.h"
#include "tests/test_util.h"
#include "worker/libsvm_example_reader.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

proto::DataSpec LibsvmDataSpec(const std::string& dir, const std::vector<std::string>& train,
                               const std::vector<std::string>& test) {
  proto::DataSpec data;
  data.set_format(proto::DataSpec::LIBSVM);
  data.set_dir(dir);
  for (const std::string& name : train) data.add_train_files(name);
  for (const std::string& name : test) data.add_test_files(name);
  return data;
}

constexpr char kTrain[] =
    "1 3:0.5 7:2\n"
    "# a comment line\n"
    "0 1:1\n"
    "2 qid:4 2:-1 5:0.25 9:3  # trailing comment\n"
    "1\n";
constexpr char kTest[] = "2 9:1\n0 1:1 2:2\n";

TEST(LibsvmDataTest, DescribeFindsFeaturesPairsAndClasses) {
  ScopedTestDir dir;
  WriteText(dir.File("train.svm"), kTrain);
  WriteGzText(dir.File("test.svm.gz"), kTest);
  const proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm.gz"});
  auto libsvm = DescribeLibsvm(data);
  ASSERT_OK(libsvm.status());
  EXPECT_EQ(libsvm->num_features(), 9) << "1-based: index 9 is feature 8";
  EXPECT_EQ(libsvm->max_nonzeros(), 3);
  EXPECT_EQ(libsvm->num_classes(), 3);
  ASSERT_EQ(libsvm->train_blocks_size(), 1);
  EXPECT_EQ(libsvm->train_blocks(0).records(), 4);
  ASSERT_EQ(libsvm->test_blocks_size(), 1);
  EXPECT_EQ(libsvm->test_blocks(0).records(), 2);
  EXPECT_EQ(LibsvmExampleShape(*libsvm), (std::vector<int64_t>{3, 2}));

  LibsvmBlock block;
  ASSERT_OK(ReadLibsvmBlock(data, Split::kTraining, *libsvm, libsvm->train_blocks(0), &block));
  ASSERT_EQ(block.records(), 4);
  EXPECT_EQ(block.labels, (std::vector<uint8_t>{1, 0, 2, 1}));
  std::vector<float> example(6);
  block.WriteExample(0, 3, example.data());
  EXPECT_EQ(example, (std::vector<float>{2, 0.5f, 6, 2, -1, 0}));
  block.WriteExample(2, 3, example.data());
  EXPECT_EQ(example, (std::vector<float>{1, -1, 4, 0.25f, 8, 3}));
  block.WriteExample(3, 3, example.data());
  EXPECT_EQ(example, (std::vector<float>{-1, 0, -1, 0, -1, 0})) << "a line without features is all padding";
  ASSERT_OK(ReadLibsvmBlock(data, Split::kTest, *libsvm, libsvm->test_blocks(0), &block));
  EXPECT_EQ(block.labels, (std::vector<uint8_t>{2, 0}));
}

TEST(LibsvmDataTest, SettingsOfTheSpecApply) {
  ScopedTestDir dir;
  WriteText(dir.File("train.svm"), "-1 0:1 4:2\n+1 2:1\n");
  WriteText(dir.File("test.svm"), "1 1:1\n");
  proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm"});
  EXPECT_EQ(DescribeLibsvm(data).status().message(),
            dir.File("train.svm") + ":1: feature index 0: expected at least 1 (data.libsvm.index_base 1, libsvm's "
                                    "own; set it to 0 for 0-based files)");
  data.mutable_libsvm()->set_index_base(0);
  EXPECT_THAT(DescribeLibsvm(data).status().message(),
              HasSubstr("train.svm:1: label -1.000000: expected a class id, an integer in [0, 256) (a binary file "
                        "labelled -1/+1: set data.libsvm.labels SIGNED_BINARY)"));
  data.mutable_libsvm()->set_labels(proto::LibsvmSpec::SIGNED_BINARY);
  auto libsvm = DescribeLibsvm(data);
  ASSERT_OK(libsvm.status());
  EXPECT_EQ(libsvm->num_features(), 5) << "0-based: index 4 is feature 4";
  EXPECT_EQ(libsvm->num_classes(), 2);
  data.mutable_libsvm()->set_num_features(4);
  EXPECT_EQ(DescribeLibsvm(data).status().message(),
            dir.File("train.svm") + ":1: feature index 4: expected below 4 (data.libsvm.num_features 4)");
  data.mutable_libsvm()->set_num_features(1000000);
  data.mutable_libsvm()->set_max_nonzeros(1);
  EXPECT_EQ(DescribeLibsvm(data).status().message(),
            dir.File("train.svm") + ":1: 2 features: expected at most 1 (data.libsvm.max_nonzeros)");
  data.mutable_libsvm()->set_skip_bad_records(true);
  BadRecords bad;
  libsvm = DescribeLibsvm(data, &bad);
  ASSERT_OK(libsvm.status());
  EXPECT_EQ(bad.count, 1);
  EXPECT_EQ(libsvm->train_bad_records(), 1);
  EXPECT_EQ(libsvm->num_features(), 1000000);
  EXPECT_EQ(libsvm->max_nonzeros(), 1);
  EXPECT_EQ(libsvm->train_blocks(0).records(), 1);
  // The worker passes over the same line.
  LibsvmBlock block;
  ASSERT_OK(ReadLibsvmBlock(data, Split::kTraining, *libsvm, libsvm->train_blocks(0), &block));
  EXPECT_EQ(block.labels, (std::vector<uint8_t>{1}));
  EXPECT_EQ(block.pairs, (std::vector<float>{2, 1}));
}

TEST(LibsvmDataTest, ATestClassBeyondTheTrainingOnesIsRefused) {
  ScopedTestDir dir;
  WriteText(dir.File("train.svm"), "0 1:1\n1 2:1\n");
  WriteText(dir.File("test.svm"), "3 1:1\n");
  const proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm"});
  EXPECT_EQ(DescribeLibsvm(data).status().message(),
            "the test files hold class 3, and the training files only classes below 2 (set data.libsvm.num_classes)");
}

// validation_files are scanned and read as the test files are, their
// classes bounded by the training ones.
TEST(LibsvmDataTest, ValidationFilesAreDescribedAndReadLikeTheTestFiles) {
  ScopedTestDir dir;
  WriteText(dir.File("train.svm"), "0 1:1\n1 2:1\n");
  WriteText(dir.File("test.svm"), "1 1:1\n");
  WriteText(dir.File("valid.svm"), "1 3:0.5\n0 1:2 2:4\n");
  proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm"});
  data.add_validation_files("valid.svm");
  auto libsvm = DescribeLibsvm(data);
  ASSERT_OK(libsvm.status());
  EXPECT_EQ(libsvm->num_features(), 3) << "every split's features count";
  EXPECT_EQ(libsvm->max_nonzeros(), 2);
  ASSERT_EQ(libsvm->validation_blocks_size(), 1);
  proto::ClusterMap map;
  *map.mutable_libsvm_data() = *libsvm;
  map.set_train_examples(2);
  map.set_validation_examples(2);
  map.set_test_examples(1);
  auto validation = OpenLibsvmReader(data, map, Split::kValidation);
  ASSERT_OK(validation.status());
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK((*validation)->Read({1, 0}, &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{0, 2, 1, 4, 2, 0.5f, -1, 0}));
  EXPECT_EQ(labels, (std::vector<float>{0, 1}));
  WriteText(dir.File("valid.svm"), "2 3:0.5\n");
  EXPECT_EQ(DescribeLibsvm(data).status().message(),
            "the validation files hold class 2, and the training files only classes below 2 (set "
            "data.libsvm.num_classes)");
}

// Many lines: blocks of at most kTableBlockRecords, each read back from its
// byte offset; a validation_fraction's lines are the training files' last.
TEST(LibsvmDataTest, BlocksReadBackFromTheirOffsetsAndValidationIsTheLastLines) {
  ScopedTestDir dir;
  const int lines = 10000;
  std::string text;
  for (int i = 0; i < lines; ++i) text += std::to_string(i % 3) + " " + std::to_string(1 + i % 50) + ":" + std::to_string(i) + "\n";
  WriteText(dir.File("train.svm"), text);
  WriteText(dir.File("test.svm"), "0 1:1\n");
  proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm"});
  data.set_validation_fraction(0.1f);
  auto libsvm = DescribeLibsvm(data);
  ASSERT_OK(libsvm.status());
  ASSERT_EQ(libsvm->train_blocks_size(), 3);
  EXPECT_EQ(libsvm->train_blocks(1).first_record(), kTableBlockRecords);
  EXPECT_GT(libsvm->train_blocks(1).offset(), 0u);
  proto::ClusterMap map;
  *map.mutable_libsvm_data() = *libsvm;
  map.set_train_examples(9000);
  map.set_validation_examples(1000);
  map.set_test_examples(1);
  auto train = OpenLibsvmReader(data, map, Split::kTraining);
  auto validation = OpenLibsvmReader(data, map, Split::kValidation);
  ASSERT_OK(train.status());
  ASSERT_OK(validation.status());
  EXPECT_EQ((*train)->count(), 9000);
  EXPECT_EQ((*validation)->count(), 1000);
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK((*train)->Read({8999, 0, 4096}, &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{8999 % 50, 8999, 0, 0, 4096 % 50, 4096}));
  EXPECT_EQ(labels, (std::vector<float>{8999 % 3, 0, 4096 % 3}));
  ASSERT_OK((*validation)->Read({0, 999}, &x, &labels));
  EXPECT_EQ(x, (std::vector<float>{9000 % 50, 9000, 9999 % 50, 9999}));
  // A map whose blocks do not hold the job's lines is refused.
  map.set_train_examples(8000);
  EXPECT_THAT(OpenLibsvmReader(data, map, Split::kTraining).status().message(),
              HasSubstr("libsvm data: the training blocks hold 10000 lines, the job 9000"));
}

// A million features: an example is still max_nonzeros pairs, the model's
// input 2 * max_nonzeros values, and the reader holds its blocks' pairs only.
TEST(LibsvmDataTest, AMillionFeaturesNeverMakeADenseInput) {
  ScopedTestDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    const int64_t a = 1 + (int64_t{i} * 7919) % 999983, b = 1000000 - i;
    text += std::to_string(i % 2) + " " + std::to_string(std::min(a, b - 1)) + ":1 " + std::to_string(b) + ":0.5\n";
  }
  WriteText(dir.File("train.svm"), text);
  WriteText(dir.File("test.svm"), "1 1000000:1\n");
  const proto::DataSpec data = LibsvmDataSpec(dir.path(), {"train.svm"}, {"test.svm"});
  auto libsvm = DescribeLibsvm(data);
  ASSERT_OK(libsvm.status());
  EXPECT_EQ(libsvm->num_features(), 1000000);
  EXPECT_EQ(libsvm->max_nonzeros(), 2);
  proto::ClusterMap map;
  *map.mutable_libsvm_data() = *libsvm;
  map.set_train_examples(2000);
  map.set_test_examples(1);
  auto opened = OpenLibsvmReader(data, map, Split::kTraining);
  ASSERT_OK(opened.status());
  auto& reader = static_cast<LibsvmExampleReader&>(**opened);
  std::vector<int64_t> batch(64);
  for (int i = 0; i < 64; ++i) batch[i] = i * 31;
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(reader.Read(batch, &x, &labels));
  EXPECT_EQ(x.size(), 64u * 2 * 2) << "a batch is max_nonzeros pairs an example";
  EXPECT_EQ(reader.cached_floats(), 2000 * 2 * 2) << "one compact block of 2000 lines of 2 pairs";
  auto model = Model::Create(ParseModel("layer { sparse_linear { out_features: 4 } } layer { relu {} } "
                                        "layer { linear { out_features: 2 } }"),
                             reader.example_shape(), reader.num_classes(), Device::kCpu, {}, reader.sparse_features());
  ASSERT_OK(model.status());
  EXPECT_EQ((*model)->input_features(), 4);
  ASSERT_OK((*model)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())));
  (*model)->TrainBatch(x.data(), labels.data(), 64);
  uint64_t touched = 0;
  for (const KeyRange& r : (*model)->touched_runs()) touched += r.end - r.begin;
  EXPECT_LE(touched, 64u * 2 * 4) << "at most 2 rows of 4 an example pushed, of 4 million weights";
  EXPECT_GT(touched, 0u);
}

TEST(LibsvmSpecTest, MistakesAreOneLineNamingTheField) {
  auto spec = ParseJobSpec(R"pb(
    name: "svm"
    model { layer { sparse_linear { out_features: 8 } } layer { linear { out_features: 2 } } }
    data { format: LIBSVM train_files: "a.svm" test_files: "b.svm" }
  )pb", "spec");
  ASSERT_OK(spec.status());
  EXPECT_OK(ValidateJobSpec(*spec));
  proto::JobSpec bad = *spec;
  bad.mutable_model()->mutable_layer(0)->mutable_linear()->set_out_features(8);
  EXPECT_THAT(ValidateJobSpec(bad).message(),
              HasSubstr("data.format LIBSVM gives each example as (feature, value) pairs: the model's first layer "
                        "must be a sparse_linear"));
  bad = *spec;
  bad.mutable_data()->mutable_libsvm()->set_index_base(2);
  EXPECT_EQ(ValidateJobSpec(bad).message(), "data.libsvm.index_base must be 0 or 1, got 2");
  bad = *spec;
  bad.mutable_data()->mutable_libsvm()->set_num_features(int64_t{1} << 25);
  EXPECT_THAT(ValidateJobSpec(bad).message(), HasSubstr("data.libsvm.num_features must be in [0, 16777216]"));
  bad = *spec;
  bad.mutable_data()->clear_test_files();
  EXPECT_THAT(ValidateJobSpec(bad).message(), HasSubstr("data.format LIBSVM needs data.train_files and data.test_files"));
  bad = *spec;
  bad.mutable_data()->set_format(proto::DataSpec::CSV);
  bad.mutable_data()->mutable_table()->set_label_column("label");
  EXPECT_THAT(ValidateJobSpec(bad).message(), HasSubstr("is a sparse_linear: it needs libsvm data (data.format LIBSVM)"));
}

}  // namespace
}  // namespace tessera
