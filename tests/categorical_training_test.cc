// Training on a table with categorical columns, with real processes (issue
// 15): a label that only a string column tells learns with a
// column_embedding and not without it; the vocabulary is stored in the run
// directory, a resume reads it and ends bitwise where an uninterrupted run
// does, and without it a resume is one line and exit 2; an export records
// the stored vocabulary.
#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "proto/checkpoint.pb.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Twelve cities; a city's class is its index mod 4. Drawn with weights so that
// counts differ (the vocabulary's order is then by count).
const std::vector<std::string> kCities = {"Oslo",  "Lima",  "Quito", "Accra", "Hanoi", "Perth",
                                          "Cusco", "Turku", "Basel", "Dakar", "Sucre", "Malmo"};

// A CSV of `n` records: two numeric noise columns, the city (sometimes
// missing: class 0), a hashed code that says nothing, and the label.
std::string CityCsv(uint32_t seed, int n, std::map<std::string, int>* counts) {
  std::mt19937 rng(seed);
  std::string text = "x1,city,code,x2,label\n";
  for (int i = 0; i < n; ++i) {
    int left = static_cast<int>(rng() % 78);  // city c with weight 12 - c (sum 78)
    int city = 0;
    while (left >= 12 - city) {
      left -= 12 - city;
      ++city;
    }
    const bool missing = rng() % 20 == 0;
    const int label = missing ? 0 : city % 4;
    const std::string name = missing ? "" : kCities[city];
    if (!missing && counts != nullptr) ++(*counts)[name];
    text += std::to_string(static_cast<int>(rng() % 1000) - 500) + "," + name + "," + std::to_string(rng() % 50) +
            "," + std::to_string(rng() % 7) + "," + std::to_string(label) + "\n";
  }
  return text;
}

std::string Spec(const std::string& dir, const std::string& table, const std::string& first_layer) {
  return R"pb(
    name: "categorical"
    model {
      )pb" + first_layer + R"pb(
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 4 } }
    }
    data { format: CSV dir: ")pb" + dir + R"pb(" train_files: "train.csv" test_files: "test.csv.gz"
           table { label_column: "label" )pb" + table + R"pb( } }
    cluster { servers: 2 workers: 2 }
    optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }
    batch_size: 32
    epochs: 3
    checkpoint { every_steps: 20 keep_last: 20 }
  )pb";
}

constexpr char kCategorical[] = R"pb(
  categorical_columns { name: "city" vocabulary { min_count: 1 } }
  categorical_columns { name: "code" hash_buckets: 64 })pb";
constexpr char kColumnEmbedding[] = "layer { column_embedding { embedding_dim: 4 } }";

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

// The run's earliest checkpoint after its first epoch ("" when none).
std::string FirstCheckpointAfterEpochOne(const std::string& run) {
  std::string checkpoint;
  int64_t earliest = -1;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok() && m->cursor().epoch() >= 1 && (earliest < 0 || m->step() < earliest)) {
      earliest = m->step();
      checkpoint = e.path().string();
    }
  }
  return checkpoint;
}

class CategoricalTrainingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("categorical-training"));
    counts_ = new std::map<std::string, int>();
    WriteText(*dir_ + "/train.csv", CityCsv(1, 2000, counts_));
    WriteGzText(*dir_ + "/test.csv.gz", CityCsv(2, 500, nullptr));  // categorical fields read the same gzip'd
    WriteText(*dir_ + "/spec.pbtxt", Spec(*dir_, kCategorical, kColumnEmbedding));
    const CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *dir_ + "/run", "--threads",
                                        "1", "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static std::string* dir_;
  static std::map<std::string, int>* counts_;  // the training records' cities
};
std::string* CategoricalTrainingTest::dir_ = nullptr;
std::map<std::string, int>* CategoricalTrainingTest::counts_ = nullptr;

