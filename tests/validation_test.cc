// A validation split, the best epoch and early stopping on real processes:
// `tessera train`, `tessera resume` and `tessera export --best` on a slice of
// Fashion-MNIST.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

const char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// 3000 training examples, 300 of them held out for validation; a learning
// rate so high (SGD at 2.0) that the validation loss is lowest after the
// first epoch and rises after it, so patience 2 stops the job after epoch 3
// of 8. Keeps one checkpoint besides the best.
constexpr char kSpec[] = R"pb(
  name: "early-stop"
  model {
    layer { linear { out_features: 64 } }
    layer { relu {} }
    layer { linear { out_features: 10 } }
  }
  data {
    max_train_examples: 3000
    max_test_examples: 1000
    validation_fraction: 0.1
  }
  cluster { servers: 1 workers: 1 }
  optimizer { type: SGD learning_rate: 2.0 }
  batch_size: 64
  epochs: 8
  early_stopping { metric: VALIDATION_LOSS patience: 2 }
  checkpoint { keep_last: 1 }
)pb";

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(FileText(path), nullptr, /*allow_exceptions=*/false);
}

// The lines of RUN/metrics.jsonl with "event": "eval" and "set": `set`.
std::vector<nlohmann::json> EvalLines(const std::string& run, const std::string& set) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string text; std::getline(in, text);) {
    nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
    if (line.is_object() && line.value("event", "") == "eval" && line.value("set", "") == set) lines.push_back(line);
  }
  return lines;
}

class ValidationJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist)) {
      GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    }
    dir_ = MakeTempDir("validation");
    spec_ = dir_ + "/early-stop.pbtxt";
    std::ofstream(spec_) << kSpec;
  }

  CommandResult Train(const std::string& run, const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"train", spec_, "--run-dir", run, "--threads", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    return RunTessera(args);
  }

  std::string dir_, spec_;
};

TEST_F(ValidationJobTest, AJobWhoseValidationLossRisesStopsEarlyAndExportsItsBestCheckpoint) {
  const std::string run = dir_ + "/run";
  const CommandResult r = Train(run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json s = ReadJson(run + "/summary.json");
  ASSERT_TRUE(s.is_object()) << FileText(run + "/summary.json");
  EXPECT_EQ(s["examples_per_epoch"], 2700);
  EXPECT_EQ(s["validation_examples"], 300);
  ASSERT_EQ(s["stopped_early"], true) << s.dump();
  const int stopped = s["stopped_at_epoch"];
  const int best_epoch = s["best_epoch"];
  const int64_t best_step = s["best_step"];
  EXPECT_LT(stopped, 8);
  EXPECT_LT(best_epoch, stopped);
  EXPECT_EQ(stopped - best_epoch, 2) << "patience 2";
  EXPECT_EQ(s["best_metric"]["name"], "validation_loss");
  EXPECT_NE(r.output.find("stopped early after epoch " + std::to_string(stopped)), std::string::npos) << r.output;

  // One validation per epoch trained, the test set once, after the last.
  const std::vector<nlohmann::json> validations = EvalLines(run, "validation");
  ASSERT_EQ(static_cast<int>(validations.size()), stopped);
  for (size_t e = 0; e < validations.size(); ++e) {
    EXPECT_EQ(validations[e]["epoch"], static_cast<int>(e) + 1);
    EXPECT_EQ(validations[e]["examples"], 300);
  }
  // The best epoch's loss is the lowest; the summary has it to the last digit.
  const double best_loss = validations.back()["best_value"];
  EXPECT_EQ(s["best_metric"]["value"].get<double>(), best_loss);
  EXPECT_NEAR(validations[best_epoch - 1]["validation_loss"].get<double>(), best_loss, 1e-8 * best_loss);
  EXPECT_EQ(validations[best_epoch - 1]["improved"], true);
  for (int e = best_epoch; e < stopped; ++e) {
    EXPECT_GE(validations[e]["validation_loss"].get<double>(), best_loss) << "epoch " << e + 1;
  }
  EXPECT_EQ(validations.back()["stop"], true);
  const std::vector<nlohmann::json> tests = EvalLines(run, "test");
  ASSERT_EQ(tests.size(), 1u);
  EXPECT_EQ(tests[0]["epoch"], stopped);
  EXPECT_EQ(tests[0]["examples"], 1000);

  // The best checkpoint outlived keep_last 1, beside the last one.
  const std::string best = s["best_checkpoint"];
  EXPECT_TRUE(std::filesystem::equivalent(best, run + "/checkpoints/" + CheckpointName(best_step))) << best;
  auto manifest = ReadManifest(best);
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->step(), best_step);
  EXPECT_EQ(manifest->cursor().epoch(), best_epoch);
  int committed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(run + "/checkpoints")) {
    committed += FileExists(entry.path().string() + "/MANIFEST");
  }
  EXPECT_EQ(committed, 2) << "the last and the best";

  // export --best exports it.
  const std::string repo = dir_ + "/repo";
  const CommandResult exported = RunTessera({"export", run, "--best", "--noevaluate", "--out", repo + "/m"});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("the best checkpoint of " + run + " (epoch " + std::to_string(best_epoch) + ")"),
            std::string::npos)
      << exported.output;
  const nlohmann::json version = ReadJson(repo + "/m/1/manifest.json");
  ASSERT_TRUE(version.is_object()) << FileText(repo + "/m/1/manifest.json");
  EXPECT_EQ(version["source"]["step"], best_step);
  EXPECT_TRUE(std::filesystem::equivalent(version["source"]["checkpoint"].get<std::string>(), best));
  // Without --best: the newest checkpoint, the last epoch's.
  const CommandResult newest = RunTessera({"export", run, "--noevaluate", "--out", repo + "/m"});
  ASSERT_EQ(newest.exit_code, 0) << newest.output;
  EXPECT_GT(ReadJson(repo + "/m/2/manifest.json")["source"]["step"].get<int64_t>(), best_step);
  // Fine-tuning the best checkpoint runs the epochs asked for, without early stopping.
  const CommandResult tuned = RunTessera({"export", run, "--best", "--noevaluate", "--prune-sparsity", "0.5",
                                          "--fine-tune-epochs", "1", "--threads", "1", "--out", repo + "/m"});
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_EQ(ReadJson(repo + "/m/3/manifest.json")["source"]["step"], best_step);
}

