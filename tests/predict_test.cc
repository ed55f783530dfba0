// `tessera predict`: an exported model run over an IDX file, by the real
// binary, with one process and with worker processes: rows in input order,
// the same bytes whatever the number of workers, each class Tessera's own
// argmax, the accuracy the export measured on the same images; the newest
// complete version of a model directory; every user mistake one line and
// exit 2; a failed worker, or SIGINT, ends the run with nothing written and
// no process left.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/dataset.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "export/onnx_import.h"
#include "export/runtime_model.h"
#include "models/device.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/predict_pool.h"
#include "worker/batch_reader.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImages = 200;

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
  return parts;
}

// Entries of a directory (names), to see that nothing was left behind.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class PredictTest : public ::testing::Test {
 protected:
  // A tiny training run of the CNN, exported (and evaluated on the first
  // kImages test images) as version 1 of repo/fmnist; those images and
  // labels written as the test's own IDX files.
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("predict"));
    const std::string run = *dir_ + "/run";
    std::ofstream(*dir_ + "/spec.pbtxt") << "name: \"predict-cnn\"\nmodel {" << kCnnModel
                                          << "}\ncluster { servers: 1 workers: 1 }\n"
                                             "optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }\n"
                                             "batch_size: 32\nepochs: 1\n";
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", run, "--max-train-examples", "320",
                                  "--max-test-examples", std::to_string(kImages), "--threads", "1", "--progress",
                                  "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    CommandResult e = RunTessera({"export", run, "--out", *dir_ + "/repo/fmnist"});
    ASSERT_EQ(e.exit_code, 0) << e.output;
    auto spec = ParseJobSpec(ReadFileToString(run + "/spec.pbtxt").value(), "spec");
    ASSERT_TRUE(spec.ok());
    spec_ = new proto::JobSpec(*spec);
    auto test = LoadImageDataset(DataPath(spec_->data(), spec_->data().test_images()),
                                 DataPath(spec_->data(), spec_->data().test_labels()), kImages);
    ASSERT_TRUE(test.ok()) << test.status().ToString();
    test_ = new ImageDataset(*test);
    ASSERT_OK(WriteIdxFile(Images(), {kImages, 28, 28}, test->pixels));
    ASSERT_OK(WriteIdxFile(Labels(), {kImages}, test->labels));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete spec_;
    delete test_;
  }

  static std::string Model() { return *dir_ + "/repo/fmnist"; }
  static std::string Images() { return *dir_ + "/images-idx3-ubyte.gz"; }
  static std::string Labels() { return *dir_ + "/labels-idx1-ubyte"; }

  // The classes Tessera's own Model gives the images, run in batches of
  // `batch` as predict runs them.
  static std::vector<int> TesseraClasses(int64_t batch) {
    auto files = ReadModelVersion(Model() + "/1");
    EXPECT_TRUE(files.ok()) << files.status().ToString();
    if (!files.ok()) return {};
    auto model = BuildRuntimeModel(files->model);
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    if (!model.ok()) return {};
    std::vector<float> x;
    std::vector<float> labels;
    BatchReader(test_, spec_->data().mean(), spec_->data().std()).Read({}, 0, kImages, &x, &labels);
    std::vector<int> classes;
    for (int64_t first = 0; first < kImages; first += batch) {
      const int64_t n = std::min(batch, kImages - first);
      const float* logits = (*model)->Infer(x.data() + first * 784, n);
      for (int64_t r = 0; r < n; ++r) classes.push_back(static_cast<int>(std::max_element(logits + r * 10, logits + r * 10 + 10) - (logits + r * 10)));
    }
    return classes;
  }

  static std::string* dir_;
  static proto::JobSpec* spec_;
  static ImageDataset* test_;
};

std::string* PredictTest::dir_ = nullptr;
proto::JobSpec* PredictTest::spec_ = nullptr;
ImageDataset* PredictTest::test_ = nullptr;

