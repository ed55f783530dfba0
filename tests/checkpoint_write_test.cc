// Checkpoints caught while being written (the hidden flag
// --test-checkpoint-write-delay-ms holds every part after its files are written): an epoch-end cut waits for
// the one in progress instead of being skipped, and a server killed in the
// middle of a write leaves the previous checkpoint intact and resumable.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// fmnist-mlp on 1000 examples, 3 epochs, a checkpoint after each, all kept.
std::string ShortSpec(const std::string& dir) {
  auto example = ReadFileToString(SourceDir() + "/examples/fmnist-mlp.pbtxt");
  CHECK(example.ok());
  std::string text = *example;
  text.replace(text.find("epochs: 10"), 10, "epochs: 3\ncheckpoint { every_epochs: 1 keep_last: 10 }");
  const std::string path = dir + "/short.pbtxt";
  std::ofstream(path) << text;
  return path;
}

// `delay_ms`: how long each server holds every checkpoint part it has written before it reports it.
std::vector<std::string> TrainArgs(const std::string& spec, const std::string& run, int delay_ms = 0) {
  return {"train", spec, "--run-dir", run, "--max-train-examples", "1000", "--max-test-examples", "500",
          "--threads", "1", "--progress", "none", "--test-checkpoint-write-delay-ms", std::to_string(delay_ms)};
}

// Committed checkpoints (with a MANIFEST) and directories without one.
void CountCheckpoints(const std::string& run, int* committed, int* uncommitted) {
  *committed = *uncommitted = 0;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) {
    if (!e.is_directory()) continue;
    (FileExists(e.path().string() + "/MANIFEST") ? *committed : *uncommitted) += 1;
  }
}

std::string Latest(const std::string& run) {
  auto name = ReadFileToString(run + "/checkpoints/latest");
  return name.ok() && !name->empty() ? name->substr(0, name->size() - 1) : "";
}

class CheckpointWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
      GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    }
    dir_ = MakeTempDir("ckpt-write");
    spec_ = ShortSpec(dir_);
  }

  std::string dir_, spec_;
};

TEST_F(CheckpointWriteTest, EpochEndCutWaitsForTheOneInProgress) {
  const std::string plain = dir_ + "/plain";
  CommandResult reference = RunTessera(TrainArgs(spec_, plain));
  ASSERT_EQ(reference.exit_code, 0) << reference.output;

  // Every part takes 2 s more than the epoch after it: each epoch-end cut comes due while the previous one is written.
  const std::string slow = dir_ + "/slow";
  CommandResult r = RunTessera(TrainArgs(spec_, slow, 2000));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int committed = 0, uncommitted = 0;
  CountCheckpoints(slow, &committed, &uncommitted);
  EXPECT_EQ(committed, 3);  // one per epoch, none skipped
  EXPECT_EQ(uncommitted, 0);
  auto log = ReadFileToString(slow + "/logs/scheduler.log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("waits for the one at step"), std::string::npos) << *log;
  // Waiting changes nothing in training.
  auto a = ReadFileToString(plain + "/summary.json"), b = ReadFileToString(slow + "/summary.json");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(JsonString(*a, "params_sha256"), JsonString(*b, "params_sha256"));
}

TEST_F(CheckpointWriteTest, ServerKilledWhileWritingKeepsThePreviousCheckpoint) {
  const std::string run = dir_ + "/killed";
  std::vector<std::string> args = {TesseraBinary()};
  for (const std::string& a : TrainArgs(spec_, run, 3000)) args.push_back(a);
  args.push_back("--max-restarts");
  args.push_back("0");  // the job ends instead of rolling back: this test looks at what the kill left
  auto launcher = ChildProcess::Start("train", args, run + ".log");
  ASSERT_TRUE(launcher.ok());

  // Wait for the first checkpoint to commit and the next one's part of server 0 to be on disk, unreported.
  std::string first, writing;
  for (int i = 0; i < 2400 && writing.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    first = Latest(run);
    if (first.empty()) continue;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run + "/checkpoints", ec)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && name != first && FileExists(e.path().string() + "/server-0/CURRENT") &&
          !FileExists(e.path().string() + "/MANIFEST")) {
        writing = name;
      }
    }
  }
  ASSERT_FALSE(writing.empty()) << "never caught a checkpoint being written";
  int victim = -1;
  for (int pid : ChildrenOf((*launcher)->pid())) {
    const std::string command = CommandLine(pid);
    if (command.find(" server ") != std::string::npos && victim < 0) victim = pid;
  }
  ASSERT_GT(victim, 0);
  // Both servers start identically; whichever this is, one part of `writing` is unreported.
  kill(victim, SIGKILL);
  const std::optional<int> code = (*launcher)->Wait(120000);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_FALSE(FileExists(run + "/checkpoints/" + writing + "/MANIFEST"));  // never committed
  EXPECT_EQ(Latest(run), first);

  // The previous checkpoint is intact, and the job resumes from it.
  CommandResult inspect = RunTessera({"inspect", run + "/checkpoints/" + first});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  CommandResult resumed = RunTessera({"resume", run, "--threads", "1", "--progress", "none"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find(first), std::string::npos) << resumed.output;
  auto summary = ReadFileToString(run + "/summary.json");
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(JsonNumber(*summary, "epochs"), 3);
}

}  // namespace
}  // namespace tessera
