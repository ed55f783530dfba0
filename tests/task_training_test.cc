// Binary classification and regression on CSV tables with real processes:
// a planted problem generated here, the task inferred from the label column
// and said on the console, the task's metrics in every evaluation line of
// metrics.jsonl and in summary.json, the table at the end of `tessera
// train`, a model that learns, early stopping by a regression metric, and
// an exact resume.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr int kFeatures = 4;

// z = 2 x0 - 3 x1 + x2 + 0.5 (x3 is noise) with x ~ N(0, 1): binary labels
// are 1 where z + N(0, 0.5) > 0, so a linear model reaches an AUC near 0.99;
// regression targets are z + N(0, 0.3), an R² near 0.99 at best.
std::string PlantedCsv(int records, uint32_t seed, bool binary) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::ostringstream out;
  out << "x0,x1,x2,x3,target\n";
  for (int i = 0; i < records; ++i) {
    double x[kFeatures];
    for (double& v : x) v = normal(rng);
    const double z = 2 * x[0] - 3 * x[1] + x[2] + 0.5;
    for (double v : x) out << v << ",";
    if (binary) {
      out << (z + 0.5 * normal(rng) > 0 ? 1 : 0) << "\n";
    } else {
      out << z + 0.3 * normal(rng) << "\n";
    }
  }
  return out.str();
}

// `data_extra` goes inside the data block, `extra` after the spec.
std::string Spec(const std::string& dir, const std::string& data_extra, const std::string& extra) {
  return R"pb(
    name: "task"
    model {
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    data { format: CSV dir: ")pb" + dir + R"pb(" train_files: "train.csv" test_files: "test.csv"
           table { label_column: "target" } )pb" + data_extra + R"pb( }
    cluster { servers: 1 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.01 }
    batch_size: 32
    epochs: 3
  )pb" + extra;
}

// The lines of metrics.jsonl whose event is "eval".
std::vector<std::string> EvalLines(const std::string& run) {
  std::vector<std::string> lines;
  std::istringstream in(FileText(run + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\": \"eval\"") != std::string::npos) lines.push_back(line);
  }
  return lines;
}

