// Click logs over sparse tables on the servers, with real processes
// (`tessera train`, 2 servers, 2 workers): the job learns the planted model,
// resumes bit for bit from a cut inside an epoch — onto the same or another
// number of servers — trains the same bits under a memory budget far below
// its table, and `tessera inspect` verifies and lists the table's rows.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/checkpoint_manifest.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// The planted model's ids: 26 fields of up to --vocab values each.
void MakeCriteo(const std::string& path, int rows, int rows_seed) {
  auto child = ChildProcess::Start("make_criteo",
                                   {TESSERA_MAKE_CRITEO, "--rows", std::to_string(rows), "--seed", "5", "--rows_seed",
                                    std::to_string(rows_seed), "--vocab", "20000", "--out", path},
                                   path + ".log");
  ASSERT_OK(child.status());
  ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(path + ".log");
}

// `budget_mb` > 0 limits each server's rows in memory.
std::string Spec(const std::string& dir, int budget_mb) {
  return R"pb(
    name: "ctr"
    data { format: CRITEO dir: ")pb" + dir + R"pb(" train_files: "train.tsv.gz" test_files: "test.tsv.gz" }
    model {
      sparse_table {
        name: "ids"
        dim: 16
        optimizer { type: ADAGRAD learning_rate: 0.05 }
        memory_budget_mb: )pb" + std::to_string(budget_mb) + R"pb(
      }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 32 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.002 }
    batch_size: 32
    epochs: 2
    seed: 3
    # 750 steps an epoch (seconds): a cut lands well inside it.
    checkpoint { every_steps: 100 keep_last: 20 }
  )pb";
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

class SparseTableTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("sparse-table-training"));
    MakeCriteo(*dir_ + "/train.tsv.gz", 48000, 0);
    MakeCriteo(*dir_ + "/test.tsv.gz", 4000, 1);
    std::ofstream(*dir_ + "/ctr.pbtxt") << Spec(*dir_, 0);
    CommandResult r = RunTessera({"train", *dir_ + "/ctr.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A copy of the run, resumed from its first cut inside an epoch with `flags`.
  std::string ResumeCopy(const std::string& name, const std::vector<std::string>& flags) {
    const std::string copy = *dir_ + "/" + name;
    fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
    std::string checkpoint;
    int64_t step = INT64_MAX;
    for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
      auto m = ReadManifest(e.path().string());
      if (m.ok() && m->cursor().steps_into_epoch() > 0 && m->step() < step) {
        checkpoint = e.path().string();
        step = m->step();
      }
    }
    EXPECT_FALSE(checkpoint.empty()) << "no checkpoint was cut inside an epoch";
    std::vector<std::string> args = {"resume", checkpoint, "--progress", "none", "--threads", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    CommandResult r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return copy;
  }
  static std::string* dir_;
};
std::string* SparseTableTrainingTest::dir_ = nullptr;

TEST_F(SparseTableTrainingTest, TheJobLearnsThePlantedModel) {
  const std::string summary = Summary(*dir_ + "/run");
  // The planted model reaches about 0.86 on these rows; the embedding rows
  // are what carries the signal (numeric features alone give far less).
  EXPECT_GT(JsonNumber(summary, "auc"), 0.68) << summary;
  EXPECT_FALSE(NewestCheckpointTableRows(*dir_ + "/run").empty());
}

TEST_F(SparseTableTrainingTest, ResumeFromACutInsideAnEpochIsExact) {
  const std::string copy = ResumeCopy("resumed", {});
  const std::string a = Summary(*dir_ + "/run"), b = Summary(copy);
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss"));
  // The rows themselves, file by file: the same ids on the same servers.
  EXPECT_EQ(NewestCheckpointTableRows(*dir_ + "/run"), NewestCheckpointTableRows(copy));
}

TEST_F(SparseTableTrainingTest, AResumeOntoThreeServersRepartitionsTheRowsExactly) {
  const std::string copy = ResumeCopy("three-servers", {"--servers", "3"});
  const std::string a = Summary(*dir_ + "/run"), b = Summary(copy);
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss")) << "the rows' values differ";
  EXPECT_EQ(NewestCheckpointTableRows(copy).size(), 3u);
}

// Each server holds at most 1 MiB of rows in memory; the table (rows of 16
// values and 16 AdaGrad accumulators, 176 bytes with the store's
// bookkeeping) is at least 4x that on each server.
TEST_F(SparseTableTrainingTest, ABudgetFarBelowTheTableTrainsTheSameBits) {
  std::ofstream(*dir_ + "/budget.pbtxt") << Spec(*dir_, 1);
  CommandResult r = RunTessera({"train", *dir_ + "/budget.pbtxt", "--run-dir", *dir_ + "/budget-run", "--threads",
                                "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CommandResult inspected = RunTessera({"inspect", *dir_ + "/budget-run", "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
  const double rows = JsonNumber(inspected.output, "rows");
  EXPECT_GE(rows * 176, 4.0 * 2 * (1 << 20)) << inspected.output;
  const std::string a = Summary(*dir_ + "/run"), b = Summary(*dir_ + "/budget-run");
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss"));
  EXPECT_EQ(NewestCheckpointTableRows(*dir_ + "/run"), NewestCheckpointTableRows(*dir_ + "/budget-run"));
  // Rows did go to disk and come back (the server's last line on its table).
  const std::string log = FileText(*dir_ + "/budget-run/logs/server-0.log");
  const size_t at = log.find("sparse table 'ids': ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_EQ(line.find(" 0 evictions"), std::string::npos) << line;
  EXPECT_EQ(line.find(" 0 reloads"), std::string::npos) << line;
}

TEST_F(SparseTableTrainingTest, InspectVerifiesAndListsTheTable) {
  CommandResult r = RunTessera({"inspect", *dir_ + "/run"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("sparse table"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ids"), std::string::npos) << r.output;
  // A damaged table file is refused by name.
  std::string note;
  auto checkpoint = ResolveCheckpoint(*dir_ + "/run", &note);
  ASSERT_OK(checkpoint.status());
  const std::string damaged = *dir_ + "/damaged";
  fs::copy(*checkpoint, damaged, fs::copy_options::recursive);
  {
    std::fstream f(damaged + "/server-0/sparse-0.rows", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  CommandResult bad = RunTessera({"inspect", damaged});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("sparse-0.rows"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tessera
