// Image folders as training data (core/image_folder_data.h and
// ImageFolderExampleReader): the two folders listed as one data set, the
// exact floats of an example, augmentation as a function of (seed, epoch,
// example) alone, and a worker that lists another folder than the
// scheduler did refusing to train.
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/data_plan.h"
#include "core/image_folder_data.h"
#include "core/random.h"
#include "core/spec.h"
#include "tests/image_files.h"
#include "tests/test_util.h"
#include "tools/local_job.h"
#include "worker/example_reader.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_images::EncodePng;
using testing_images::MakeImage;
using testing_images::WriteBytes;

// Writes `image` as a PNG at dir/name, making its folders.
void WritePng(const std::string& dir, const std::string& name, const Image& image) {
  const std::filesystem::path path = std::filesystem::path(dir) / name;
  std::filesystem::create_directories(path.parent_path());
  WriteBytes(path.string(), EncodePng(image));
}

// A 16x12 RGB image with something different in every pixel, so every crop
// and flip shows.
Image Varied(int seed) {
  return MakeImage(16, 12, 3, [seed](int y, int x, int c) { return (seed * 37 + y * 19 + x * x * 5 + c * 80) % 256; });
}

proto::DataSpec FolderData(const std::string& dir) {
  proto::DataSpec data;
  data.set_format(proto::DataSpec::IMAGE_FOLDER);
  data.set_dir(dir);
  data.set_train_dir("train");
  data.set_test_dir("test");
  return data;
}

// train/{cat,ant} with two and one images, test/cat with one.
std::string WriteSmallFolders() {
  const std::string dir = MakeTempDir("image-reader");
  WritePng(dir, "train/cat/1.png", Varied(1));
  WritePng(dir, "train/cat/2.png", Varied(2));
  WritePng(dir, "train/ant/9.png", Varied(9));
  WritePng(dir, "test/cat/5.png", Varied(5));
  return dir;
}

// What a worker gets in its cluster map for `data`.
proto::ClusterMap MapFor(const proto::DataSpec& data, uint64_t seed) {
  proto::ClusterMap map;
  *map.mutable_spec()->mutable_data() = data;
  map.mutable_spec()->set_seed(seed);
  StatusOr<ImageFolderSplits> splits = ListImageFolders(data);
  EXPECT_OK(splits.status());
  if (splits.ok()) *map.mutable_image_folder() = DescribeImageFolders(*splits);
  return map;
}

std::unique_ptr<ExampleReader> Open(const proto::DataSpec& data, const proto::ClusterMap& map, bool test) {
  StatusOr<std::unique_ptr<ExampleReader>> reader =
      OpenExampleReader(data, map, test ? Split::kTest : Split::kTraining);
  EXPECT_OK(reader.status());
  return reader.ok() ? std::move(reader).value() : nullptr;
}

// One example's floats, read alone.
std::vector<float> ReadOne(ExampleReader& reader, int64_t example) {
  std::vector<float> x;
  std::vector<float> labels;
  EXPECT_OK(reader.Read({example}, &x, &labels));
  return x;
}

// ------------------------------------------------------------------ exact examples

TEST(ImageFolderReaderTest, AGrayImageGivesTheHandComputedFloats) {
  const std::string dir = MakeTempDir("image-reader");
  // 4x2, shrunk to 2x1: each output the mean of a 2x2 block, rounded to the
  // nearest byte: (10+20+50+60)/4 = 35, (30+41+70+80)/4 = 55.25 -> 55.
  const std::vector<int> pixels = {10, 20, 30, 41, 50, 60, 70, 80};
  WritePng(dir, "train/only/a.png", MakeImage(4, 2, 1, [&](int y, int x, int) { return pixels[y * 4 + x]; }));
  WritePng(dir, "test/only/b.png", MakeImage(4, 2, 1, [](int, int, int) { return 255; }));
  proto::DataSpec data = FolderData(dir);
  data.mutable_image()->set_width(2);
  data.mutable_image()->set_height(1);  // channels 1, mean and std 0.5 by default
  const proto::ClusterMap map = MapFor(data, 1);
  std::unique_ptr<ExampleReader> train = Open(data, map, /*test=*/false);
  ASSERT_NE(train, nullptr);
  EXPECT_EQ(train->example_shape(), (Shape{1, 1, 2}));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(train->Read({0}, &x, &labels));
  // (p / 255 - 0.5) / 0.5 as p * (1 / 127.5) - 1 in float.
  const float a = 1.0f / 127.5f;
  EXPECT_THAT(x, ElementsAre(35 * a - 1.0f, 55 * a - 1.0f));
  EXPECT_NEAR(x[0], 35 / 127.5 - 1, 1e-6);  // -0.7254902
  EXPECT_NEAR(x[1], 55 / 127.5 - 1, 1e-6);  // -0.5686275
  EXPECT_THAT(labels, ElementsAre(0));
  std::unique_ptr<ExampleReader> test = Open(data, map, /*test=*/true);
  ASSERT_NE(test, nullptr);
  EXPECT_THAT(ReadOne(*test, 0), ElementsAre(255 * a - 1.0f, 255 * a - 1.0f));
}

