// Training on libsvm files with real processes (issue 15): Fashion-MNIST's
// nonzero pixels as `label index:value` lines (written here from the IDX
// files, as scripts/make_fmnist_libsvm.py does) train through a
// sparse_linear first layer as well as the dense MLP on the IDX files,
// resume exactly from a cut inside an epoch, export and predict give the
// training evaluation's accuracy,
// and a mistake is one line and exit 2 before any process starts.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/";
constexpr int kTrainExamples = 60000;  // all: epochs long enough (472 steps) for cuts inside them
constexpr int kTestExamples = 2000;

// One image a line: its class, then its nonzero pixels, 1-based, as byte / 255.
std::string LibsvmText(const ImageDataset& data) {
  std::string text;
  char value[32];
  for (int64_t i = 0; i < data.count; ++i) {
    text += std::to_string(data.labels[i]);
    for (int64_t p = 0; p < data.example_size(); ++p) {
      const uint8_t v = data.pixels[i * data.example_size() + p];
      if (v == 0) continue;
      std::snprintf(value, sizeof(value), " %lld:%.6g", static_cast<long long>(p + 1), v / 255.0);
      text += value;
    }
    text += '\n';
  }
  return text;
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

// examples/fmnist-mlp.pbtxt's model (its first layer `first`) and cluster, cuts every 150 steps.
std::string Spec(const std::string& first, const std::string& data_block) {
  return R"pb(
    name: "libsvm"
    model {
      layer { )pb" + first + R"pb( { out_features: 256 } }
      layer { relu {} }
      layer { linear { out_features: 128 } }
      layer { relu {} }
      layer { linear { out_features: 10 } }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: SGD learning_rate: 0.02 momentum: 0.9 }
    batch_size: 64
    epochs: 2
    checkpoint { every_steps: 150 keep_last: 20 }
  )pb" + data_block;
}

class LibsvmTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz")) return;
    dir_ = new std::string(MakeTempDir("libsvm-training"));
    auto train = LoadImageDataset(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz",
                                  std::string(kFashionMnist) + "train-labels-idx1-ubyte.gz", kTrainExamples);
    auto test = LoadImageDataset(std::string(kFashionMnist) + "t10k-images-idx3-ubyte.gz",
                                 std::string(kFashionMnist) + "t10k-labels-idx1-ubyte.gz", kTestExamples);
    ASSERT_TRUE(train.ok() && test.ok());
    WriteText(*dir_ + "/fashion-mnist_train.svm", LibsvmText(*train));
    WriteGzText(*dir_ + "/fashion-mnist_test.svm.gz", LibsvmText(*test));  // gzip'd files read the same
    std::ofstream(*dir_ + "/libsvm.pbtxt") << Spec("sparse_linear", R"pb(
      data {
        format: LIBSVM
        dir: ")pb" + *dir_ + R"pb("
        train_files: "fashion-mnist_train.svm"
        test_files: "fashion-mnist_test.svm.gz"
      })pb");
    CommandResult r = RunTessera({"train", *dir_ + "/libsvm.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  static std::string* dir_;
};
std::string* LibsvmTrainingTest::dir_ = nullptr;

TEST_F(LibsvmTrainingTest, FashionMnistTrainsAsWellAsTheDenseMlpOnTheIdxFiles) {
  const std::string idx_spec = *dir_ + "/idx.pbtxt";
  std::ofstream(idx_spec) << Spec("linear", "data { max_test_examples: " + std::to_string(kTestExamples) + " }");
  CommandResult r = RunTessera({"train", idx_spec, "--run-dir", *dir_ + "/idx-run", "--threads", "1", "--progress",
                                "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string svm = Summary(*dir_ + "/run"), idx = Summary(*dir_ + "/idx-run");
  EXPECT_EQ(JsonNumber(svm, "examples_per_epoch"), kTrainExamples) << svm;
  // The same examples, another order (blocks) and scaling (byte / 255, no
  // shift: zeros stay absent): the same accuracy within the noise of a
  // 2000-example test set.
  const double svm_accuracy = JsonNumber(svm, "test_accuracy"), idx_accuracy = JsonNumber(idx, "test_accuracy");
  EXPECT_GT(svm_accuracy, 0.75) << svm;
  EXPECT_NEAR(svm_accuracy, idx_accuracy, 0.03) << svm << "\n" << idx;
}

TEST_F(LibsvmTrainingTest, ResumeFromACutInsideAnEpochIsExact) {
  const std::string copy = *dir_ + "/copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  std::string checkpoint;
  for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && m->cursor().steps_into_epoch() > 0) checkpoint = e.path().string();
  }
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint was cut inside an epoch";
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonString(Summary(copy), "params_sha256"), JsonString(Summary(*dir_ + "/run"), "params_sha256"));
}