TEST(TaskTrainingTest, BinaryTaskIsInferredLearnsAndReportsAuc) {
  const std::string dir = MakeTempDir("binary-task");
  WriteText(dir + "/train.csv", PlantedCsv(4000, 1, /*binary=*/true));
  WriteText(dir + "/test.csv", PlantedCsv(1000, 2, /*binary=*/true));
  WriteText(dir + "/spec.pbtxt", Spec(dir, "", ""));
  CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--threads", "1",
                                "--progress", "plain"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("task: binary classification (inferred from the label column 'target': values 0 and 1, "
                          "and one output)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("AUC            0.9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("done: test AUC 0.9"), std::string::npos) << r.output;
  const std::string summary = FileText(dir + "/run/summary.json");
  EXPECT_EQ(JsonString(summary, "loss"), "SIGMOID_BINARY_CROSS_ENTROPY") << summary;
  EXPECT_GT(JsonNumber(summary, "auc"), 0.95) << summary;
  EXPECT_LT(JsonNumber(summary, "log_loss", 1), 0.3) << summary;
  EXPECT_GT(JsonNumber(summary, "accuracy"), 0.88) << summary;
  EXPECT_EQ(JsonNumber(summary, "examples"), 1000) << summary;
  EXPECT_EQ(summary.find("\"classification\""), std::string::npos) << summary;
  const std::vector<std::string> evals = EvalLines(dir + "/run");
  ASSERT_EQ(evals.size(), 3u);
  for (const std::string& line : evals) EXPECT_NE(line.find("\"binary\": {\"examples\": 1000"), std::string::npos) << line;
  const std::string scheduler_log = FileText(dir + "/run/logs/scheduler.log");
  EXPECT_NE(scheduler_log.find("task: binary classification"), std::string::npos);

  // Resumed from the first epoch's checkpoint, the job ends with the same parameters.
  const std::string copy = dir + "/copy";
  fs::copy(dir + "/run", copy, fs::copy_options::recursive);
  std::string first;
  int64_t first_step = -1;
  for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && (first_step < 0 || m->step() < first_step)) {
      first_step = m->step();
      first = e.path().string();
    }
  }
  ASSERT_FALSE(first.empty());
  r = RunTessera({"resume", first, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string resumed = FileText(copy + "/summary.json");
  EXPECT_EQ(JsonString(resumed, "params_sha256"), JsonString(summary, "params_sha256"));
  EXPECT_EQ(JsonNumber(resumed, "auc"), JsonNumber(summary, "auc"));

  // The export writes the binary model, evaluated by its task's metrics:
  // the same test set and parameters give training's AUC.
  r = RunTessera({"export", dir + "/run", "--out", dir + "/models/clicks"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("test AUC"), std::string::npos) << r.output;
  const std::string manifest = FileText(dir + "/models/clicks/1/manifest.json");
  EXPECT_EQ(JsonString(manifest, "task"), "binary") << manifest;
  EXPECT_NEAR(JsonNumber(manifest, "test_auc"), JsonNumber(summary, "auc"), 1e-3) << manifest;
  EXPECT_EQ(manifest.find("\"probabilities\""), std::string::npos) << manifest;
}

TEST(TaskTrainingTest, RegressionIsInferredLearnsAndStopsByRmse) {
  const std::string dir = MakeTempDir("regression-task");
  WriteText(dir + "/train.csv", PlantedCsv(4000, 3, /*binary=*/false));
  WriteText(dir + "/test.csv", PlantedCsv(1000, 4, /*binary=*/false));
  WriteText(dir + "/spec.pbtxt", Spec(dir, "validation_fraction: 0.1", "early_stopping { metric: VALIDATION_RMSE }"));
  CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--threads", "1",
                                "--progress", "plain"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("task: regression (inferred from the label column 'target'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("R²             0.9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("validation RMSE "), std::string::npos) << r.output;
  const std::string summary = FileText(dir + "/run/summary.json");
  EXPECT_EQ(JsonString(summary, "task"), "regression") << summary;
  EXPECT_GT(JsonNumber(summary, "r2"), 0.9) << summary;
  EXPECT_LT(JsonNumber(summary, "rmse", 100), 1.0) << summary;
  EXPECT_GT(JsonNumber(summary, "mae"), 0.0) << summary;
  EXPECT_NE(summary.find("\"best_metric\": {\"name\": \"validation_rmse\""), std::string::npos) << summary;
  const std::vector<std::string> evals = EvalLines(dir + "/run");
  ASSERT_EQ(evals.size(), 4u) << "three validations and the test set";
  for (size_t i = 0; i < evals.size(); ++i) {
    EXPECT_NE(evals[i].find(i < 3 ? "\"regression\": {\"examples\": 400" : "\"regression\": {\"examples\": 1000"),
              std::string::npos)
        << evals[i];
  }
  // The validation RMSE is what picked the best epoch.
  EXPECT_NE(evals[0].find("\"metric\": \"validation_rmse\", \"improved\": true"), std::string::npos) << evals[0];
}

// A label column of integers beyond 0 and 1 under a one-output model names
// no task: one line, exit 2, before any process starts.
TEST(TaskTrainingTest, AnAmbiguousLabelColumnIsOneLineBeforeAnyProcessStarts) {
  const std::string dir = MakeTempDir("ambiguous-task");
  WriteText(dir + "/train.csv", "x0,x1,x2,x3,target\n1,2,3,4,0\n1,2,3,4,3\n");
  WriteText(dir + "/test.csv", "x0,x1,x2,x3,target\n1,2,3,4,1\n");
  WriteText(dir + "/spec.pbtxt", Spec(dir, "", ""));
  CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot infer the task from the label column 'target' (integers in [0, 3]) and a last "
                          "layer of one output: set model.loss"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(dir + "/run/logs/scheduler.log"));
}

}  // namespace
}  // namespace tessera
