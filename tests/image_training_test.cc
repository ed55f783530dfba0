// Training on image folders with real processes (issue 15): a subset of
// Fashion-MNIST written here as PNG folders named by class trains well above
// chance, its metrics name the classes by their folders, a run with
// augmentation computes exactly what single-process SGD over the same
// augmented examples does and resumes exactly (at an epoch's end, and from a
// cut inside an epoch on generated images), the export records its
// preprocessing and predict applies it, and a bad folder or image is one line and exit 2 before any
// process starts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/checkpoint_manifest.h"
#include "core/data_plan.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/image_folder_data.h"
#include "core/spec.h"
#include "models/model.h"
#include "server/optimizer.h"
#include "tests/image_files.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"
#include "worker/example_reader.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/";
constexpr int kTrainPerClass = 300;
constexpr int kTestPerClass = 50;
constexpr int kClasses = 10;
// Fashion-MNIST's label order, as scripts/make_fmnist_images.py names the folders.
const char* const kClassNames[kClasses] = {"T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle_boot"};

Image DatasetImage(const ImageDataset& data, int64_t index) {
  Image image;
  image.width = static_cast<int>(data.cols);
  image.height = static_cast<int>(data.rows);
  image.channels = 1;
  const auto first = data.pixels.begin() + index * data.example_size();
  image.pixels.assign(first, first + data.example_size());
  return image;
}

// The first `per_class` images of each class of `data` as DIR/CLASS/NNNNN.png.
void WriteFolder(const ImageDataset& data, int per_class, const std::string& dir) {
  std::vector<int> written(kClasses, 0);
  for (int64_t i = 0; i < data.count; ++i) {
    const int label = data.labels[i];
    if (written[label] == per_class) continue;
    ++written[label];
    const std::string folder = dir + "/" + kClassNames[label];
    fs::create_directories(folder);
    char name[32];
    std::snprintf(name, sizeof(name), "/%05lld.png", static_cast<long long>(i));
    testing_images::WriteBytes(folder + name, testing_images::EncodePng(DatasetImage(data, i)));
  }
}

// A two-layer MLP on 28x28 gray images with both augmentations, 2 servers
// and 2 workers (an epoch of 3000 images is 96 steps: 4 shards of 375 each, in batches).
std::string Spec(const std::string& dir, int classes = kClasses) {
  return R"pb(
    name: "images"
    model {
      layer { linear { out_features: 128 } }
      layer { relu {} }
      layer { linear { out_features: )pb" + std::to_string(classes) + R"pb( } }
    }
    data {
      format: IMAGE_FOLDER
      dir: ")pb" + dir + R"pb("
      train_dir: "train"
      test_dir: "test"
      image { width: 28 height: 28 random_crop: true min_crop_scale: 0.9 horizontal_flip: true }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: SGD learning_rate: 0.02 momentum: 0.9 }
    batch_size: 16
    epochs: 2
  )pb";
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

class ImageTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz")) return;
    dir_ = new std::string(MakeTempDir("image-training"));
    auto train = LoadImageDataset(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz",
                                  std::string(kFashionMnist) + "train-labels-idx1-ubyte.gz", 0);
    auto test = LoadImageDataset(std::string(kFashionMnist) + "t10k-images-idx3-ubyte.gz",
                                 std::string(kFashionMnist) + "t10k-labels-idx1-ubyte.gz", 0);
    ASSERT_TRUE(train.ok() && test.ok());
    WriteFolder(*train, kTrainPerClass, *dir_ + "/train");
    WriteFolder(*test, kTestPerClass, *dir_ + "/test");
    std::ofstream(*dir_ + "/spec.pbtxt") << Spec(*dir_);
    // On the CPU, as the reference below: on a GPU machine --device=auto would
    // pick the GPU, whose sums are not bitwise the CPU's.
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none", "--device", "cpu"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  static std::string* dir_;
};
std::string* ImageTrainingTest::dir_ = nullptr;