TEST_F(CategoricalTrainingTest, TheCityColumnTeachesWhatTheNumbersCannot) {
  const std::string with = Summary(*dir_ + "/run");
  EXPECT_GT(JsonNumber(with, "test_accuracy"), 0.95) << with;
  // The same data without the categorical columns: only the noise is left.
  WriteText(*dir_ + "/numeric.pbtxt", Spec(*dir_, R"pb(feature_columns: ["x1", "x2"])pb", ""));
  const CommandResult r = RunTessera({"train", *dir_ + "/numeric.pbtxt", "--run-dir", *dir_ + "/numeric-run",
                                      "--threads", "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string without = Summary(*dir_ + "/numeric-run");
  EXPECT_LT(JsonNumber(without, "test_accuracy"), 0.6) << without;
}

TEST_F(CategoricalTrainingTest, TheVocabularyIsStoredByDescendingCount) {
  auto bytes = ReadFileToString(*dir_ + "/run/table_vocabulary.pb");
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  proto::TableVocabularies stored;
  ASSERT_TRUE(stored.ParseFromString(*bytes));
  EXPECT_EQ(stored.format_version(), 1);
  ASSERT_EQ(stored.columns_size(), 2);
  EXPECT_EQ(stored.columns(1).hash_buckets(), 64);
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [city, count] : *counts_) by_count.emplace_back(-count, city);
  std::sort(by_count.begin(), by_count.end());
  std::vector<std::string> expected;
  for (const auto& entry : by_count) expected.push_back(entry.second);
  const std::vector<std::string> vocabulary(stored.columns(0).vocabulary().begin(),
                                            stored.columns(0).vocabulary().end());
  EXPECT_EQ(vocabulary, expected);
}

TEST_F(CategoricalTrainingTest, ResumeIsBitwiseExactAndNeedsTheStoredVocabulary) {
  const std::string copy = *dir_ + "/copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  const std::string checkpoint = FirstCheckpointAfterEpochOne(copy);
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint after the first epoch";

  // Without the stored vocabulary a resume would guess the ids: refused before any process starts.
  fs::rename(copy + "/table_vocabulary.pb", copy + "/saved.pb");
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("table_vocabulary.pb is missing"), std::string::npos) << r.output;
  fs::rename(copy + "/saved.pb", copy + "/table_vocabulary.pb");

  r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonString(Summary(copy), "params_sha256"), JsonString(Summary(*dir_ + "/run"), "params_sha256"));
}

// The resumed scheduler takes its ids from the stored file, not from a new
// count: with two cities' ids swapped there, the same resume ends elsewhere.
TEST_F(CategoricalTrainingTest, AResumeUsesTheStoredIdsNotANewCount) {
  const std::string copy = *dir_ + "/swapped";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  auto bytes = ReadFileToString(copy + "/table_vocabulary.pb");
  ASSERT_TRUE(bytes.ok());
  proto::TableVocabularies stored;
  ASSERT_TRUE(stored.ParseFromString(*bytes));
  stored.mutable_columns(0)->mutable_vocabulary()->SwapElements(0, 1);
  WriteText(copy + "/table_vocabulary.pb", stored.SerializeAsString());
  const std::string checkpoint = FirstCheckpointAfterEpochOne(copy);
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint after the first epoch";
  const CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(JsonString(Summary(copy), "params_sha256"), JsonString(Summary(*dir_ + "/run"), "params_sha256"));
}

// The export records the vocabulary the run stored when it started (the ids
// its parameters were trained with), not one counted again from the files:
// with two values swapped in the stored file, the manifest has them swapped.
// Without the file the export is one line and exit 2, and writes nothing.
TEST_F(CategoricalTrainingTest, ExportRecordsTheVocabularyTheRunStored) {
  const std::string copy = *dir_ + "/export-copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  auto bytes = ReadFileToString(copy + "/table_vocabulary.pb");
  ASSERT_TRUE(bytes.ok());
  proto::TableVocabularies stored;
  ASSERT_TRUE(stored.ParseFromString(*bytes));
  stored.mutable_columns(0)->mutable_vocabulary()->SwapElements(0, 1);
  WriteText(copy + "/table_vocabulary.pb", stored.SerializeAsString());
  CommandResult r = RunTessera({"export", copy, "--out", *dir_ + "/models/categorical", "--noevaluate"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json manifest = nlohmann::json::parse(FileText(*dir_ + "/models/categorical/1/manifest.json"));
  const nlohmann::json& columns = manifest["preprocessing"]["columns"];
  ASSERT_EQ(columns.size(), 4u) << manifest.dump();
  EXPECT_EQ(columns[2]["name"], "city");
  EXPECT_EQ(columns[2]["vocabulary"], nlohmann::json(std::vector<std::string>(stored.columns(0).vocabulary().begin(),
                                                                             stored.columns(0).vocabulary().end())));
  EXPECT_EQ(columns[3]["hash_buckets"], 64);

  fs::remove(copy + "/table_vocabulary.pb");
  r = RunTessera({"export", copy, "--out", *dir_ + "/models/no-vocabulary", "--noevaluate"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("reading the categorical columns' vocabularies: " + copy + "/table_vocabulary.pb is missing"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(*dir_ + "/models/no-vocabulary/1"));
}

// A mistake about a categorical column is one line and exit 2 before any process starts.
TEST(CategoricalSpecErrorTest, AnUnknownColumnIsOneLineBeforeAnyProcessStarts) {
  const std::string dir = MakeTempDir("categorical-errors");
  WriteText(dir + "/train.csv", CityCsv(3, 50, nullptr));
  WriteGzText(dir + "/test.csv.gz", CityCsv(4, 10, nullptr));
  WriteText(dir + "/spec.pbtxt",
            Spec(dir, R"pb(categorical_columns { name: "town" hash_buckets: 8 })pb", kColumnEmbedding));
  const CommandResult r = RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/train.csv: no column 'town' (data.table.categorical_columns); the header has x1, "
                                "city, code, x2, label"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(dir + "/run/logs/scheduler.log"));
}

}  // namespace
}  // namespace tessera
