// Checkpoints and resume on real processes: exact resume, resume on a
// cluster of another size, inspect, and corrupt checkpoints refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string Example() { return SourceDir() + "/examples/fmnist-mlp.pbtxt"; }

std::vector<std::string> Job(const std::string& run, int epochs) {
  return {"train", Example(), "--run-dir", run, "--epochs", std::to_string(epochs), "--max-train-examples", "3000",
          "--max-test-examples", "1000", "--threads", "1", "--progress", "none"};
}

std::string SummaryField(const std::string& run, const std::string& key) {
  auto text = ReadFileToString(run + "/summary.json");
  return text.ok() ? JsonString(*text, key) : "";
}

double SummaryNumber(const std::string& run, const std::string& key) {
  auto text = ReadFileToString(run + "/summary.json");
  return text.ok() ? JsonNumber(*text, key, -1) : -1;
}

// The train_loss of epoch `epoch` (1-based) in RUN/metrics.jsonl: its last
// epoch line (a resumed run appends its own); NaN when there is none.
double EpochTrainLoss(const std::string& run, int epoch) {
  double loss = std::nan("");
  std::istringstream lines(FileText(run + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    if (JsonString(line, "event") == "epoch" && JsonNumber(line, "epoch", -1) == epoch) {
      loss = JsonNumber(line, "train_loss", std::nan(""));
    }
  }
  return loss;
}

// Every epoch of RUN reports the train_loss the uninterrupted run REFERENCE
// does, to the last bit (metrics.jsonl writes every digit).
void ExpectTrainLossesOf(const std::string& reference, const std::string& run, int epochs) {
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    EXPECT_EQ(EpochTrainLoss(run, epoch), EpochTrainLoss(reference, epoch)) << "epoch " << epoch;
  }
  EXPECT_EQ(SummaryNumber(run, "train_loss"), SummaryNumber(reference, "train_loss"));
}

std::string Latest(const std::string& run) {
  auto name = ReadFileToString(run + "/checkpoints/latest");
  if (!name.ok() || name->empty()) return "";
  return run + "/checkpoints/" + name->substr(0, name->size() - 1);
}

// The first .sst file of a checkpoint's server-0 part.
std::string SstOf(const std::string& checkpoint) {
  for (const auto& e : fs::directory_iterator(checkpoint + "/server-0")) {
    if (e.path().extension() == ".sst") return e.path().string();
  }
  return "";
}

void FlipByte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

class CheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) return;
    base_ = new std::string(MakeTempDir("ckpt"));
    // The reference: three epochs in one go.
    CommandResult r = RunTessera(Job(*base_ + "/straight", 3));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    straight_sha_ = new std::string(SummaryField(*base_ + "/straight", "params_sha256"));
  }
  void SetUp() override {
    if (base_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  // A fresh run of one epoch, checkpointed at its end.
  std::string OneEpochRun(const std::string& name) {
    const std::string run = *base_ + "/" + name;
    CommandResult r = RunTessera(Job(run, 1));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return run;
  }
  static std::string* base_;
  static std::string* straight_sha_;
};
std::string* CheckpointTest::base_ = nullptr;
std::string* CheckpointTest::straight_sha_ = nullptr;

TEST_F(CheckpointTest, ResumeIsExact) {
  const std::string run = OneEpochRun("exact");
  ASSERT_FALSE(Latest(run).empty());
  // checkpoints/latest, the file users see first, stands for the run's newest checkpoint.
  CommandResult r = RunTessera({"resume", run + "/checkpoints/latest", "--epochs", "3", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from checkpoint"), std::string::npos) << r.output;
  EXPECT_EQ(SummaryField(run, "params_sha256"), *straight_sha_);
  EXPECT_EQ(SummaryNumber(run, "steps"), SummaryNumber(*base_ + "/straight", "steps"));
  EXPECT_EQ(SummaryNumber(run, "resumed_from_step"), 24);
}

// Servers re-split the keys on load: 2 servers saved, 3 load. BSP results do
// not depend on the server count, so an exact load gives the same bits.
TEST_F(CheckpointTest, ResumeOnMoreServersLoadsExactly) {
  const std::string run = OneEpochRun("three-servers");
  CommandResult r = RunTessera({"resume", run, "--epochs", "3", "--servers", "3", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SummaryNumber(run, "servers"), 3);
  EXPECT_EQ(SummaryField(run, "params_sha256"), *straight_sha_);
}

TEST_F(CheckpointTest, ResumeWithFewerWorkersRuns) {
  const std::string run = OneEpochRun("one-worker");
  CommandResult r = RunTessera({"resume", run, "--epochs", "2", "--workers", "1", "--servers", "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SummaryNumber(run, "workers"), 1);
  EXPECT_EQ(SummaryNumber(run, "examples_per_epoch"), 3000);
  // Epoch 1 was 24 steps of 2 workers; epoch 2 on one worker takes 12 shards... of 3000 examples: 47 steps.
  EXPECT_GT(SummaryNumber(run, "steps"), 24);
}

TEST_F(CheckpointTest, InspectVerifiesAndPrintsTheSummaryDigest) {
  const std::string run = *base_ + "/straight";
  CommandResult r = RunTessera({"inspect", run});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("params_sha256 " + *straight_sha_), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer0.linear.weight"), std::string::npos);
  EXPECT_NE(r.output.find("256x784"), std::string::npos);
  CommandResult json = RunTessera({"inspect", Latest(run), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_EQ(JsonString(json.output, "params_sha256"), *straight_sha_);
  for (const std::string& path : {run + "/checkpoints/latest", run + "/checkpoints"}) {
    CommandResult same = RunTessera({"inspect", path, "--json"});
    ASSERT_EQ(same.exit_code, 0) << path << ": " << same.output;
    EXPECT_EQ(same.output, json.output) << path;
  }
  EXPECT_EQ(JsonNumber(json.output, "step"), SummaryNumber(run, "steps"));
  // keep_last (default 3) holds after 3 epochs: 3 checkpoints.
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) checkpoints += e.is_directory();
  EXPECT_EQ(checkpoints, 3);
}

TEST_F(CheckpointTest, CorruptCheckpointIsRefusedAndNothingIsTouched) {
  const std::string run = OneEpochRun("corrupt");
  const std::string checkpoint = Latest(run);
  const std::string sst = SstOf(checkpoint);
  ASSERT_FALSE(sst.empty());
  FlipByte(sst, 100);
  const auto spec_before = ReadFileToString(run + "/spec.pbtxt");
  CommandResult r = RunTessera({"resume", checkpoint, "--epochs", "3"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(sst), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("checksum"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFileToString(run + "/spec.pbtxt").value(), spec_before.value());
  CommandResult inspect = RunTessera({"inspect", checkpoint});
  EXPECT_EQ(inspect.exit_code, 2) << inspect.output;
}

TEST_F(CheckpointTest, TruncatedFileAndMissingManifestAreRefused) {
  const std::string run = OneEpochRun("truncated");
  const std::string checkpoint = Latest(run);
  const std::string sst = SstOf(checkpoint);
  fs::resize_file(sst, fs::file_size(sst) / 2);
  CommandResult r = RunTessera({"resume", checkpoint, "--epochs", "3"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(sst), std::string::npos) << r.output;
  fs::remove(checkpoint + "/MANIFEST");
  CommandResult gone = RunTessera({"resume", checkpoint, "--epochs", "3"});
  EXPECT_EQ(gone.exit_code, 2) << gone.output;
  EXPECT_NE(gone.output.find("not a checkpoint"), std::string::npos) << gone.output;
}

// Given a run directory, resume takes the newest intact checkpoint and says which.
TEST_F(CheckpointTest, RunDirectoryFallsBackToTheNewestIntactCheckpoint) {
  const std::string run = *base_ + "/fallback";
  fs::copy(*base_ + "/straight", run, fs::copy_options::recursive);
  const std::string newest = Latest(run);
  FlipByte(SstOf(newest), 64);
  CommandResult r = RunTessera({"resume", run, "--epochs", "4", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step-000000000048"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("skipped " + fs::path(newest).filename().string()), std::string::npos) << r.output;
}

// A job lost during its final evaluation: its final checkpoint resumes into
// the evaluation alone, with the same parameters and accuracy.
TEST_F(CheckpointTest, ResumeAfterTrainingEndedRunsTheFinalEvaluation) {
  const std::string run = *base_ + "/final-eval";
  fs::copy(*base_ + "/straight", run, fs::copy_options::recursive);
  fs::remove(run + "/summary.json");
  CommandResult r = RunTessera({"resume", run, "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("running the final evaluation"), std::string::npos) << r.output;
  EXPECT_EQ(SummaryField(run, "params_sha256"), *straight_sha_);
  EXPECT_EQ(SummaryNumber(run, "test_accuracy"), SummaryNumber(*base_ + "/straight", "test_accuracy"));
  EXPECT_EQ(SummaryNumber(run, "steps"), SummaryNumber(*base_ + "/straight", "steps"));
}

TEST_F(CheckpointTest, NothingLeftToTrainIsAUsageError) {
  CommandResult r = RunTessera({"resume", *base_ + "/straight"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--epochs"), std::string::npos) << r.output;
}

TEST_F(CheckpointTest, SchedulerRefusesACheckpointOfAnotherModel) {
  const std::string dir = MakeTempDir("other-model");
  std::ofstream(dir + "/spec.pbtxt") << "model { layer { linear { out_features: 10 } } }\n";
  for (const std::string& from : {Latest(*base_ + "/straight"), *base_ + "/straight/checkpoints/latest"}) {
    CommandResult r = RunTessera({"scheduler", "--spec", dir + "/spec.pbtxt", "--port", "0", "--resume_from", from,
                                  "--register_timeout", "5"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("holds a model of 6 tensors"), std::string::npos) << from << ": " << r.output;
  }
  CommandResult missing = RunTessera({"scheduler", "--spec", dir + "/spec.pbtxt", "--port", "0", "--resume_from",
                                      dir + "/nothing-here", "--register_timeout", "5"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("nothing-here does not exist"), std::string::npos) << missing.output;
}

// Long enough (full training set, 472 steps an epoch) for cuts inside epochs.
class MidEpochTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) return;
    dir_ = new std::string(MakeTempDir("midepoch"));
    auto example = ReadFileToString(Example());
    ASSERT_TRUE(example.ok());
    std::string text = *example;
    text.replace(text.find("epochs: 10"), 10, "epochs: 2\ncheckpoint { every_steps: 150 keep_last: 20 }");
    std::ofstream(*dir_ + "/spec.pbtxt") << text;
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *dir_ + "/run", "--max-test-examples",
                                  "1000", "--threads", "1", "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    sha_ = new std::string(SummaryField(*dir_ + "/run", "params_sha256"));
  }
  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  // A committed checkpoint of the run cut inside an epoch.
  static std::string MidEpochCheckpoint(const std::string& run) {
    for (const auto& e : fs::directory_iterator(run + "/checkpoints")) {
      auto m = ReadManifest(e.path().string());
      if (m.ok() && m->cursor().steps_into_epoch() > 0) return e.path().string();
    }
    return "";
  }
  static std::string* dir_;
  static std::string* sha_;
};
std::string* MidEpochTest::dir_ = nullptr;
std::string* MidEpochTest::sha_ = nullptr;

TEST_F(MidEpochTest, ResumeFromACutInsideAnEpochIsExact) {
  const std::string copy = *dir_ + "/copy";
  fs::copy(*dir_ + "/run", copy, fs::copy_options::recursive);
  const std::string checkpoint = MidEpochCheckpoint(copy);
  ASSERT_FALSE(checkpoint.empty()) << "no checkpoint was cut inside an epoch";
  // Its cursor holds the steps done; the resumed workers pass over them.
  auto manifest = ReadManifest(checkpoint);
  ASSERT_TRUE(manifest.ok());
  const int resumed_epoch = manifest->cursor().epoch() + 1;
  // It keeps each worker's loss sums up to the cut (issue 19 #5), and
  // inspect shows them.
  EXPECT_EQ(manifest->partial_epoch_loss().by_rank_size(), 2);
  CommandResult inspect = RunTessera({"inspect", checkpoint});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("cut inside epoch " + std::to_string(resumed_epoch) + ": " +
                                std::to_string(manifest->cursor().steps_into_epoch()) + " steps into it, train loss so far"),
            std::string::npos)
      << inspect.output;
  CommandResult json = RunTessera({"inspect", checkpoint, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_EQ(JsonNumber(json.output, "steps_into_epoch"), manifest->cursor().steps_into_epoch());
  int64_t examples = 0;
  for (const proto::RankLoss& rank : manifest->partial_epoch_loss().by_rank()) examples += rank.examples();
  EXPECT_GT(examples, 0);
  EXPECT_NE(json.output.find("\"partial_epoch_loss\": {\"examples\": " + std::to_string(examples) + ","),
            std::string::npos)
      << json.output;
  CommandResult r = RunTessera({"resume", checkpoint, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SummaryField(copy, "params_sha256"), *sha_);
  EXPECT_EQ(SummaryNumber(copy, "examples_per_epoch"), 60000);
  // The epoch resumed from inside reports the train_loss of the whole epoch,
  // as the run that never stopped did, bit for bit.
  EXPECT_EQ(EpochTrainLoss(copy, resumed_epoch), EpochTrainLoss(*dir_ + "/run", resumed_epoch))
      << "epoch " << resumed_epoch;
  ExpectTrainLossesOf(*dir_ + "/run", copy, 2);
}

TEST_F(MidEpochTest, ACutInsideAnEpochNeedsItsWorkers) {
  const std::string checkpoint = MidEpochCheckpoint(*dir_ + "/run");
  ASSERT_FALSE(checkpoint.empty());
  CommandResult r = RunTessera({"resume", checkpoint, "--workers", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("resume it with that many"), std::string::npos) << r.output;
}

// Ctrl-C: a final checkpoint, a clean exit, and resume finishes the job
// with the same parameters as an uninterrupted run.
TEST_F(MidEpochTest, InterruptTakesAFinalCheckpointAndResumeFinishes) {
  const std::string run = *dir_ + "/interrupted";
  std::vector<std::string> args = {TesseraBinary(), "train", *dir_ + "/spec.pbtxt", "--run-dir", run,
                                   "--max-test-examples", "1000", "--threads", "1", "--progress", "plain"};
  auto launcher = ChildProcess::Start("train", args, run + ".log");
  ASSERT_TRUE(launcher.ok());
  ASSERT_TRUE(WaitForText(run + "/logs/scheduler.log", "epoch 1/2 starts")) << FileText(run + ".log");
  const std::vector<int> children = ChildrenOf((*launcher)->pid());
  ASSERT_EQ(children.size(), 5u);
  kill((*launcher)->pid(), SIGINT);
  EXPECT_EQ((*launcher)->Wait(60000), std::optional<int>(130));
  for (int pid : children) EXPECT_FALSE(IsRunning(pid)) << pid;
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("committed"), std::string::npos) << *log;
  EXPECT_FALSE(FileExists(run + "/summary.json"));
  CommandResult r = RunTessera({"resume", run, "--progress", "none", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SummaryField(run, "params_sha256"), *sha_);
  ExpectTrainLossesOf(*dir_ + "/run", run, 2);
}

// Time-based cuts inside epochs, and the final checkpoint is never lost to
// one still in progress (it is deferred, not skipped).
TEST_F(MidEpochTest, EverySecondsCutsAndTheFinalCheckpointAlwaysExists) {
  auto example = ReadFileToString(Example());
  ASSERT_TRUE(example.ok());
  std::string text = *example;
  text.replace(text.find("epochs: 10"), 10, "epochs: 2\ncheckpoint { every_seconds: 0.3 keep_last: 100 }");
  std::ofstream(*dir_ + "/seconds.pbtxt") << text;
  const std::string run = *dir_ + "/seconds";
  CommandResult r = RunTessera({"train", *dir_ + "/seconds.pbtxt", "--run-dir", run, "--max-test-examples", "1000",
                                "--threads", "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SummaryField(run, "params_sha256"), *sha_);  // cuts never change training
  // How many cuts fall inside an epoch depends on this machine's speed; when
  // they come is CheckpointCoordinatorTest.AnEverySecondsCutComesOnceItsSecondsHavePassed.
  auto last = ReadManifest(Latest(run));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->cursor().epoch(), 2);
  EXPECT_EQ(last->cursor().steps_into_epoch(), 0);
  EXPECT_EQ(last->step(), SummaryNumber(run, "steps"));
  EXPECT_EQ(last->params_sha256(), *sha_);
}

// Starts `tessera train` on the mid-epoch spec in the background (output to
// RUN.log) and waits until its first checkpoint is committed.
std::unique_ptr<ChildProcess> StartUntilFirstCheckpoint(const std::string& spec, const std::string& run) {
  std::vector<std::string> args = {TesseraBinary(), "train", spec, "--run-dir", run, "--max-test-examples", "1000",
                                   "--threads", "1", "--progress", "plain"};
  auto launcher = ChildProcess::Start("train", args, run + ".log");
  CHECK(launcher.ok());
  WaitUntil([&] { return FileExists(run + "/checkpoints/latest"); });
  return std::move(launcher).value();
}

// A server killed mid-job: the launcher starts a replacement server at once
// and tells the scheduler (NODE_EXITED), which rolls the job back to the
// newest checkpoint. The scheduler and the workers are not restarted (the
// workers keep their loaded data); under BSP the result equals an undisturbed run.
TEST_F(MidEpochTest, LostServerIsReplacedAndTheJobRollsBack) {
  const std::string run = *dir_ + "/lost-server";
  auto launcher = StartUntilFirstCheckpoint(*dir_ + "/spec.pbtxt", run);
  ASSERT_TRUE(FileExists(run + "/checkpoints/latest"));
  const std::vector<int> children = ChildrenOf(launcher->pid());
  ASSERT_EQ(children.size(), 5u);
  int victim = -1;
  std::vector<int> others;
  for (int pid : children) {
    if (victim < 0 && CommandLine(pid).find(" server ") != std::string::npos) {
      victim = pid;
    } else {
      others.push_back(pid);
    }
  }
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  ASSERT_TRUE(WaitForText(run + "/metrics.jsonl", "\"event\": \"rollback\""))
      << "the scheduler did not roll the job back";
  {
    // The rollback line names the step the workers last reported (they report
    // every 500 ms, so it may trail the checkpoint's), not the start of the epoch.
    auto metrics = ReadFileToString(run + "/metrics.jsonl");
    ASSERT_TRUE(metrics.ok());
    auto line_with = [&](const std::string& event) {
      const size_t at = metrics->find("\"event\": \"" + event + "\"");
      if (at == std::string::npos) return std::string();
      const size_t begin = metrics->rfind('\n', at) + 1;
      return metrics->substr(begin, metrics->find('\n', at) - begin);
    };
    const std::string checkpoint = line_with("checkpoint"), rollback = line_with("rollback");
    ASSERT_FALSE(checkpoint.empty());
    EXPECT_GT(JsonNumber(checkpoint, "step"), 0);
    EXPECT_GE(JsonNumber(rollback, "step"), JsonNumber(checkpoint, "step") / 2) << rollback;
    // The launcher told the scheduler at once (NODE_EXITED), well before the 5 s heartbeat timeout.
    EXPECT_NE(rollback.find("exited with code 137: it is lost"), std::string::npos) << rollback;
  }
  // The scheduler, the other server and both workers are the processes of before, and a new server joined them.
  // (The launcher tells the scheduler before it starts the replacement: wait for it.)
  for (int pid : others) EXPECT_TRUE(IsRunning(pid)) << CommandLine(pid);
  std::vector<int> after;
  EXPECT_TRUE(WaitUntil([&] {
    after = ChildrenOf(launcher->pid());
    return after.size() == 5u;
  })) << after.size() << " children";
  for (int pid : others) EXPECT_NE(std::find(after.begin(), after.end(), pid), after.end()) << pid;

  EXPECT_EQ(launcher->Wait(120000), std::optional<int>(0));
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("exited with code 137; server-2 replaces it and the job rolls back to its newest checkpoint "
                      "(restart 1 of 3)"),
            std::string::npos)
      << *log;
  EXPECT_EQ(log->find("restarting"), std::string::npos) << *log;
  // Both workers lived through the rollback (a restarted worker would never have heard of it).
  for (const char* worker : {"worker-0", "worker-1"}) {
    auto worker_log = ReadFileToString(run + "/logs/" + worker + ".log");
    ASSERT_TRUE(worker_log.ok());
    EXPECT_NE(worker_log->find("the job rolls back"), std::string::npos) << worker;
  }
  EXPECT_EQ(SummaryNumber(run, "server_rollbacks"), 1);
  EXPECT_EQ(SummaryField(run, "params_sha256"), *sha_);
  ExpectTrainLossesOf(*dir_ + "/run", run, 2);
}

// A frozen server (SIGSTOP) sends no heartbeats: the scheduler loses it and
// rolls back, and the launcher kills it (it is lost anyway) and replaces it
// like a dead one, instead of the job waiting 120 s and restarting every
// process (issue 19 #2).
TEST_F(MidEpochTest, AFrozenServerIsKilledAndReplaced) {
  const std::string run = *dir_ + "/frozen-server";
  auto launcher = StartUntilFirstCheckpoint(*dir_ + "/spec.pbtxt", run);
  int victim = -1;
  for (int pid : ChildrenOf(launcher->pid())) {
    if (victim < 0 && CommandLine(pid).find(" server ") != std::string::npos) victim = pid;
  }
  ASSERT_GT(victim, 0);
  kill(victim, SIGSTOP);
  EXPECT_EQ(launcher->Wait(300000), std::optional<int>(0));
  const std::string log = FileText(run + ".log");
  EXPECT_NE(log.find("the scheduler lost the server with pid " + std::to_string(victim) +
                     " (it stopped answering); it is killed and replaced"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("restarting"), std::string::npos) << "no restart of every process: " << log;
  EXPECT_FALSE(IsRunning(victim));
  EXPECT_EQ(SummaryNumber(run, "server_rollbacks"), 1);
  EXPECT_EQ(SummaryField(run, "params_sha256"), *sha_) << "under BSP the result is an undisturbed run's";
}

// A scheduler killed mid-job: no rollback in place is possible, so the
// launcher stops every process and starts the cluster again from the newest
// checkpoint; under BSP the result again equals an undisturbed run.
TEST_F(MidEpochTest, LostSchedulerRestartsTheJobFromTheLastCheckpoint) {
  const std::string run = *dir_ + "/lost-scheduler";
  auto launcher = StartUntilFirstCheckpoint(*dir_ + "/spec.pbtxt", run);
  ASSERT_TRUE(FileExists(run + "/checkpoints/latest"));
  int victim = -1;
  for (int pid : ChildrenOf(launcher->pid())) {
    if (CommandLine(pid).find(" scheduler ") != std::string::npos) victim = pid;
  }
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  EXPECT_EQ(launcher->Wait(120000), std::optional<int>(0));
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  // One line says so, and where the lost scheduler's log is; its lines stay
  // there: the job succeeds, so none of them (ERROR lines included) is shown
  // as if it had failed (issue 19 #5).
  EXPECT_NE(log->find("the scheduler was lost (exited with code 137; log: "), std::string::npos) << *log;
  EXPECT_NE(log->find("/logs/scheduler.log); restarting from checkpoint "), std::string::npos) << *log;
  EXPECT_NE(log->find("(restart 1 of 3)"), std::string::npos) << *log;
  EXPECT_EQ(log->find("the end of"), std::string::npos) << *log;
  const std::regex glog_line("^[IWEF][0-9]{4,8} [0-9:.]+ +[0-9]+ [^ ]+:[0-9]+\\] ");
  std::istringstream lines(*log);
  for (std::string line; std::getline(lines, line);) EXPECT_FALSE(std::regex_search(line, glog_line)) << line;
  EXPECT_EQ(log->find("replaces it"), std::string::npos) << *log;
  EXPECT_EQ(SummaryNumber(run, "server_rollbacks"), 0);
  EXPECT_EQ(SummaryField(run, "params_sha256"), *sha_);
  ExpectTrainLossesOf(*dir_ + "/run", run, 2);
  // summary.json describes the whole job, the epochs before the restart too (issue 19 #5).
  const std::string summary = FileText(run + "/summary.json");
  const std::string per_epoch = std::to_string(static_cast<int64_t>(SummaryNumber(run, "examples_per_epoch")));
  std::string all = "\"examples_by_epoch\": [";
  for (int e = 0; e < SummaryNumber(run, "epochs"); ++e) all += (e > 0 ? ", " : "") + per_epoch;
  EXPECT_NE(summary.find(all + "]"), std::string::npos) << summary;
}

}  // namespace
}  // namespace tessera