TEST_F(ImageTrainingTest, TrainsWellAboveChanceAndNamesTheClassesByTheirFolders) {
  const nlohmann::json summary = nlohmann::json::parse(Summary(*dir_ + "/run"));
  EXPECT_EQ(summary["examples_per_epoch"], kClasses * kTrainPerClass);
  EXPECT_GT(summary["test_accuracy"].get<double>(), 0.6) << summary.dump();  // chance: 0.1
  const nlohmann::json& classes = summary["classification"];
  EXPECT_EQ(classes["examples"], kClasses * kTestPerClass);
  ASSERT_EQ(classes["per_class"].size(), static_cast<size_t>(kClasses)) << classes.dump();
  for (const char* name : kClassNames) {
    ASSERT_TRUE(classes["per_class"].contains(name)) << name << ": " << classes.dump();
    EXPECT_EQ(classes["per_class"][name]["support"], kTestPerClass) << name;
    EXPECT_TRUE(classes["confusion"].contains(name)) << name;
  }
  // Labels are the folders' indexes in sorted order, and summary.json lists
  // the classes by label.
  const std::string text = Summary(*dir_ + "/run");
  const size_t ankle_boot = text.find("\"Ankle_boot\""), bag = text.find("\"Bag\""), coat = text.find("\"Coat\"");
  EXPECT_LT(ankle_boot, bag);
  EXPECT_LT(bag, coat);
  // metrics.jsonl's evaluations name them the same way.
  EXPECT_NE(FileText(*dir_ + "/run/metrics.jsonl").find("\"Ankle_boot\""), std::string::npos);
}

// The cluster trains on exactly the examples the data plan and the
// augmentation say: BSP with 2 workers of batch 16 equals single-process SGD
// with batch 32 over the same examples, each augmented from (seed, epoch,
// index), read here through the same reader (as tests/bsp_reference_test.cc
// does for IDX). A worker that augmented every epoch as the first, or
// shuffled otherwise, ends elsewhere.
std::vector<float> ReferenceSgd(const proto::JobSpec& spec) {
  constexpr int kWorkers = 2;
  auto splits = ListImageFolders(spec.data());
  CHECK(splits.ok()) << splits.status().ToString();
  ImageFolderExampleReader reader(spec.data().image(), splits->train, spec.seed());
  auto model = Model::Create(spec.model(), reader.example_shape(), reader.num_classes());
  CHECK(model.ok());
  InitializeParameters((*model)->tensors(), spec.seed(), (*model)->params());
  auto optimizer = CreateOptimizer(spec.optimizer());
  CHECK(optimizer.ok());
  const uint64_t n = (*model)->num_keys();
  std::vector<float> state(n * (*optimizer)->state_per_param(), 0.0f);
  const int batch = spec.batch_size();
  int64_t step = 0;
  for (int epoch = 0; epoch < spec.epochs(); ++epoch) {
    reader.set_epoch(epoch);
    const ExampleOrder order = TrainingOrder(spec.seed(), epoch, reader);
    const std::vector<Shard> shards = CutShards(reader.count(), spec.data().shards_per_worker() * kWorkers);
    // Each worker's batches, as the examples at positions [begin, end) of the epoch's order.
    std::vector<std::vector<std::vector<int64_t>>> batches(kWorkers);
    for (int r = 0; r < kWorkers; ++r) {
      for (int s : ShardsOfRank(static_cast<int>(shards.size()), kWorkers, r)) {
        for (int64_t p = shards[s].begin; p < shards[s].end; p += batch) {
          std::vector<int64_t>& examples = batches[r].emplace_back();
          for (int64_t q = p; q < std::min<int64_t>(p + batch, shards[s].end); ++q) examples.push_back(order.At(q));
        }
      }
    }
    const size_t steps = std::max(batches[0].size(), batches[1].size());
    for (size_t t = 0; t < steps; ++t) {
      std::vector<float> x, part_x;
      std::vector<float> labels, part_labels;
      for (int r = 0; r < kWorkers; ++r) {
        if (t >= batches[r].size()) continue;
        CHECK(reader.Read(batches[r][t], &part_x, &part_labels).ok());
        x.insert(x.end(), part_x.begin(), part_x.end());
        labels.insert(labels.end(), part_labels.begin(), part_labels.end());
      }
      const int64_t count = static_cast<int64_t>(labels.size());
      (*model)->TrainBatch(x.data(), labels.data(), count);
      ++step;
      if (count == 0) continue;
      std::vector<float> mean(*(*model)->grads());
      const float scale = 1.0f / static_cast<float>(count);
      for (float& g : mean) g *= scale;
      (*optimizer)->Apply(step, (*model)->params(), mean.data(), state.data(), n);
    }
  }
  return std::vector<float>((*model)->params(), (*model)->params() + n);
}

