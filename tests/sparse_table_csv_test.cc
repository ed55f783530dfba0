// A TSV table's categorical columns feeding a sparse table
// (data.table.sparse_ids), with real processes (`tessera train`, 2 servers,
// 2 workers): the same rows written as Criteo click logs and as a TSV table
// with a header train the same bits (column k's ids are field Ck's), the
// job learns, and it resumes bit for bit from its first checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/checkpoint_manifest.h"
#include "core/criteo_format.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Rows of a small planted model: C1 and C2 carry the signal through their
// values' weights, the other fields are noise; some fields are missing.
// Written twice: as Criteo's layout (integers) and as a TSV table with a
// header whose numeric columns hold CriteoNumeric of the integers already,
// printed so that they read back as the same floats.
void WriteRows(const std::string& criteo_path, const std::string& tsv_path, int rows, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> value(0, 199), small_value(0, 29), integer(-1, 60);
  std::bernoulli_distribution missing(0.1);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::string criteo, tsv = "label";
  for (const std::string& name : std::vector<std::string>(CriteoColumnNames().begin() + 1, CriteoColumnNames().end())) {
    tsv += "\t" + name;
  }
  tsv += "\n";
  for (int r = 0; r < rows; ++r) {
    std::string ints_criteo, ints_tsv, categorical;
    for (int i = 0; i < kCriteoIntegerFields; ++i) {
      const bool absent = missing(random);
      const int x = integer(random);
      ints_criteo += "\t" + (absent ? std::string() : std::to_string(x));
      char number[32];
      std::snprintf(number, sizeof(number), "%.9g", CriteoNumeric(absent ? std::nullopt : std::optional<int64_t>(x)));
      ints_tsv += "\t" + (absent ? std::string() : std::string(number));
    }
    double logit = -0.5;
    for (int c = 0; c < kCriteoCategoricalFields; ++c) {
      const int v = c < 2 ? small_value(random) : value(random);
      if (c >= 2 && missing(random)) {
        categorical += "\t";
        continue;
      }
      if (c < 2) logit += ((v * 7 + c) % 5 - 2) * 0.9;  // a fixed weight per value
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(v * 2654435761u + c));
      categorical += "\t" + std::string(hex);
    }
    const int label = uniform(random) < 1 / (1 + std::exp(-logit)) ? 1 : 0;
    criteo += std::to_string(label) + ints_criteo + categorical + "\n";
    tsv += std::to_string(label) + ints_tsv + categorical + "\n";
  }
  WriteGzText(criteo_path, criteo);
  WriteGzText(tsv_path, tsv);
}

// The TSV job's data block names its 26 categorical columns; the Criteo
// job's is CRITEO's own layout. Everything else is one spec.
std::string Spec(const std::string& dir, bool tsv) {
  std::string data = R"pb(data { format: CRITEO dir: ")pb" + dir +
                     R"pb(" train_files: "train.criteo.gz" test_files: "test.criteo.gz" })pb";
  if (tsv) {
    data = R"pb(data { format: TSV dir: ")pb" + dir +
           R"pb(" train_files: "train.tsv.gz" test_files: "test.tsv.gz"
             table { label_column: "label" scaling: NONE sparse_ids: true)pb";
    for (int c = 1; c <= kCriteoCategoricalFields; ++c) {
      data += " categorical_columns { name: \"C" + std::to_string(c) + "\" }";
    }
    data += " } }";
  }
  return "name: \"csv-ids\"\n" + data + R"pb(
    model {
      sparse_table { name: "ids" dim: 8 optimizer { type: ADAGRAD learning_rate: 0.05 } }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
      loss: SIGMOID_BINARY_CROSS_ENTROPY
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.005 }
    batch_size: 8
    epochs: 2
    seed: 7
    # 500 steps an epoch; a cut every 100 steps that the workers do not
    # outrun, and every epoch's end.
    checkpoint { every_steps: 100 keep_last: 20 }
  )pb";
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

class SparseTableCsvTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("sparse-table-csv"));
    WriteRows(*dir_ + "/train.criteo.gz", *dir_ + "/train.tsv.gz", 8000, 1);
    WriteRows(*dir_ + "/test.criteo.gz", *dir_ + "/test.tsv.gz", 2000, 2);
    for (const bool tsv : {false, true}) {
      const std::string name = tsv ? "tsv" : "criteo";
      std::ofstream(*dir_ + "/" + name + ".pbtxt") << Spec(*dir_, tsv);
      CommandResult r = RunTessera({"train", *dir_ + "/" + name + ".pbtxt", "--run-dir", *dir_ + "/" + name,
                                    "--threads", "1", "--progress", "none"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string* dir_;
};
std::string* SparseTableCsvTest::dir_ = nullptr;

TEST_F(SparseTableCsvTest, TheTsvJobLearnsFromItsCategoricalColumns) {
  const std::string summary = Summary(*dir_ + "/tsv");
  // C1 and C2's values carry the signal; the numeric columns none.
  EXPECT_GT(JsonNumber(summary, "auc"), 0.7) << summary;
  EXPECT_FALSE(NewestCheckpointTableRows(*dir_ + "/tsv").empty());
}

TEST_F(SparseTableCsvTest, TheSameRowsAsCriteoLogsTrainTheSameBits) {
  const std::string a = Summary(*dir_ + "/criteo"), b = Summary(*dir_ + "/tsv");
  ASSERT_FALSE(JsonString(a, "params_sha256").empty()) << a;
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss"));
  ASSERT_FALSE(NewestCheckpointTableRows(*dir_ + "/criteo").empty());
  EXPECT_EQ(NewestCheckpointTableRows(*dir_ + "/criteo"), NewestCheckpointTableRows(*dir_ + "/tsv"));
}

// From the job's first cut: one inside an epoch when the scheduler cut one
// (it skips a cut the workers outran), else the first epoch's end; either
// way the resumed job trains the rest of the job again.
TEST_F(SparseTableCsvTest, ResumeFromTheFirstCutIsExact) {
  const std::string copy = *dir_ + "/tsv-resumed";
  fs::copy(*dir_ + "/tsv", copy, fs::copy_options::recursive);
  std::string checkpoint;
  int64_t step = INT64_MAX;
  for (const auto& e : fs::directory_iterator(copy + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && m->step() < step) {
      checkpoint = e.path().string();
      step = m->step();
    }
  }
  ASSERT_LT(step, 1000) << "no checkpoint before the job's last step (2 epochs of 500)";
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string a = Summary(*dir_ + "/tsv"), b = Summary(copy);
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss"));
  EXPECT_EQ(NewestCheckpointTableRows(*dir_ + "/tsv"), NewestCheckpointTableRows(copy));
}

}  // namespace
}  // namespace tessera