TEST(ImageFolderReaderTest, EachChannelHasItsOwnMeanAndStd) {
  const std::string dir = MakeTempDir("image-reader");
  const Image pixel = MakeImage(1, 1, 3, [](int, int, int c) { return std::vector<int>{200, 100, 0}[c]; });
  WritePng(dir, "train/a/p.png", pixel);
  WritePng(dir, "test/a/p.png", pixel);
  proto::DataSpec data = FolderData(dir);
  proto::ImageSpec* image = data.mutable_image();
  image->set_width(1);
  image->set_height(1);
  image->set_channels(3);
  for (const float mean : {0.5f, 0.0f, 0.25f}) image->add_mean(mean);
  for (const float std : {0.5f, 0.25f, 1.0f}) image->add_std(std);
  std::unique_ptr<ExampleReader> reader = Open(data, MapFor(data, 1), /*test=*/true);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->example_shape(), (Shape{3, 1, 1}));
  EXPECT_THAT(ReadOne(*reader, 0), ElementsAre(200 * (1.0f / 127.5f) - 1.0f,  //
                                               100 * (1.0f / 63.75f) + 0.0f,  //
                                               0 * (1.0f / 255.0f) - 0.25f));

  // One channel: BT.601 luma, (299*200 + 587*100 + 114*0 + 500) / 1000 = 119;
  // one mean and std for every channel.
  image->set_channels(1);
  image->clear_mean();
  image->clear_std();
  image->add_mean(0.0f);
  image->add_std(1.0f);
  reader = Open(data, MapFor(data, 1), /*test=*/true);
  ASSERT_NE(reader, nullptr);
  EXPECT_THAT(ReadOne(*reader, 0), ElementsAre(119 * (1.0f / 255.0f)));
}

TEST(ImageFolderReaderTest, LabelsFollowTheSortedClassFolders) {
  const std::string dir = WriteSmallFolders();
  proto::DataSpec data = FolderData(dir);
  data.mutable_image()->set_width(4);
  data.mutable_image()->set_height(3);
  const proto::ClusterMap map = MapFor(data, 1);
  EXPECT_THAT(map.image_folder().class_names(), ElementsAre("ant", "cat"));
  std::unique_ptr<ExampleReader> train = Open(data, map, /*test=*/false);
  std::unique_ptr<ExampleReader> test = Open(data, map, /*test=*/true);
  ASSERT_NE(train, nullptr);
  ASSERT_NE(test, nullptr);
  EXPECT_EQ(train->count(), 3);
  EXPECT_EQ(test->count(), 1);
  EXPECT_EQ(train->num_classes(), 2);
  EXPECT_EQ(test->num_classes(), 2);  // the training classes, though the test folder has one
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(train->Read({2, 0, 1}, &x, &labels));
  EXPECT_THAT(labels, ElementsAre(1, 0, 1));  // cat/2.png, ant/9.png, cat/1.png
  EXPECT_EQ(x.size(), 3u * 4 * 3);
  ASSERT_OK(test->Read({0}, &x, &labels));
  EXPECT_THAT(labels, ElementsAre(1));
}

// Images are files of their own: the epoch's order is a plain permutation.
TEST(ImageFolderReaderTest, TheTrainingOrderIsTheEpochsPermutation) {
  const std::string dir = WriteSmallFolders();
  proto::DataSpec data = FolderData(dir);
  data.mutable_image()->set_width(4);
  data.mutable_image()->set_height(3);
  std::unique_ptr<ExampleReader> train = Open(data, MapFor(data, 5), /*test=*/false);
  ASSERT_NE(train, nullptr);
  const ExampleOrder order = TrainingOrder(5, 2, *train);
  const std::vector<int64_t> permutation = EpochOrder(5, 2, 3);
  for (int64_t p = 0; p < 3; ++p) EXPECT_EQ(order.At(p), permutation[p]);
}

// ------------------------------------------------------------------ augmentation

class AugmentationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = WriteSmallFolders();
    data_ = FolderData(dir_);
    proto::ImageSpec* image = data_.mutable_image();
    image->set_width(8);
    image->set_height(8);
    image->set_channels(3);
    image->set_random_crop(true);
    image->set_min_crop_scale(0.5f);
    image->set_horizontal_flip(true);
  }
  // Example `example` as a training reader of job seed `seed` reads it in
  // epoch `epoch`, in a batch of the given examples.
  std::vector<float> Read(uint64_t seed, int epoch, int64_t example, std::vector<int64_t> batch) {
    std::unique_ptr<ExampleReader> reader = Open(data_, MapFor(data_, seed), /*test=*/false);
    if (reader == nullptr) return {};
    reader->set_epoch(epoch);
    std::vector<float> x;
    std::vector<float> labels;
    EXPECT_OK(reader->Read(batch, &x, &labels));
    const int64_t size = ImageExampleSize(data_.image());
    const auto at = std::find(batch.begin(), batch.end(), example) - batch.begin();
    return {x.begin() + at * size, x.begin() + (at + 1) * size};
  }
  std::vector<float> Expected(const Image& image, std::optional<uint64_t> seed) const {
    std::vector<float> x(ImageExampleSize(data_.image()));
    WriteImageExample(image, data_.image(), seed, x.data());
    return x;
  }

  std::string dir_;
  proto::DataSpec data_;
};

// Example 1 (cat/1.png) of seed 7 in epoch 2 is drawn from MixSeed(7, 2, 1)
// whatever batch (so whichever worker, in whatever order) reads it.
TEST_F(AugmentationTest, AnExampleIsAugmentedByTheSeedTheEpochAndItsIndexAlone) {
  const std::vector<float> alone = Read(7, 2, 1, {1});
  EXPECT_EQ(alone, Read(7, 2, 1, {2, 0, 1}));
  EXPECT_EQ(alone, Read(7, 2, 1, {1, 2}));
  EXPECT_EQ(alone, Expected(Varied(1), MixSeed(7, 2, 1)));
  EXPECT_NE(alone, Expected(Varied(1), std::nullopt)) << "augmented like the evaluation";
}

TEST_F(AugmentationTest, AnotherEpochOrSeedDrawsAnotherAugmentation) {
  const std::vector<float> epoch2 = Read(7, 2, 1, {1});
  int differ = 0;
  for (int epoch : {0, 1, 3, 4}) differ += Read(7, epoch, 1, {1}) != epoch2;
  EXPECT_GE(differ, 3);
  int seeds_differ = 0;
  for (uint64_t seed : {1, 2, 3, 8}) seeds_differ += Read(seed, 2, 1, {1}) != epoch2;
  EXPECT_GE(seeds_differ, 3);
}

TEST_F(AugmentationTest, EvaluationNeverAugments) {
  std::unique_ptr<ExampleReader> test = Open(data_, MapFor(data_, 7), /*test=*/true);
  ASSERT_NE(test, nullptr);
  test->set_epoch(3);
  EXPECT_EQ(ReadOne(*test, 0), Expected(Varied(5), std::nullopt));
}

TEST_F(AugmentationTest, WithoutCropOrFlipTrainingReadsTheCenteredImage) {
  data_.mutable_image()->set_random_crop(false);
  data_.mutable_image()->set_horizontal_flip(false);
  EXPECT_EQ(Read(7, 2, 1, {1}), Expected(Varied(1), std::nullopt));
}

// ------------------------------------------------------------------ listing as planned