TEST_F(ImageTrainingTest, ClusterEqualsSingleProcessSgdOnTheAugmentedImages) {
  auto spec = LoadJobSpec(*dir_ + "/spec.pbtxt");
  ASSERT_OK(spec.status());
  auto bytes = ReadFileToString(*dir_ + "/run/params.bin");
  ASSERT_OK(bytes.status());
  const std::vector<float> reference = ReferenceSgd(*spec);
  ASSERT_EQ(bytes->size(), reference.size() * sizeof(float));
  const float* cluster = reinterpret_cast<const float*>(bytes->data());
  auto model = Model::Create(spec->model(), Shape{1, 28, 28}, kClasses);
  ASSERT_OK(model.status());
  std::vector<float> initial((*model)->num_keys());
  InitializeParameters((*model)->tensors(), spec->seed(), initial.data());
  for (const TensorInfo& t : (*model)->tensors()) {
    double diff = 0, norm = 0, moved = 0;
    for (uint64_t i = t.offset; i < t.offset + t.size; ++i) {
      diff += std::pow(static_cast<double>(cluster[i]) - reference[i], 2);
      norm += std::pow(static_cast<double>(reference[i]), 2);
      moved += std::pow(static_cast<double>(reference[i]) - initial[i], 2);
    }
    EXPECT_LE(std::sqrt(diff / norm), 1e-5) << t.name;
    EXPECT_GT(std::sqrt(moved / norm), 1e-3) << t.name;  // training moved it: not "both unchanged"
  }
}

// A job resumed at the end of its first epoch trains the second exactly as
// the uninterrupted run did: the new workers list the same folders and
// augment by the epoch the scheduler starts. (An epoch of these 3000 images
// is too short for a cut inside it: ImageFolderResumeTest below has one.)
TEST_F(ImageTrainingTest, ResumeFromTheFirstEpochsEndIsExact) {
  const std::string copy = *dir_ + "/copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  std::string checkpoint;
  for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && m->cursor().epoch() == 1 && m->cursor().steps_into_epoch() == 0) checkpoint = e.path().string();
  }
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint at the end of the first epoch";
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonNumber(Summary(copy), "resumed_from_step"), 96);
  EXPECT_EQ(JsonString(Summary(copy), "params_sha256"), JsonString(Summary(*dir_ + "/run"), "params_sha256"));
}

// The export records the image size, channels and normalization, and
// `tessera predict` over the test folder (class folders: the labels) applies
// them: the same accuracy as the export's evaluation through training's reader.
TEST_F(ImageTrainingTest, ExportRecordsTheImageAndPredictGetsItsAccuracy) {
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", *dir_ + "/models/images"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string manifest = FileText(*dir_ + "/models/images/1/manifest.json");
  const nlohmann::json m = nlohmann::json::parse(manifest);
  EXPECT_EQ(m["preprocessing"]["kind"], "image") << manifest;
  EXPECT_EQ(m["preprocessing"]["width"], 28);
  EXPECT_EQ(m["class_names"][0], "Ankle_boot");  // the class folders, sorted
  const double accuracy = m["test_accuracy"].get<double>();
  const int examples = kTestPerClass * kClasses;
  EXPECT_EQ(m["test_examples"], examples);
  r = RunTessera({"predict", *dir_ + "/models/images", *dir_ + "/test", "--out", *dir_ + "/predictions.csv",
                  "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const long correct = std::lround(accuracy * examples);
  EXPECT_NE(r.output.find("(" + std::to_string(correct) + " of " + std::to_string(examples) + ")"),
            std::string::npos)
      << r.output << " export: " << accuracy;
}

// ------------------------------------------------------- resume inside an epoch

// An image-folder job resumed from a checkpoint cut inside an epoch ends
// with the parameters of the run that never stopped, as IDX and CSV jobs do
// (MidEpochTest, TableTrainingTest): the resumed workers pass over the
// steps before the cut unread and augment the rest from (seed, epoch,
// index), so they see the same crops and flips. Small generated images and
// model, but batches of one image so that an epoch is many steps: a cut
// lands inside an epoch only when the epoch outlasts the scheduler's first
// progress report (0.5 s) and the cut's lead after it (4 steps, then 0.8 s of
// steps): kResumeImages make 6000 steps an epoch, 2.5 s on a loaded 2-core
// machine, so several cuts land inside epochs.
constexpr int kResumeClasses = 4;
constexpr int kResumeImages = 12000;
constexpr int kResumeSide = 20;

std::string ResumeSpec(const std::string& dir) {
  return R"pb(
    name: "image-resume"
    model {
      layer { linear { out_features: 32 } }
      layer { relu {} }
      layer { linear { out_features: 4 } }
    }
    data {
      format: IMAGE_FOLDER
      dir: ")pb" + dir + R"pb("
      train_dir: "train"
      test_dir: "test"
      image { width: 16 height: 16 random_crop: true min_crop_scale: 0.6 horizontal_flip: true }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: SGD learning_rate: 0.01 momentum: 0.9 }
    batch_size: 1
    epochs: 2
    checkpoint { every_steps: 200 keep_last: 100 }
  )pb";
}

// Image `i` of class `label`: a gradient whose direction is the class, with
// a bright spot the image's own (so crops and flips change the input).
void WriteResumeImage(const std::string& dir, int label, int i) {
  const Image image = testing_images::MakeImage(kResumeSide, kResumeSide, 1, [&](int y, int x, int) {
    const int dx = x - i % 10 * 2, dy = y - i / 10 % 10 * 2;
    const int spot = dx * dx + dy * dy;
    return (label % 2 == 0 ? x : y) * 7 + (label / 2) * 40 + (spot < 9 ? 60 : 0);
  });
  const std::string folder = dir + "/class" + std::to_string(label);
  fs::create_directories(folder);
  testing_images::WriteBytes(folder + "/" + std::to_string(i) + ".png", testing_images::EncodePng(image));
}

class ImageFolderResumeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("image-resume"));
    for (int i = 0; i < kResumeImages; ++i) WriteResumeImage(*dir_ + "/train", i % kResumeClasses, i);
    for (int i = 0; i < 8 * kResumeClasses; ++i) WriteResumeImage(*dir_ + "/test", i % kResumeClasses, i);
    std::ofstream(*dir_ + "/spec.pbtxt") << ResumeSpec(*dir_);
    // On the CPU, as the resumed run: a GPU's sums are not bitwise the CPU's.
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none", "--device", "cpu"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static std::string* dir_;
};
std::string* ImageFolderResumeTest::dir_ = nullptr;

