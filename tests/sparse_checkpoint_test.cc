// Incremental checkpoints of sparse tables, with real processes (`tessera
// train`, 2 servers, 2 workers, a cut every 40 steps, a full file every 3
// cuts): the later cuts write only the rows changed, `tessera inspect` says
// so and refuses a chain whose base is missing or damaged, a resume from an
// incremental cut is bit for bit the uninterrupted run even with the older
// checkpoints (its bases) deleted, or onto three servers; and summary.json
// counts the ids admission refused and the rows admitted and expired.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/checkpoint_manifest.h"
#include "core/sha256.h"
#include "server/sparse_table_file.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

void MakeCriteo(const std::string& path, int rows, int rows_seed) {
  auto child = ChildProcess::Start("make_criteo",
                                   {TESSERA_MAKE_CRITEO, "--rows", std::to_string(rows), "--seed", "5", "--rows_seed",
                                    std::to_string(rows_seed), "--vocab", "20000", "--out", path},
                                   path + ".log");
  ASSERT_OK(child.status());
  ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(path + ".log");
}

// 48000 training rows in batches of 8: 3000 steps an epoch, so that the
// epoch holds several cuts (due every 40 steps, each landing ahead of the
// workers: a few hundred steps apart here) and each covers a part of the
// data; `table_options` go into the sparse table's block (admission,
// expiry).
std::string Spec(const std::string& dir, int epochs, const std::string& table_options) {
  return R"pb(
    name: "ctr"
    data { format: CRITEO dir: ")pb" + dir + R"pb(" train_files: "train.tsv.gz" test_files: "test.tsv.gz" }
    model {
      sparse_table {
        name: "ids"
        dim: 16
        optimizer { type: ADAGRAD learning_rate: 0.05 }
        )pb" + table_options + R"pb(
      }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.002 }
    batch_size: 8
    epochs: )pb" + std::to_string(epochs) + R"pb(
    seed: 3
    checkpoint { every_steps: 40 keep_last: 50 sparse_full_every: 3 }
  )pb";
}

std::string Summary(const std::string& run) { return FileText(run + "/summary.json"); }

// A run's committed checkpoints, by step.
std::map<int64_t, std::string> Checkpoints(const std::string& run) {
  std::map<int64_t, std::string> checkpoints;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) {
    auto m = ReadManifest(e.path().string());
    if (m.ok()) checkpoints[m->step()] = e.path().string();
  }
  return checkpoints;
}

// The newest file of table 0 in server 0's part of `checkpoint`.
SparseTableFileHeader Newest(const std::string& checkpoint) {
  auto chain = ReadSparseTableChain(checkpoint + "/server-0", 0);
  EXPECT_OK(chain.status());
  return chain.ok() ? chain->front() : SparseTableFileHeader();
}

// The rows of the run's final checkpoint that were last updated before its
// final step, by part: the SHA-256 of (id, last step, floats). Rows of the
// final step are left out: the final cut may wait for the cut before it to
// commit while the final evaluation begins, and an evaluation's pull makes
// a row for each new id of the test set (at the final step), so how many
// such rows it holds depends on timing.
std::map<std::string, std::string> FinalTableRows(const std::string& run) {
  std::string note;
  auto checkpoint = ResolveCheckpoint(run, &note);
  EXPECT_OK(checkpoint.status());
  if (!checkpoint.ok()) return {};
  const int64_t final_step = ReadManifest(*checkpoint)->step();
  std::map<std::string, std::string> digests;
  for (const std::string part : {"server-0", "server-1"}) {
    Sha256 sha;
    auto table = ReadCheckpointSparseTable(*checkpoint + "/" + part, 0,
                                           [&](uint64_t id, const float* row, int64_t last_step) {
                                             if (last_step >= final_step) return OkStatus();
                                             sha.Update(&id, sizeof(id));
                                             sha.Update(&last_step, sizeof(last_step));
                                             sha.Update(row, sizeof(float) * 32);  // 16 values, 16 AdaGrad sums
                                             return OkStatus();
                                           });
    EXPECT_OK(table.status());
    digests[part] = sha.HexDigest();
  }
  return digests;
}

class SparseCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("sparse-checkpoint"));
    MakeCriteo(*dir_ + "/train.tsv.gz", 48000, 0);
    MakeCriteo(*dir_ + "/test.tsv.gz", 2000, 1);
    std::ofstream(*dir_ + "/ctr.pbtxt") << Spec(*dir_, 1, "");
    CommandResult r = RunTessera({"train", *dir_ + "/ctr.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A copy of the run, and in it the first cut inside an epoch whose table
  // files are incremental (an older checkpoint holds its base).
  static std::string CopyWithIncrementalCut(const std::string& name, std::string* checkpoint) {
    const std::string copy = *dir_ + "/" + name;
    fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
    for (const auto& [step, dir] : Checkpoints(copy)) {
      auto m = ReadManifest(dir);
      if (m.ok() && m->cursor().steps_into_epoch() > 0 && Newest(dir).incremental) {
        *checkpoint = dir;
        break;
      }
    }
    EXPECT_FALSE(checkpoint->empty()) << "no incremental cut inside an epoch";
    return copy;
  }
  static std::string* dir_;
};
std::string* SparseCheckpointTest::dir_ = nullptr;

TEST_F(SparseCheckpointTest, LaterCutsWriteOnlyTheRowsChangedAndInspectSaysSo) {
  int full = 0, incremental = 0;
  for (const auto& [step, dir] : Checkpoints(*dir_ + "/run")) {
    const SparseTableFileHeader newest = Newest(dir);
    if (!newest.incremental) {
      ++full;
      continue;
    }
    ++incremental;
    // Fewer rows, and fewer bytes, than the table holds at that cut.
    int64_t rows = 0;
    for (const std::string part : {"/server-0", "/server-1"}) {
      auto table = ReadCheckpointSparseTable(dir + part, 0, [](uint64_t, const float*, int64_t) { return OkStatus(); });
      ASSERT_OK(table.status());
      rows += static_cast<int64_t>(table->count);
      if (part == "/server-0") {
        EXPECT_LT(newest.count, table->count) << dir;
        const uint64_t full_bytes = table->count * (16 + 4 * (newest.dim + newest.state_floats));
        EXPECT_LT(fs::file_size(dir + part + "/sparse-0.rows"), full_bytes) << dir;
      }
    }
    EXPECT_LE(newest.chain_length, 3u);
    CommandResult inspected = RunTessera({"inspect", dir, "--json"});
    ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
    EXPECT_EQ(JsonString(inspected.output, "kind"), "incremental") << inspected.output;
    EXPECT_EQ(JsonNumber(inspected.output, "rows"), static_cast<double>(rows)) << inspected.output;
  }
  EXPECT_GE(full, 1);
  EXPECT_GE(incremental, 2);
  CommandResult listed = RunTessera({"inspect", *dir_ + "/run"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("sparse table"), std::string::npos) << listed.output;
}

TEST_F(SparseCheckpointTest, AResumeFromAnIncrementalCutWithItsBasesDeletedIsExact) {
  std::string checkpoint;
  const std::string copy = CopyWithIncrementalCut("resumed", &checkpoint);
  ASSERT_FALSE(checkpoint.empty());
  // keep_last would delete these: the cut's chain is in its own directory.
  const int64_t cut = ReadManifest(checkpoint)->step();
  for (const auto& [step, dir] : Checkpoints(copy)) {
    if (step < cut) fs::remove_all(dir);
  }
  CommandResult inspected = RunTessera({"inspect", checkpoint});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string a = Summary(*dir_ + "/run"), b = Summary(copy);
  EXPECT_EQ(JsonNumber(b, "resumed_from_step"), static_cast<double>(cut)) << b;
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss"));
  // The rows themselves, part by part, chains applied.
  EXPECT_EQ(FinalTableRows(*dir_ + "/run"), FinalTableRows(copy));
}

TEST_F(SparseCheckpointTest, AResumeFromAnIncrementalCutOntoThreeServersRepartitionsTheRows) {
  std::string checkpoint;
  const std::string copy = CopyWithIncrementalCut("three-servers", &checkpoint);
  ASSERT_FALSE(checkpoint.empty());
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1", "--servers", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string a = Summary(*dir_ + "/run"), b = Summary(copy);
  EXPECT_EQ(JsonString(a, "params_sha256"), JsonString(b, "params_sha256"));
  EXPECT_EQ(JsonNumber(a, "test_loss"), JsonNumber(b, "test_loss")) << "the rows' values differ";
  std::string note;
  auto final_checkpoint = ResolveCheckpoint(copy, &note);
  ASSERT_OK(final_checkpoint.status());
  EXPECT_EQ(SparseTableDigests(*final_checkpoint).size(), 3u);
}

TEST_F(SparseCheckpointTest, InspectRefusesAChainWithAMissingOrDamagedBase) {
  std::string checkpoint;
  CopyWithIncrementalCut("damaged-source", &checkpoint);
  ASSERT_FALSE(checkpoint.empty());
  const std::string base = "server-0/" + Newest(checkpoint).base_file;
  const std::string missing = *dir_ + "/missing-base";
  fs::copy(checkpoint, missing, fs::copy_options::recursive);
  fs::remove(missing + "/" + base);
  CommandResult r = RunTessera({"inspect", missing});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(base), std::string::npos) << r.output;

  const std::string damaged = *dir_ + "/damaged-base";
  fs::copy(checkpoint, damaged, fs::copy_options::recursive);
  {
    std::fstream f(damaged + "/" + base, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  r = RunTessera({"inspect", damaged});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(base), std::string::npos) << r.output;
}

// Admission after 3 updates and expiry after 30 steps untouched: the counts
// in summary.json agree with the rows of the final checkpoint, whose chain
// holds the expired rows' tombstones.
TEST_F(SparseCheckpointTest, SummaryCountsAdmissionAndExpiry) {
  std::ofstream(*dir_ + "/counts.pbtxt") << Spec(*dir_, 1, "admit_after: 3 expire_after_steps: 30");
  CommandResult r = RunTessera({"train", *dir_ + "/counts.pbtxt", "--run-dir", *dir_ + "/counts-run", "--threads",
                                "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string summary = Summary(*dir_ + "/counts-run");
  const double refused = JsonNumber(summary, "ids_refused", -1);
  const double admitted = JsonNumber(summary, "rows_admitted", -1);
  const double expired = JsonNumber(summary, "rows_expired", -1);
  EXPECT_GT(refused, 0) << summary;
  EXPECT_GT(admitted, 0) << summary;
  EXPECT_GT(expired, 0) << summary;
  CommandResult inspected = RunTessera({"inspect", *dir_ + "/counts-run", "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.output;
  EXPECT_EQ(JsonNumber(inspected.output, "rows"), admitted - expired) << summary << "\n" << inspected.output;
  // Without admission every row is admitted and no update refused.
  const std::string plain = Summary(*dir_ + "/run");
  EXPECT_EQ(JsonNumber(plain, "ids_refused", -1), 0) << plain;
  EXPECT_EQ(JsonNumber(plain, "rows_expired", -1), 0) << plain;
  EXPECT_GT(JsonNumber(plain, "rows_admitted", -1), 0) << plain;
}

}  // namespace
}  // namespace tessera