TEST(ImageFolderPlanTest, AWorkerThatListsOtherImagesRefusesToTrain) {
  const std::string dir = WriteSmallFolders();
  proto::DataSpec data = FolderData(dir);
  data.mutable_image()->set_width(4);
  data.mutable_image()->set_height(4);
  const proto::ClusterMap map = MapFor(data, 1);
  ASSERT_OK(ListImageFolderAsPlanned(data, map.image_folder(), /*test=*/false).status());

  WritePng(dir, "train/ant/10.png", Varied(10));  // added after the scheduler listed the folder
  StatusOr<std::unique_ptr<ExampleReader>> train = OpenExampleReader(data, map, Split::kTraining);
  EXPECT_EQ(train.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(train.status().message(), HasSubstr(dir + "/train: this worker lists 4 images"));
  EXPECT_THAT(train.status().message(), HasSubstr("not those the scheduler listed"));
  ASSERT_OK(OpenExampleReader(data, map, Split::kTest).status());  // the test folder did not change

  std::filesystem::rename(dir + "/test/cat/5.png", dir + "/test/cat/6.png");  // same count, other name
  StatusOr<std::unique_ptr<ExampleReader>> test = OpenExampleReader(data, map, Split::kTest);
  EXPECT_EQ(test.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(test.status().message(), HasSubstr(dir + "/test: this worker lists 1 images"));
}

// A validation_fraction holds out the training folder's images by the job
// seed (HoldOut, as for IDX): the two readers split the listing between
// them, the same for the same seed; only the training reader augments.
TEST(ImageFolderPlanTest, AValidationFractionHoldsOutImagesByTheSeed) {
  const std::string dir = MakeTempDir("image-reader");
  for (int i = 0; i < 10; ++i) WritePng(dir, "train/" + std::string(i % 2 ? "ant" : "cat") + "/" + std::to_string(i) + ".png", Varied(i));
  WritePng(dir, "test/cat/5.png", Varied(5));
  proto::DataSpec data = FolderData(dir);
  data.mutable_image()->set_width(4);
  data.mutable_image()->set_height(4);
  data.mutable_image()->set_horizontal_flip(true);
  data.set_validation_fraction(0.3f);
  const proto::ClusterMap map = MapFor(data, 7);
  StatusOr<std::unique_ptr<ExampleReader>> train = OpenExampleReader(data, map, Split::kTraining);
  StatusOr<std::unique_ptr<ExampleReader>> validation = OpenExampleReader(data, map, Split::kValidation);
  ASSERT_OK(train.status());
  ASSERT_OK(validation.status());
  ASSERT_EQ((*train)->count(), 7);
  ASSERT_EQ((*validation)->count(), 3);
  const auto names = [](const ExampleReader& reader) {
    std::vector<std::string> out;
    for (const ImageFolderEntry& e : static_cast<const ImageFolderExampleReader&>(reader).listing().images) out.push_back(e.name);
    return out;
  };
  StatusOr<ImageFolderSplits> splits = ListImageFolders(data);
  ASSERT_OK(splits.status());
  const HeldOutSplit held_out = HoldOut(7, 10, 3);
  std::vector<std::string> want_train, want_validation;
  for (int64_t i : held_out.training) want_train.push_back(splits->train.images[i].name);
  for (int64_t i : held_out.validation) want_validation.push_back(splits->train.images[i].name);
  EXPECT_EQ(names(**train), want_train);
  EXPECT_EQ(names(**validation), want_validation);
  EXPECT_TRUE(static_cast<const ImageFolderExampleReader&>(**train).AugmentSeed(0).has_value());
  EXPECT_FALSE(static_cast<const ImageFolderExampleReader&>(**validation).AugmentSeed(0).has_value());
  // The test folder is whole.
  StatusOr<std::unique_ptr<ExampleReader>> test = OpenExampleReader(data, map, Split::kTest);
  ASSERT_OK(test.status());
  EXPECT_EQ((*test)->count(), 1);
}

TEST(ImageFolderPlanTest, TheTestFolderIsListedWithTheTrainingClasses) {
  const std::string dir = WriteSmallFolders();
  proto::DataSpec data = FolderData(dir);
  StatusOr<ImageFolderSplits> splits = ListImageFolders(data);
  ASSERT_OK(splits.status());
  EXPECT_THAT(splits->test.class_names, ElementsAre("ant", "cat"));
  EXPECT_EQ(splits->test.images[0].label, 1);

  WritePng(dir, "test/bee/1.png", Varied(3));
  const Status unknown = ListImageFolders(data).status();
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr(dir + "/test/bee: class folder 'bee' is not one of the 2 classes given"));
}

TEST(ImageFolderPlanTest, GivenClassNamesMustBeTheFolders) {
  const std::string dir = WriteSmallFolders();
  proto::DataSpec data = FolderData(dir);
  data.add_class_names("ant");
  data.add_class_names("cat");
  ASSERT_OK(ListImageFolders(data).status());
  data.clear_class_names();
  data.add_class_names("cat");
  data.add_class_names("ant");
  const Status swapped = ListImageFolders(data).status();
  EXPECT_EQ(swapped.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(swapped.message(), HasSubstr("data.class_names (cat, ant) must be the class folders of " + dir +
                                           "/train in sorted order (ant, cat)"));
}

TEST(ImageFolderPlanTest, AWorkerHoldsTwoBatchesNotTheDataSet) {
  auto spec = ParseJobSpec(R"pb(
    model { layer { linear { out_features: 2 } } }
    data { format: IMAGE_FOLDER dir: "/nonexistent" train_dir: "train" test_dir: "test"
           image { width: 32 height: 24 channels: 3 } }
    batch_size: 512
  )pb", "test spec");
  ASSERT_OK(spec.status());
  StatusOr<uint64_t> bytes = WorkerMemoryBytes(*spec);  // nothing to read: the folders need not exist
  ASSERT_OK(bytes.status());
  EXPECT_EQ(*bytes, (uint64_t{64} << 20) + 2 * 512 * (3 * 32 * 24) * sizeof(float));
  spec->set_batch_size(16);  // evaluation reads batches of 256
  bytes = WorkerMemoryBytes(*spec);
  ASSERT_OK(bytes.status());
  EXPECT_EQ(*bytes, (uint64_t{64} << 20) + 2 * 256 * (3 * 32 * 24) * sizeof(float));
}

}  // namespace
}  // namespace tessera