TEST_F(PredictTest, RowsInInputOrderTheSameForAnyWorkersAndTesseraClasses) {
  const std::string out = MakeTempDir("predict-out");
  std::map<int, std::string> csv;
  for (int workers : {1, 3}) {
    SCOPED_TRACE(workers);
    const std::string file = out + "/w" + std::to_string(workers) + ".csv";
    CommandResult r = RunTessera({"predict", Model(), Images(), "--out", file, "--workers", std::to_string(workers),
                                  "--batch-size", "16", "--threads", "1", "--labels", Labels()});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(Lines(r.output), 1) << r.output;
    EXPECT_NE(r.output.find("fmnist version 1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(workers == 1 ? "(1 process" : "(3 workers"), std::string::npos) << r.output;
    // The accuracy is the one the export measured on the same images.
    const nlohmann::json manifest = nlohmann::json::parse(ReadFileToString(Model() + "/1/manifest.json").value());
    ASSERT_EQ(manifest["test_examples"].get<int64_t>(), kImages);
    const int64_t correct = std::llround(manifest["test_accuracy"].get<double>() * kImages);
    EXPECT_NE(r.output.find(std::string("(") + std::to_string(correct) + " of 200)"), std::string::npos)
        << r.output << " manifest: " << manifest["test_accuracy"];
    csv[workers] = ReadFileToString(file).value();
  }
  EXPECT_EQ(csv[1], csv[3]);
  EXPECT_EQ(Entries(out), (std::vector<std::string>{"w1.csv", "w3.csv"}));  // nothing left behind

  const std::vector<std::string> rows = Split(csv[1], '\n');
  ASSERT_EQ(rows.size(), static_cast<size_t>(kImages + 1));
  EXPECT_EQ(rows[0], "index,class,prob_0,prob_1,prob_2,prob_3,prob_4,prob_5,prob_6,prob_7,prob_8,prob_9");
  const std::vector<int> expected = TesseraClasses(16);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kImages));
  for (int64_t i = 0; i < kImages; ++i) {
    const std::vector<std::string> fields = Split(rows[i + 1], ',');
    ASSERT_EQ(fields.size(), 12u) << rows[i + 1];
    EXPECT_EQ(fields[0], std::to_string(i));
    EXPECT_EQ(std::stoi(fields[1]), expected[i]) << "image " << i;
    double sum = 0, best = -1;
    int argmax = -1;
    for (int k = 0; k < 10; ++k) {
      const double p = std::stod(fields[2 + k]);
      EXPECT_GE(p, 0.0);
      sum += p;
      if (p > best) best = p, argmax = k;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << rows[i + 1];
    EXPECT_EQ(argmax, expected[i]) << rows[i + 1];
  }
}

// An int8 export (tessera export --quantize int8) predicts through the int8
// runtime: the accuracy its manifest records, the same rows on any number of
// workers, and the classes of the int8 model run in-process.
TEST_F(PredictTest, Int8VersionsPredictWithTheirManifestsAccuracy) {
  const std::string repo = MakeTempDir("predict-int8");
  CommandResult e = RunTessera({"export", *dir_ + "/run", "--out", repo + "/fmnist", "--quantize", "int8",
                                "--calibration-batches", "2", "--max-test-examples", std::to_string(kImages)});
  ASSERT_EQ(e.exit_code, 0) << e.output;
  auto files = ReadModelVersion(repo + "/fmnist/1");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->model.precision, "int8");
  const nlohmann::json manifest = nlohmann::json::parse(files->manifest_json);
  ASSERT_EQ(manifest["test_examples"].get<int64_t>(), kImages);
  const int64_t correct = std::llround(manifest["test_accuracy"].get<double>() * kImages);

  const std::string out = MakeTempDir("predict-int8-out");
  std::map<int, std::string> csv;
  for (int workers : {1, 2}) {
    const std::string file = out + "/w" + std::to_string(workers) + ".csv";
    CommandResult r = RunTessera({"predict", repo + "/fmnist", Images(), "--out", file, "--workers",
                                  std::to_string(workers), "--batch-size", "16", "--labels", Labels()});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(std::string("(") + std::to_string(correct) + " of 200)"), std::string::npos) << r.output;
    csv[workers] = ReadFileToString(file).value();
  }
  EXPECT_EQ(csv[1], csv[2]);

  auto model = BuildRuntimeModel(files->model);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::vector<float> x;
  std::vector<float> labels;
  BatchReader(test_, spec_->data().mean(), spec_->data().std()).Read({}, 0, kImages, &x, &labels);
  const std::vector<std::string> rows = Split(csv[1], '\n');
  ASSERT_EQ(rows.size(), static_cast<size_t>(kImages + 1));
  for (int64_t first = 0; first < kImages; first += 16) {
    const int64_t n = std::min<int64_t>(16, kImages - first);
    const float* logits = (*model)->Infer(x.data() + first * 784, n);
    for (int64_t r = 0; r < n; ++r) {
      const int want = static_cast<int>(std::max_element(logits + r * 10, logits + r * 10 + 10) - (logits + r * 10));
      EXPECT_EQ(std::stoi(Split(rows[first + r + 1], ',')[1]), want) << "image " << first + r;
    }
  }
}

TEST_F(PredictTest, AModelDirectoryGivesItsNewestVersionThatLoads) {
  const std::string repo = MakeTempDir("predict-repo");
  fs::copy(Model(), repo + "/fmnist", fs::copy_options::recursive);
  // Version 2 is still being copied in: its model.onnx is cut short.
  fs::copy(Model() + "/1", repo + "/fmnist/2", fs::copy_options::recursive);
  const std::string onnx = ReadFileToString(repo + "/fmnist/2/model.onnx").value();
  std::ofstream(repo + "/fmnist/2/model.onnx", std::ios::binary | std::ios::trunc) << onnx.substr(0, onnx.size() / 2);
  const std::string out = MakeTempDir("predict-out");
  CommandResult newest = RunTessera({"predict", repo + "/fmnist", Images(), "--out", out + "/newest.csv"});
  ASSERT_EQ(newest.exit_code, 0) << newest.output;
  EXPECT_NE(newest.output.find("passing over version 2"), std::string::npos) << newest.output;
  CommandResult one = RunTessera({"predict", repo + "/fmnist/1/", Images(), "--out", out + "/one.csv"});
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(Lines(one.output), 1) << one.output;
  EXPECT_EQ(ReadFileToString(out + "/newest.csv").value(), ReadFileToString(out + "/one.csv").value());
  // The broken version asked for by name is refused.
  CommandResult broken = RunTessera({"predict", repo + "/fmnist/2", Images(), "--out", out + "/two.csv"});
  EXPECT_EQ(broken.exit_code, 2) << broken.output;
  EXPECT_EQ(Lines(broken.output), 1) << broken.output;
  EXPECT_FALSE(FileExists(out + "/two.csv"));
}

TEST_F(PredictTest, UserMistakesAreOneLineAndExit2) {
  const std::string dir = MakeTempDir("predict-bad");
  const std::string out = dir + "/out.csv";
  ASSERT_OK(WriteIdxFile(dir + "/small-idx3-ubyte", {4, 14, 14}, std::vector<uint8_t>(4 * 14 * 14, 7)));
  ASSERT_OK(WriteIdxFile(dir + "/few-labels", {3}, {1, 2, 3}));
  std::ofstream(dir + "/not-idx") << "hello";
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{"predict"}, "expected a model and an input"},
      {{"predict", Model(), Images()}, "--out FILE is required"},
      {{"predict", dir + "/nothing", Images(), "--out", out}, "is not a directory"},
      {{"predict", dir, Images(), "--out", out}, "holds no model version"},
      {{"predict", Model(), Images(), "--out", out, "--workers", "0"}, "--workers must be in [1, 256], got 0"},
      {{"predict", Model(), Images(), "--out", out, "--workers", "x"}, "--workers"},
      {{"predict", Model(), Images(), "--out", out, "--batch-size", "0"}, "--batch-size must be"},
      {{"predict", Model(), Images(), "--out", out, "--progress", "loud"}, "--progress must be"},
      {{"predict", Model(), dir + "/small-idx3-ubyte", "--out", out}, "holds images of [1, 14, 14]"},
      {{"predict", Model(), dir + "/missing-idx3-ubyte", "--out", out}, "missing-idx3-ubyte"},
      {{"predict", Model(), dir + "/not-idx", "--out", out}, "not-idx"},
      {{"predict", Model(), Labels(), "--out", out}, "is not an images file"},
      {{"predict", Model(), Images(), "--out", out, "--labels", dir + "/few-labels"}, "holds 3 labels for 200 images"},
      {{"predict", Model(), Images(), "--out", dir + "/no/such/dir/out.csv"}, "does not exist"},
      {{"predict", Model(), Images(), "--out", dir}, "is a directory"},
      {{"predict", Model(), Images(), "--out", out, "--epochs", "3"}, "unknown flag --epochs"},
      {{"predict", Model(), Images(), "--out", out, "--device", "tpu"}, "--device must be auto, cpu or cuda"},
  };
  if (!CudaAvailable()) cases.push_back({{"predict", Model(), Images(), "--out", out, "--device", "cuda"}, "--device=cuda: "});
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    CommandResult r = RunTessera(args, 60);
    std::string joined;
    for (const std::string& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.output;
    EXPECT_EQ(Lines(r.output), 1) << joined << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("tessera predict: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << "expected '" << c.needle << "' in: " << r.output;
    EXPECT_FALSE(FileExists(out)) << joined;
  }
  // Nothing but the test's own files in the output's directory.
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{"few-labels", "not-idx", "small-idx3-ubyte"}));
}

