// Training on CSV tables with real processes (issue 15): Fashion-MNIST in
// Kaggle's layout (label,pixel1,...,pixel784, written here from the IDX
// files) trains as well as the IDX files, resumes exactly from a cut inside
// an epoch, and a mistake in the data is one line and exit 2 before any
// process starts.
#include <zlib.h>

#include <cmath>
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

// Kaggle's layout of Fashion-MNIST: a header, then label and 784 pixels a line.
std::string KaggleCsv(const ImageDataset& data) {
  std::string text = "label";
  for (int64_t p = 0; p < data.example_size(); ++p) text += ",pixel" + std::to_string(p + 1);
  text += '\n';
  for (int64_t i = 0; i < data.count; ++i) {
    text += std::to_string(data.labels[i]);
    for (int64_t p = 0; p < data.example_size(); ++p) {
      text += ',';
      text += std::to_string(data.pixels[i * data.example_size() + p]);
    }
    text += '\n';
  }
  return text;
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

// examples/fmnist-mlp.pbtxt's model and cluster, cuts every 150 steps.
std::string Spec(const std::string& data_block) {
  return R"pb(
    name: "table"
    model {
      layer { linear { out_features: 256 } }
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

class TableTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz")) return;
    dir_ = new std::string(MakeTempDir("table-training"));
    auto train = LoadImageDataset(std::string(kFashionMnist) + "train-images-idx3-ubyte.gz",
                                  std::string(kFashionMnist) + "train-labels-idx1-ubyte.gz", kTrainExamples);
    auto test = LoadImageDataset(std::string(kFashionMnist) + "t10k-images-idx3-ubyte.gz",
                                 std::string(kFashionMnist) + "t10k-labels-idx1-ubyte.gz", kTestExamples);
    ASSERT_TRUE(train.ok() && test.ok());
    std::ofstream(*dir_ + "/fashion-mnist_train.csv") << KaggleCsv(*train);
    WriteGzText(*dir_ + "/fashion-mnist_test.csv.gz", KaggleCsv(*test));  // gzip'd files read the same
    std::ofstream(*dir_ + "/csv.pbtxt") << Spec(R"pb(
      data {
        format: CSV
        dir: ")pb" + *dir_ + R"pb("
        train_files: "fashion-mnist_train.csv"
        test_files: "fashion-mnist_test.csv.gz"
        table { label_column: "label" }
      })pb");
    CommandResult r = RunTessera({"train", *dir_ + "/csv.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  static std::string* dir_;
};
std::string* TableTrainingTest::dir_ = nullptr;

TEST_F(TableTrainingTest, KaggleCsvTrainsAsWellAsTheIdxFiles) {
  const std::string idx_spec = *dir_ + "/idx.pbtxt";
  std::ofstream(idx_spec) << Spec("data { max_test_examples: " + std::to_string(kTestExamples) + " }");
  CommandResult r = RunTessera({"train", idx_spec, "--run-dir", *dir_ + "/idx-run", "--threads", "1", "--progress",
                                "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string csv = Summary(*dir_ + "/run"), idx = Summary(*dir_ + "/idx-run");
  EXPECT_EQ(JsonNumber(csv, "examples_per_epoch"), kTrainExamples) << csv;
  // The same examples, another order (blocks) and scaling (per column): the
  // same accuracy within the noise of a 2000-example test set.
  const double csv_accuracy = JsonNumber(csv, "test_accuracy"), idx_accuracy = JsonNumber(idx, "test_accuracy");
  EXPECT_GT(csv_accuracy, 0.75) << csv;
  EXPECT_NEAR(csv_accuracy, idx_accuracy, 0.03) << csv << "\n" << idx;
}

TEST_F(TableTrainingTest, ResumeFromACutInsideAnEpochIsExact) {
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

// The export records the columns and their scaling, and `tessera predict`
// over the test file (gzip'd, with its label column) applies them: the
// same accuracy as the export's evaluation through training's reader.
TEST_F(TableTrainingTest, ExportRecordsTheColumnsAndPredictGetsItsAccuracy) {
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", *dir_ + "/models/table"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string manifest = FileText(*dir_ + "/models/table/1/manifest.json");
  EXPECT_NE(manifest.find("\"kind\": \"table\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"name\": \"pixel784\""), std::string::npos) << manifest;
  const double accuracy = JsonNumber(manifest, "test_accuracy");
  EXPECT_EQ(JsonNumber(manifest, "test_examples"), kTestExamples);
  r = RunTessera({"predict", *dir_ + "/models/table", *dir_ + "/fashion-mnist_test.csv.gz", "--out",
                  *dir_ + "/predictions.csv", "--workers", "2", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const long correct = std::lround(accuracy * kTestExamples);
  EXPECT_NE(r.output.find("(" + std::to_string(correct) + " of " + std::to_string(kTestExamples) + ")"),
            std::string::npos)
      << r.output << " export: " << accuracy;
}

// The data is read whole before any process starts: a bad field is one line
// naming the file, the line and the column, exit 2, and no node ran.
TEST(TableSpecErrorTest, ABadFieldIsOneLineBeforeAnyProcessStarts) {
  const std::string bad = MakeTempDir("table-errors");
  std::ofstream(bad + "/train.csv") << "label,a,b\n1,0.5,2\n0,1,x\n";
  std::ofstream(bad + "/test.csv") << "label,a,b\n1,0.5,2\n";
  std::ofstream(bad + "/spec.pbtxt") << Spec(R"pb(
    data { format: CSV dir: ")pb" + bad + R"pb(" train_files: "train.csv" test_files: "test.csv"
           table { label_column: "label" } })pb");
  CommandResult r = RunTessera({"train", bad + "/spec.pbtxt", "--run-dir", bad + "/run", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(bad + "/train.csv:3: column \"b\": expected a finite number, got \"x\""), std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(bad + "/run/logs/scheduler.log"));

  std::ofstream(bad + "/spec.pbtxt") << Spec(R"pb(
    data { format: CSV dir: ")pb" + bad + R"pb(" train_files: "train.csv" test_files: "test.csv"
           table { label_column: "class" } })pb");
  r = RunTessera({"train", bad + "/spec.pbtxt", "--run-dir", bad + "/run2", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no column 'class' (data.table.label_column); the header has label, a, b"), std::string::npos)
      << r.output;
}

// With skip_bad_records the job trains on the good records, says on the
// console which it passed over, and counts them in summary.json.
TEST(TableSpecErrorTest, SkippedBadRecordsAreNamedAndCounted) {
  const std::string dir = MakeTempDir("table-skip");
  std::string train = "label,a,b\n";
  for (int i = 0; i < 200; ++i) train += std::to_string(i % 2) + "," + std::to_string(i % 7) + ",1\n";
  train += "1,0.5\n0,x,2\n";  // a record short of a field, and one with a word for a number
  std::ofstream(dir + "/train.csv") << train;
  std::ofstream(dir + "/test.csv") << "label,a,b\n1,0.5,2\n0,1,1\n";
  std::ofstream(dir + "/spec.pbtxt") << R"pb(
    model { layer { linear { out_features: 2 } } }
    data { format: CSV dir: ")pb" + dir + R"pb(" train_files: "train.csv" test_files: "test.csv"
           table { label_column: "label" skip_bad_records: true } }
    epochs: 1 batch_size: 16)pb";
  CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("passing over 2 bad records (data.table.skip_bad_records):\n  " + dir +
                          "/train.csv:202: 2 fields, expected 3 (the header's)\n  " + dir +
                          "/train.csv:203: column \"a\": expected a finite number, got \"x\""),
            std::string::npos)
      << r.output;
  const std::string summary = Summary(dir + "/run");
  EXPECT_NE(summary.find("\"bad_records_skipped\": {\"train\": 2, \"test\": 0}"), std::string::npos) << summary;
  EXPECT_EQ(JsonNumber(summary, "examples_per_epoch"), 200) << summary;
}

}  // namespace
}  // namespace tessera
