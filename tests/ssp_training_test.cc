// SSP with real processes (`tessera train`, 2 servers, 2 workers, a sparse
// table and dense layers on click logs): staleness 0 trains the bits BSP
// does, and with a worker slowed on purpose no step of any worker trains on
// parameters more than `staleness` steps old, while every example is
// trained. The slowed worker only makes staleness likely; what is asserted
// holds however the steps interleave.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

constexpr int kTrainRows = 6000;
constexpr int kBatch = 32;
constexpr int kWorkers = 2;

void MakeCriteo(const std::string& path, int rows, int rows_seed) {
  auto child = ChildProcess::Start("make_criteo",
                                   {TESSERA_MAKE_CRITEO, "--rows", std::to_string(rows), "--seed", "5", "--rows_seed",
                                    std::to_string(rows_seed), "--vocab", "5000", "--out", path},
                                   path + ".log");
  ASSERT_OK(child.status());
  ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(path + ".log");
}

// `consistency` with `staleness`; checkpoints inside the epochs, so cuts are
// taken while the servers hold steps ahead.
std::string Spec(const std::string& dir, const std::string& consistency, int staleness) {
  return R"pb(
    name: "ssp"
    data { format: CRITEO dir: ")pb" + dir + R"pb(" train_files: "train.tsv.gz" test_files: "test.tsv.gz" }
    model {
      sparse_table {
        name: "ids"
        dim: 8
        optimizer { type: ADAGRAD learning_rate: 0.05 }
      }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.002 }
    batch_size: )pb" + std::to_string(kBatch) + R"pb(
    epochs: 2
    seed: 3
    consistency: )pb" + consistency + R"pb(
    staleness: )pb" + std::to_string(staleness) + R"pb(
    checkpoint { every_steps: 40 keep_last: 2 }
  )pb";
}

// The numbers of a flat JSON array of integers, e.g. "steps_by_staleness".
std::vector<int64_t> JsonIntegers(const std::string& json, const std::string& key) {
  std::vector<int64_t> values;
  const size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return values;
  size_t p = json.find('[', at);
  const size_t end = json.find(']', at);
  if (p == std::string::npos || end == std::string::npos) return values;
  ++p;
  while (p < end) {
    while (p < end && (json[p] == ',' || json[p] == ' ')) ++p;
    if (p == end) break;
    char* next = nullptr;
    values.push_back(std::strtoll(json.c_str() + p, &next, 10));
    p = static_cast<size_t>(next - json.c_str());
  }
  return values;
}

class SspTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("ssp-training"));
    MakeCriteo(*dir_ + "/train.tsv.gz", kTrainRows, 0);
    MakeCriteo(*dir_ + "/test.tsv.gz", 1000, 1);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // Trains the spec in a run directory of its own; returns summary.json.
  static std::string Train(const std::string& name, const std::string& consistency, int staleness,
                           const std::vector<std::string>& flags = {}) {
    const std::string spec = *dir_ + "/" + name + ".pbtxt";
    std::ofstream(spec) << Spec(*dir_, consistency, staleness);
    std::vector<std::string> args = {"train", spec, "--run-dir", *dir_ + "/" + name, "--threads", "1",
                                     "--progress", "none"};
    args.insert(args.end(), flags.begin(), flags.end());
    CommandResult r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return FileText(*dir_ + "/" + name + "/summary.json");
  }
  static std::string* dir_;
};
std::string* SspTrainingTest::dir_ = nullptr;

TEST_F(SspTrainingTest, StalenessZeroTrainsTheBitsOfBsp) {
  const std::string bsp = Train("bsp", "BSP", 0);
  const std::string ssp = Train("ssp0", "SSP", 0);
  ASSERT_FALSE(JsonString(bsp, "params_sha256").empty()) << bsp;
  EXPECT_EQ(JsonString(bsp, "params_sha256"), JsonString(ssp, "params_sha256"));
  EXPECT_EQ(JsonNumber(bsp, "test_loss"), JsonNumber(ssp, "test_loss"));
  EXPECT_EQ(JsonNumber(bsp, "auc"), JsonNumber(ssp, "auc"));
  EXPECT_EQ(JsonString(ssp, "consistency"), "SSP");
  EXPECT_EQ(JsonNumber(ssp, "max_staleness", -1), 0) << ssp;
}

TEST_F(SspTrainingTest, ASlowWorkerNeverLetsAStepExceedTheBound) {
  constexpr int kStaleness = 2;
  // Worker rank 1 sleeps before each of its steps; rank 0 may run ahead.
  const std::string summary =
      Train("slow", "SSP", kStaleness, {"--test-step-delay-ms", "20", "--test-step-delay-rank", "1"});
  ASSERT_EQ(JsonNumber(summary, "staleness", -1), kStaleness) << summary;
  EXPECT_LE(JsonNumber(summary, "max_staleness", -1), kStaleness) << summary;
  EXPECT_GE(JsonNumber(summary, "max_staleness", -1), 0) << summary;
  // Every step of every worker was counted, none beyond the bound.
  const std::vector<int64_t> by_staleness = JsonIntegers(summary, "steps_by_staleness");
  ASSERT_FALSE(by_staleness.empty()) << summary;
  EXPECT_LE(by_staleness.size(), static_cast<size_t>(kStaleness + 1)) << summary;
  int64_t steps = 0;
  for (int64_t n : by_staleness) steps += n;
  // Under SSP, as under BSP, every worker takes every global step.
  EXPECT_EQ(steps, kWorkers * static_cast<int64_t>(JsonNumber(summary, "steps"))) << summary;
  // Every example trained in both epochs, and the job learned something.
  const std::string rows = std::to_string(kTrainRows);
  EXPECT_NE(summary.find("\"examples_by_epoch\": [" + rows + ", " + rows + "]"), std::string::npos) << summary;
  EXPECT_GT(JsonNumber(summary, "auc"), 0.55) << summary;
  // Each worker's log says what it trained with.
  for (int w = 0; w < kWorkers; ++w) {
    const std::string log = FileText(*dir_ + "/slow/logs/worker-" + std::to_string(w) + ".log");
    EXPECT_NE(log.find("max staleness"), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace tessera
