// A worker's splits of IDX data: a validation_fraction holds out examples of
// the training file, chosen by the job seed, and neither reader ever gives
// an example of the other. (Tables: table_data_test.cc.)
#include "worker/example_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/data_plan.h"
#include "core/dataset.h"
#include "core/spec.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

class ImageSplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("split");
    WriteTinyImageData(dir_, 64, 16);
    // Training images whose first pixel is their index, so every one differs.
    std::vector<uint8_t> pixels(64 * 16, 0), labels(64);
    for (int i = 0; i < 64; ++i) {
      pixels[16 * i] = static_cast<uint8_t>(i);
      labels[i] = static_cast<uint8_t>(i % 10);
    }
    ASSERT_OK(WriteIdxFile(dir_ + "/train-images-idx3-ubyte.gz", {64, 4, 4}, pixels));
    ASSERT_OK(WriteIdxFile(dir_ + "/train-labels-idx1-ubyte.gz", {64}, labels));
    proto::DataSpec* data = map_.mutable_spec()->mutable_data();
    data->set_dir(dir_);
    data->set_validation_fraction(0.25f);
    map_.mutable_spec()->set_seed(5);
    map_.set_train_examples(48);
    map_.set_validation_examples(16);
    map_.set_test_examples(16);
  }

  // Every example of `split` as the reader gives it: its pixels (as read,
  // normalized) and its label, by example.
  std::vector<std::vector<float>> ReadAll(Split split, std::vector<float>* labels) {
    StatusOr<std::unique_ptr<ExampleReader>> reader = OpenExampleReader(map_.spec().data(), map_, split);
    EXPECT_OK(reader.status());
    if (!reader.ok()) return {};
    std::vector<int64_t> examples((*reader)->count());
    for (size_t i = 0; i < examples.size(); ++i) examples[i] = static_cast<int64_t>(i);
    std::vector<float> x;
    EXPECT_OK((*reader)->Read(examples, &x, labels));
    std::vector<std::vector<float>> rows;
    for (size_t i = 0; i < examples.size(); ++i) rows.emplace_back(x.begin() + 16 * i, x.begin() + 16 * (i + 1));
    return rows;
  }

  std::string dir_;
  proto::ClusterMap map_;
};

TEST_F(ImageSplitTest, AValidationFractionSplitsTheTrainingFileByTheSeed) {
  std::vector<float> all_labels, train_labels, validation_labels;
  map_.mutable_spec()->mutable_data()->set_validation_fraction(0);
  const std::vector<std::vector<float>> all = ReadAll(Split::kTraining, &all_labels);
  ASSERT_EQ(all.size(), 64u);
  map_.mutable_spec()->mutable_data()->set_validation_fraction(0.25f);
  const std::vector<std::vector<float>> train = ReadAll(Split::kTraining, &train_labels);
  const std::vector<std::vector<float>> validation = ReadAll(Split::kValidation, &validation_labels);
  ASSERT_EQ(train.size(), 48u);
  ASSERT_EQ(validation.size(), 16u);

  // Exactly the examples HoldOut chose, in file order; together every example once.
  const HeldOutSplit split = HoldOut(5, 64, 16);
  for (size_t i = 0; i < train.size(); ++i) {
    EXPECT_EQ(train[i], all[split.training[i]]) << "training example " << i;
    EXPECT_EQ(train_labels[i], all_labels[split.training[i]]);
  }
  for (size_t i = 0; i < validation.size(); ++i) {
    EXPECT_EQ(validation[i], all[split.validation[i]]) << "validation example " << i;
    EXPECT_EQ(validation_labels[i], all_labels[split.validation[i]]);
  }
  std::set<std::vector<float>> seen(all.begin(), all.end());
  ASSERT_EQ(seen.size(), 64u) << "the tiny images differ from each other";
  std::set<std::vector<float>> trained(train.begin(), train.end());
  for (const std::vector<float>& example : validation) EXPECT_EQ(trained.count(example), 0u) << "disjoint";

  // The same seed, the same split (a resumed job's workers read the same); another seed, another one.
  std::vector<float> again_labels;
  EXPECT_EQ(ReadAll(Split::kValidation, &again_labels), validation);
  map_.mutable_spec()->set_seed(6);
  EXPECT_NE(ReadAll(Split::kValidation, &again_labels), validation);

  // The test set is not touched by the split.
  std::vector<float> test_labels;
  EXPECT_EQ(ReadAll(Split::kTest, &test_labels).size(), 16u);
}

TEST_F(ImageSplitTest, AJobWithoutASplitHasNoValidationReader) {
  map_.mutable_spec()->mutable_data()->set_validation_fraction(0);
  const Status status = OpenExampleReader(map_.spec().data(), map_, Split::kValidation).status();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
}

}  // namespace
}  // namespace tessera