TEST_F(PredictTest, AFailedWorkerStopsTheOthersAndWritesNothing) {
  const std::string dir = MakeTempDir("predict-fail");
  const std::string out = dir + "/out.csv";
  std::ofstream(out) << "an older file\n";
  // 200 images in batches of 16 for 3 workers: images 0..63, 64..127,
  // 128..199. The middle one fails while the others hang.
  CommandResult r = RunTessera({"predict", Model(), Images(), "--out", out, "--workers", "3", "--batch-size", "16",
                                "--threads", "1", "--test-worker-fault", "stall:0,crash:100,stall:199"},
                               60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(Lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("tessera predict: worker 2 of 3 (images 64..127) exited with code 1: tessera "
                          "predict-worker: injected crash"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(out + " not written"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFileToString(out).value(), "an older file\n");
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{"out.csv"}));  // no temporary directory left
  // The hanging workers were stopped (their command lines name the
  // temporary directory in `dir`).
  EXPECT_TRUE(ProcessesMatching(dir).empty());
}

TEST_F(PredictTest, SigintStopsTheWorkersAndWritesNothing) {
  const std::string dir = MakeTempDir("predict-stop");
  const std::string out = dir + "/out.csv";
  auto child = ChildProcess::Start("predict",
                                   {TesseraBinary(), "predict", Model(), Images(), "--out", out, "--workers", "2",
                                    "--batch-size", "16", "--threads", "1", "--test-worker-fault", "stall:0,stall:199"},
                                   MakeTempDir("predict-stop-log") + "/predict.log");
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  // Both workers hang; stop the parent once they run.
  ASSERT_TRUE(WaitUntil([&] { return ChildrenOf((*child)->pid()).size() == 2u; }));
  kill((*child)->pid(), SIGINT);
  EXPECT_EQ((*child)->Wait(60000), std::optional<int>(130));
  const std::string log = ReadFileToString((*child)->log_path()).value();
  EXPECT_NE(log.find("tessera predict: stopped by signal 2; " + out + " not written"), std::string::npos) << log;
  EXPECT_EQ(Entries(dir), std::vector<std::string>{});
  EXPECT_TRUE(ProcessesMatching(dir).empty());
}

TEST(PredictRangesTest, WholeBatchesContiguousAndBalanced) {
  const auto ranges = SplitPredictRanges(200, 16, 3);  // 13 batches: 4, 4, 5
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0].begin, 0);
  EXPECT_EQ(ranges[0].end, 64);
  EXPECT_EQ(ranges[1].begin, 64);
  EXPECT_EQ(ranges[1].end, 128);
  EXPECT_EQ(ranges[2].begin, 128);
  EXPECT_EQ(ranges[2].end, 200);
  EXPECT_EQ(SplitPredictRanges(10, 64, 4).size(), 1u);  // never an empty worker
  EXPECT_EQ(SplitPredictRanges(10, 64, 4)[0].end, 10);
  for (int64_t count : {1, 7, 64, 65, 1000}) {
    for (int workers : {1, 2, 5, 16}) {
      const auto r = SplitPredictRanges(count, 8, workers);
      int64_t next = 0;
      for (const auto& range : r) {
        EXPECT_EQ(range.begin, next);
        EXPECT_EQ(range.begin % 8, 0);
        EXPECT_GT(range.end, range.begin);
        next = range.end;
      }
      EXPECT_EQ(next, count);
    }
  }
}

TEST(PredictCliTest, HelpDocumentsTheCommandAndHidesItsWorker) {
  CommandResult top = RunTessera({"--help"});
  EXPECT_NE(top.output.find("  predict "), std::string::npos) << top.output;
  EXPECT_EQ(top.output.find("predict-worker"), std::string::npos) << top.output;
  CommandResult help = RunTessera({"predict", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("usage: tessera predict MODEL_DIR INPUT --out FILE"), std::string::npos) << help.output;
  for (const char* flag : {"--out", "--workers", "--batch-size", "--threads", "--labels", "--progress"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(help.output.find("(default: 64)"), std::string::npos) << help.output;
  // The test hook is accepted but not shown.
  EXPECT_EQ(help.output.find("test-worker-fault"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace tessera
