// Bad input to a sparse job, with real processes (`tessera train`, 2
// servers, 2 workers): an id field that does not parse, a memory budget
// below one batch's rows and a table too large for the disk each end the
// job before it trains, with exit 2, one line naming the field or the
// numbers, and nothing left running; a disk that fills while a server
// spills rows ends the job with a line that says so, and the newest
// checkpoint still verifies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "core/criteo_format.h"
#include "core/file_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// `rows` Criteo lines whose categorical fields take up to `vocab` values
// each (hex, as the layout wants); line `bad_line` (1-based; 0: none) gets
// `bad_field` (a column of CriteoColumnNames) set to `bad_value`.
std::string CriteoLines(int rows, int vocab, uint64_t seed, int bad_line = 0, int bad_field = 0,
                        const std::string& bad_value = "") {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> value(0, vocab - 1), integer(0, 50), label(0, 1);
  std::string text;
  for (int r = 1; r <= rows; ++r) {
    std::vector<std::string> fields = {std::to_string(label(random))};
    for (int i = 0; i < kCriteoIntegerFields; ++i) fields.push_back(std::to_string(integer(random)));
    for (int c = 0; c < kCriteoCategoricalFields; ++c) {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(value(random)) * 2654435761u + c);
      fields.push_back(hex);
    }
    if (r == bad_line) fields[bad_field] = bad_value;
    for (size_t f = 0; f < fields.size(); ++f) text += (f > 0 ? "\t" : "") + fields[f];
    text += "\n";
  }
  return text;
}

// `schedule`: the epochs and the checkpoints.
std::string Spec(const std::string& dir, int budget_mb, int batch_size,
                 const std::string& schedule = "epochs: 1 checkpoint { every_steps: 10 keep_last: 5 }") {
  return R"pb(
    name: "bad-sparse"
    data { format: CRITEO dir: ")pb" + dir + R"pb(" train_files: "train.tsv" test_files: "test.tsv" }
    model {
      sparse_table { name: "ids" dim: 16 memory_budget_mb: )pb" + std::to_string(budget_mb) + R"pb( }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 8 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    cluster { servers: 2 workers: 2 }
    batch_size: )pb" + std::to_string(batch_size) + "\n" + schedule;
}

// Runs `tessera train` on dir/spec.pbtxt into dir/run with `flags`.
CommandResult Train(const std::string& dir, const std::vector<std::string>& flags = {}) {
  std::vector<std::string> args = {"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--threads", "1",
                                   "--progress", "none", "--max-restarts", "0"};
  args.insert(args.end(), flags.begin(), flags.end());
  return RunTessera(args);
}

// The job ended before training: exit 2, `message` in its output, no
// summary, and none of its processes left.
void ExpectRefusedBeforeTraining(const CommandResult& r, const std::string& dir, const std::string& message) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(message));
  EXPECT_FALSE(FileExists(dir + "/run/summary.json"));
  EXPECT_TRUE(ProcessesMatching(dir + "/run").empty()) << "processes of the job are still running";
}

TEST(SparseBadInputTest, ACategoricalFieldThatIsNotHexNamesFileLineAndField) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), CriteoLines(200, 50, 1, /*bad_line=*/7, /*bad_field=*/1 + 13 + 4, "zz-top"));
  WriteText(dir.File("test.tsv"), CriteoLines(50, 50, 2));
  std::ofstream(dir.File("spec.pbtxt")) << Spec(dir.path(), 0, 16);
  ExpectRefusedBeforeTraining(Train(dir.path()), dir.path(),
                              dir.File("train.tsv") + ":7: column \"C5\": expected up to 16 hex digits (or nothing, "
                                                      "for a missing value), got \"zz-top\"");
}

TEST(SparseBadInputTest, ANumericFieldThatIsNotAnIntegerNamesFileLineAndField) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), CriteoLines(200, 50, 1));
  WriteText(dir.File("test.tsv"), CriteoLines(50, 50, 2, /*bad_line=*/3, /*bad_field=*/2, "1e3"));
  std::ofstream(dir.File("spec.pbtxt")) << Spec(dir.path(), 0, 16);
  ExpectRefusedBeforeTraining(Train(dir.path()), dir.path(),
                              dir.File("test.tsv") + ":3: column \"I2\": expected an integer (or nothing, for a "
                                                     "missing value), got \"1e3\"");
}

TEST(SparseBadInputTest, ABudgetBelowOneBatchsRowsGivesTheNumbers) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), CriteoLines(200, 50, 1));
  WriteText(dir.File("test.tsv"), CriteoLines(50, 50, 2));
  // 1 MiB holds 5957 rows of 176 bytes; a batch of 256 reads 6656 ids.
  std::ofstream(dir.File("spec.pbtxt")) << Spec(dir.path(), 1, 256);
  ExpectRefusedBeforeTraining(Train(dir.path()), dir.path(),
                              "memory_budget_mb 1 holds 5957 rows of 176 bytes, fewer than one batch's 6656 ids");
}

TEST(SparseBadInputTest, ATableTooLargeForTheDiskIsRefusedBeforeTraining) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), CriteoLines(400, 1000, 1));
  WriteText(dir.File("test.tsv"), CriteoLines(50, 50, 2));
  std::ofstream(dir.File("spec.pbtxt")) << Spec(dir.path(), 1, 16);
  // About 400 x 26 distinct ids x 176 bytes: some 2 MiB, on a "disk" of 1 MiB.
  ExpectRefusedBeforeTraining(Train(dir.path(), {"--test_spill_free_bytes=1048576"}), dir.path(),
                              "model.sparse_table 'ids' may spill more than the disk holds: about ");
}

// Each server's 1 MiB holds 5957 rows of a table of some 50,000 rows a
// server, so rows spill from the first steps on: about 46,000 written on a
// server in the first epoch. The disk "fills" at a server's 60,000th row
// written: in the second epoch, after the first epoch's checkpoint, which
// the job waits for at the epoch's end.
TEST(SparseBadInputTest, AFullDiskWhileSpillingEndsTheJobWithTheNewestCheckpointIntact) {
  // Kept after a failure (MakeTempDir), to read the servers' logs.
  const std::string dir = MakeTempDir("full-disk");
  WriteText(dir + "/train.tsv", CriteoLines(4000, 100000, 1));
  WriteText(dir + "/test.tsv", CriteoLines(50, 50, 2));
  std::ofstream(dir + "/spec.pbtxt") << Spec(dir, 1, 32, "epochs: 2 checkpoint { every_epochs: 1 }");
  const CommandResult r = Train(dir, {"--test_spill_writes_before_full=60000"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot move a row to"));
  EXPECT_THAT(r.output, HasSubstr("No space"));
  EXPECT_TRUE(ProcessesMatching(dir + "/run").empty()) << "processes of the job are still running";
  const CommandResult inspected = RunTessera({"inspect", dir + "/run"});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.output;
  EXPECT_THAT(inspected.output, HasSubstr("sparse table"));
  EXPECT_THAT(inspected.output, HasSubstr("1 of 2 epochs done"));  // the first epoch's checkpoint
}

}  // namespace
}  // namespace tessera