// Exact resume: a job stopped after 2 epochs and resumed for the rest
// validates, picks its best epoch and stops as the uninterrupted one does,
// and ends with the same parameters.
TEST_F(ValidationJobTest, AResumedJobValidatesAndStopsAsAnUninterruptedOne) {
  const std::string whole = dir_ + "/whole", resumed = dir_ + "/resumed";
  CommandResult r = Train(whole);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Train(resumed, {"--epochs", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunTessera({"resume", resumed, "--epochs", "8", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const nlohmann::json a = ReadJson(whole + "/summary.json"), b = ReadJson(resumed + "/summary.json");
  ASSERT_TRUE(a.is_object() && b.is_object());
  for (const char* key : {"best_epoch", "best_step", "best_metric", "stopped_early", "stopped_at_epoch",
                          "params_sha256", "test_loss"}) {
    EXPECT_EQ(a[key], b[key]) << key;
  }
  const std::string best = b["best_checkpoint"];
  EXPECT_TRUE(std::filesystem::equivalent(best, resumed + "/checkpoints/" + CheckpointName(b["best_step"].get<int64_t>())))
      << best;
  EXPECT_TRUE(FileExists(best + "/MANIFEST"));
  // Every epoch's validation, bit for bit (each epoch's last line: the resumed
  // run's own for the epochs after the resume).
  const std::vector<nlohmann::json> va = EvalLines(whole, "validation"), vb = EvalLines(resumed, "validation");
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) {
    for (const char* key : {"epoch", "validation_loss", "best_epoch", "best_value", "evaluations_without_improvement"}) {
      EXPECT_EQ(va[i][key], vb[i][key]) << "validation " << i + 1 << " " << key;
    }
  }
  EXPECT_EQ(va.back()["stop"], vb.back()["stop"]);
}

TEST_F(ValidationJobTest, ExportBestOfARunWithoutOneIsOneLine) {
  const std::string run = dir_ + "/plain";
  ASSERT_OK(MakeDirs(run));
  std::ofstream(run + "/summary.json") << R"({"name": "plain", "test_accuracy": 0.8})";
  const CommandResult r = RunTessera({"export", run, "--best", "--out", dir_ + "/repo/m"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(r.output, "tessera export: " + run + " has no best checkpoint: its job had no validation split "
                                                 "(data.validation_fraction or data.validation_files)\n");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/repo/m/1"));
}

}  // namespace
}  // namespace tessera