TEST_F(ImageFolderResumeTest, ResumeFromACutInsideAnEpochIsExact) {
  const std::string copy = *dir_ + "/copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  std::string checkpoint;
  for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && m->cursor().steps_into_epoch() > 0) checkpoint = e.path().string();
  }
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint was cut inside an epoch";
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto manifest = ReadManifest(checkpoint);
  ASSERT_OK(manifest.status());
  EXPECT_EQ(JsonNumber(Summary(copy), "resumed_from_step"), manifest->step());
  EXPECT_EQ(JsonNumber(Summary(copy), "examples_per_epoch"), kResumeImages);
  EXPECT_EQ(JsonString(Summary(copy), "params_sha256"), JsonString(Summary(*dir_ + "/run"), "params_sha256"));
}

// ------------------------------------------------------------------ mistakes

class ImageFolderErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("image-errors");
    const Image image = testing_images::MakeImage(28, 28, 1, [](int y, int x, int) { return (y * 9 + x * 5) % 256; });
    for (const std::string name : {"train/bag/1.png", "train/bag/2.png", "train/coat/1.png", "test/bag/1.png"}) {
      fs::create_directories(fs::path(dir_ + "/" + name).parent_path());
      testing_images::WriteBytes(dir_ + "/" + name, testing_images::EncodePng(image));
    }
    std::ofstream(dir_ + "/spec.pbtxt") << Spec(dir_, 2);
  }
  // `tessera train` on the folders as they are now: exit 2, one line that
  // holds `message`, and no process started.
  void ExpectRefused(const std::string& message) {
    CommandResult r = RunTessera({"train", dir_ + "/spec.pbtxt", "--run-dir", dir_ + "/run", "--progress", "none"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(FileExists(dir_ + "/run/logs/scheduler.log"));
  }
  std::string dir_;
};

TEST_F(ImageFolderErrorTest, TheFoldersAsWrittenAreRunnable) {
  CommandResult r = RunTessera({"train", dir_ + "/spec.pbtxt", "--run-dir", dir_ + "/run", "--progress", "none",
                                "--epochs", "1", "--workers", "1", "--servers", "1", "--threads", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ImageFolderErrorTest, ACorruptPngIsNamed) {
  const std::string bytes = FileText(dir_ + "/train/coat/1.png");
  testing_images::WriteBytes(dir_ + "/train/coat/1.png", bytes.substr(0, bytes.size() - 20));  // cut inside IDAT or IEND
  ExpectRefused(dir_ + "/train/coat/1.png: ");
}

TEST_F(ImageFolderErrorTest, AnEmptyClassFolderIsNamed) {
  fs::create_directories(dir_ + "/train/dress");
  ExpectRefused(dir_ + "/train/dress: class folder 'dress' has no .png, .jpg or .jpeg files");
}

TEST_F(ImageFolderErrorTest, ATestClassUnknownToTrainingIsNamed) {
  fs::rename(dir_ + "/test/bag", dir_ + "/test/shirt");
  ExpectRefused(dir_ + "/test/shirt: class folder 'shirt' is not one of the 2 classes given");
}

}  // namespace
}  // namespace tessera
