// The CLI's contract with users: help for every command, and every mistake
// ends in one line naming the problem, exit code 2, and no process left.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/file_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::string Example() { return SourceDir() + "/examples/fmnist-mlp.pbtxt"; }

std::string WriteSpec(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/spec.pbtxt";
  std::ofstream(path) << text;
  return path;
}

// Expects exit code 2 with a single line containing `needle`, and that no
// process of the attempted run is left.
void ExpectUsageError(const std::vector<std::string>& args, const std::string& needle) {
  const std::string run_dir = MakeTempDir("cli-run");
  std::vector<std::string> full = args;
  if (!args.empty() && args[0] == "train") {
    full.push_back("--run-dir");
    full.push_back(run_dir + "/run");
  }
  CommandResult r = RunTessera(full, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(Lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
  EXPECT_TRUE(ProcessesMatching(run_dir).empty());
  EXPECT_FALSE(FileExists(run_dir + "/run/spec.pbtxt")) << "nothing should be started for a bad command";
}

TEST(CliTest, TopLevelHelpListsEveryCommand) {
  CommandResult r = RunTessera({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* c : {"train", "scheduler", "server", "worker"}) {
    EXPECT_NE(r.output.find(std::string("  ") + c), std::string::npos) << c;
  }
}

TEST(CliTest, EveryCommandHasHelp) {
  for (const char* c : {"train", "scheduler", "server", "worker"}) {
    CommandResult r = RunTessera({c, "--help"});
    EXPECT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.output.find(std::string("usage: tessera ") + c), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("(default: "), std::string::npos) << r.output;
  }
  CommandResult train = RunTessera({"train", "--help"});
  for (const char* flag : {"--run-dir", "--servers", "--workers", "--epochs", "--seed", "--threads"}) {
    EXPECT_NE(train.output.find(flag), std::string::npos) << flag;
  }
}

TEST(CliTest, UnknownCommand) {
  CommandResult r = RunTessera({"trian"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Lines(r.output), 1);
  EXPECT_NE(r.output.find("unknown command 'trian'"), std::string::npos) << r.output;
}

TEST(CliTest, UnknownFieldInSpec) {
  const std::string dir = MakeTempDir("cli");
  const std::string spec = WriteSpec(dir, "name: \"x\"\nepochs: 1\nlearning_rate: 0.1\n");
  ExpectUsageError({"train", spec}, "learning_rate");
  ExpectUsageError({"train", spec}, spec + ":3:");
}

TEST(CliTest, MalformedValueInSpec) {
  const std::string dir = MakeTempDir("cli");
  ExpectUsageError({"train", WriteSpec(dir, "epochs: many\n")}, "epochs");
}

TEST(CliTest, ImpossibleValueInSpec) {
  const std::string dir = MakeTempDir("cli");
  auto example = ReadFileToString(Example());
  ASSERT_TRUE(example.ok());
  std::string text = *example;
  const size_t at = text.find("batch_size: 64");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 14, "batch_size: 0");
  ExpectUsageError({"train", WriteSpec(dir, text)}, "batch_size must be >= 1, got 0");
}

TEST(CliTest, ModelThatDoesNotFitTheData) {
  const std::string dir = MakeTempDir("cli");
  ExpectUsageError({"train", WriteSpec(dir, "model { layer { linear { out_features: 7 } } }\n")},
                   "the last layer gives 7 outputs, expected 10");
}

TEST(CliTest, ZeroWorkers) { ExpectUsageError({"train", Example(), "--workers", "0"}, "cluster.workers must be >= 1, got 0"); }

TEST(CliTest, MalformedFlagValue) { ExpectUsageError({"train", Example(), "--epochs=abc"}, "--epochs"); }

TEST(CliTest, NegativeRestarts) {
  ExpectUsageError({"train", Example(), "--max-restarts", "-1"}, "--max-restarts must be >= 0, got -1");
  ExpectUsageError({"scheduler", "--spec", Example(), "--max-restarts", "-1"}, "--max-restarts must be >= 0, got -1");
}

TEST(CliTest, UnknownFlag) { ExpectUsageError({"train", Example(), "--epoch", "3"}, "unknown flag --epoch"); }

TEST(CliTest, FlagOfAnotherCommand) { ExpectUsageError({"train", Example(), "--scheduler", "h:1"}, "unknown flag --scheduler"); }

TEST(CliTest, MissingSpecFile) { ExpectUsageError({"train", "/nonexistent/job.pbtxt"}, "/nonexistent/job.pbtxt"); }

TEST(CliTest, MissingSpecArgument) { ExpectUsageError({"train"}, "missing the job spec"); }

TEST(CliTest, MissingDataFile) {
  ExpectUsageError({"train", Example(), "--data-dir", "/nonexistent-data"}, "/nonexistent-data/train-images-idx3-ubyte.gz");
}

TEST(CliTest, BadConsistency) { ExpectUsageError({"train", Example(), "--consistency", "sync"}, "bsp, asp or ssp"); }

TEST(CliTest, RoleCommandsCheckTheirFlags) {
  ExpectUsageError({"server"}, "--scheduler HOST:PORT is required");
  ExpectUsageError({"worker", "--scheduler", "localhost"}, "is not HOST:PORT");
  ExpectUsageError({"worker", "--scheduler", "localhost:99999"}, "out of range");
  ExpectUsageError({"scheduler"}, "--spec is required");
}

// Issue 19, item 14: --port was taken modulo 65536 (65537 bound port 1) and
// a negative one meant the default. Every command that binds a port, and a
// worker's or server's scheduler address, refuses what is not a port.
TEST(CliTest, PortsOutsideTheirRangeAreRefused) {
  for (const std::string port : {"65537", "70000", "-7"}) {
    const std::string said = "--port must be in [0, 65535] (0: any free port), got " + port;
    ExpectUsageError({"scheduler", "--spec", Example(), "--port", port}, said);
    ExpectUsageError({"server", "--scheduler", "127.0.0.1:7000", "--port", port}, said);
    ExpectUsageError({"serve", "--model-repo", "/nonexistent", "--port", port}, said);
  }
  ExpectUsageError({"server", "--scheduler", "127.0.0.1:65536"}, "out of range");
  ExpectUsageError({"worker", "--scheduler", "127.0.0.1:65536"}, "out of range");
}

// Issue 19, item 13: --workers 500 forked 500 processes, each loading the
// data set, on a 2-core machine. More workers than the machine can run are
// refused before anything starts (1024, the spec's limit, is more than 4
// per core on any machine under 256 cores).
TEST(CliTest, MoreWorkersThanTheMachineCanRunAreRefused) {
  ExpectUsageError({"train", Example(), "--workers", "1024"},
                   "1024 workers are more than this machine can run: at most ");
  ExpectUsageError({"train", Example(), "--workers", "1024"}, "use fewer, or --force to start them anyway");
}

// With --force the limit is not applied: the command goes on to its next
// check (here a run directory that already holds a run, so nothing starts).
TEST(CliTest, ForceStartsMoreWorkersThanTheMachineCanRun) {
  const std::string dir = MakeTempDir("cli");
  std::ofstream(dir + "/summary.json") << "{}";
  CommandResult r = RunTessera({"train", Example(), "--workers", "1024", "--force", "--run-dir", dir}, 60);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("more than this machine can run"), std::string::npos) << r.output;
}

TEST(CliTest, RefusesToOverwriteARun) {
  const std::string dir = MakeTempDir("cli");
  std::ofstream(dir + "/summary.json") << "{}";
  CommandResult r = RunTessera({"train", Example(), "--run-dir", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
  auto kept = ReadFileToString(dir + "/summary.json");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "{}");
}

// A damaged data file (a truncated download) is one line and exit 2 before
// any process starts, not every worker failing the same way once training
// has begun (issue 19 #3).
TEST(CliTest, ADamagedDataFileIsRefusedBeforeAnythingStarts) {
  const std::string fmnist = "/usr/share/datasets/fashion-mnist";
  if (!FileExists(fmnist + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed";
  const std::string dir = MakeTempDir("damaged");
  for (const char* name : {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    std::filesystem::copy_file(fmnist + "/" + name, dir + "/" + name);
  }
  auto images = ReadFileToString(fmnist + "/train-images-idx3-ubyte.gz");
  ASSERT_TRUE(images.ok());
  std::ofstream(dir + "/train-images-idx3-ubyte.gz", std::ios::binary) << images->substr(0, 13000000);
  CommandResult r = RunTessera({"train", SourceDir() + "/examples/fmnist-mlp.pbtxt", "--data-dir", dir, "--run-dir",
                                dir + "/run", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train-images-idx3-ubyte.gz: compressed stream is truncated"), std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(dir + "/run/logs")) << "no process was started";
}

}  // namespace
}  // namespace tessera