// examples/fmnist-libsvm.pbtxt's model exports (its evaluation is
// training's), and `tessera predict` over the gzip'd test file gives the
// training evaluation's accuracy.
TEST_F(LibsvmTrainingTest, ExportAndPredictGiveTheTrainingAccuracy) {
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", *dir_ + "/models/svm"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string manifest = FileText(*dir_ + "/models/svm/1/manifest.json");
  const double accuracy = JsonNumber(Summary(*dir_ + "/run"), "test_accuracy");
  EXPECT_EQ(JsonNumber(manifest, "test_accuracy"), accuracy) << manifest;
  r = RunTessera({"predict", *dir_ + "/models/svm", *dir_ + "/fashion-mnist_test.svm.gz", "--out",
                  *dir_ + "/predictions.csv", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string correct = std::to_string(static_cast<int>(accuracy * kTestExamples + 0.5));
  EXPECT_NE(r.output.find("(" + correct + " of " + std::to_string(kTestExamples) + ")"), std::string::npos)
      << r.output << " (training: " << accuracy << ")";
}

// The data is read whole before any process starts: a bad line is one line
// naming the file and the line, exit 2, and no node ran; so is a model
// whose first layer is not a sparse_linear.
TEST(LibsvmSpecErrorTest, MistakesAreOneLineBeforeAnyProcessStarts) {
  const std::string bad = MakeTempDir("libsvm-errors");
  WriteText(bad + "/train.svm", "1 1:0.5 3:2\n0 2:1 9:1\n");
  WriteText(bad + "/test.svm", "1 1:0.5\n");
  const std::string data = R"pb(
    data { format: LIBSVM dir: ")pb" + bad + R"pb(" train_files: "train.svm" test_files: "test.svm"
           libsvm { num_features: 8 } })pb";
  WriteText(bad + "/spec.pbtxt", Spec("sparse_linear", data));
  CommandResult r = RunTessera({"train", bad + "/spec.pbtxt", "--run-dir", bad + "/run", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(bad + "/train.svm:2: feature index 9: expected below 9 (data.libsvm.num_features 8)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(bad + "/run/logs/scheduler.log"));

  WriteText(bad + "/spec.pbtxt", Spec("linear", data));
  r = RunTessera({"train", bad + "/spec.pbtxt", "--run-dir", bad + "/run2", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("the model's first layer must be a sparse_linear"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(bad + "/run2/logs/scheduler.log"));
}

// A million features, a few a line, with a validation split of the last
// lines: the job trains, and each worker's input is 3 pairs an example.
TEST(LibsvmLargeTest, AMillionFeaturesTrainWithAValidationSplit) {
  const std::string dir = MakeTempDir("libsvm-large");
  std::string train, test;
  for (int i = 0; i < 3000; ++i) {
    const int label = i % 2;
    // Feature 1 + label carries the class; two others are noise spread over a million.
    const int64_t a = 10 + (int64_t{i} * 7919) % 500000, b = 500010 + (int64_t{i} * 104729) % 499990;
    std::string line = std::to_string(label) + " " + std::to_string(1 + label) + ":1 " + std::to_string(a) + ":0.5 " +
                       std::to_string(b) + ":0.25\n";
    (i < 2500 ? train : test) += line;
  }
  WriteText(dir + "/train.svm", train);
  WriteText(dir + "/test.svm", test + "1 2:1 1000000:1\n");
  WriteText(dir + "/spec.pbtxt", R"pb(
    name: "large"
    model { layer { sparse_linear { out_features: 8 } } layer { relu {} } layer { linear { out_features: 2 } } }
    data { format: LIBSVM dir: ")pb" + dir + R"pb(" train_files: "train.svm" test_files: "test.svm"
           validation_fraction: 0.1 }
    cluster { servers: 2 workers: 2 }
    optimizer { type: SGD learning_rate: 0.2 }
    eval_every_epoch: true
    epochs: 3 batch_size: 32)pb");
  CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--progress", "none",
                                "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string summary = Summary(dir + "/run");
  EXPECT_EQ(JsonNumber(summary, "num_parameters"), 1000000 * 8 + 8 + 8 * 2 + 2) << summary;
  EXPECT_EQ(JsonNumber(summary, "examples_per_epoch"), 2250) << summary;
  EXPECT_GT(JsonNumber(summary, "test_accuracy"), 0.95) << summary;
  // Each worker's example is [3, 2]: its log names the shape it built the model on.
  const std::string log = FileText(dir + "/run/logs/worker-0.log");
  EXPECT_NE(log.find("input [3, 2]"), std::string::npos) << log;
}

}  // namespace
}  // namespace tessera
