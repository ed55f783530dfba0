// A worker killed (SIGKILL) in the middle of an epoch, on real processes:
// the job goes on with the workers left and a replacement that joins, uses
// every training example exactly once per epoch, and ends normally.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "core/sha256.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

const char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
constexpr int kTrainExamples = 24000;

std::string OneLine(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return "";
  std::string s = *text;
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

// The metrics lines of one event.
std::vector<std::string> Events(const std::string& run, const std::string& event) {
  std::vector<std::string> lines;
  auto text = ReadFileToString(run + "/metrics.jsonl");
  if (!text.ok()) return lines;
  size_t at = 0;
  while (at < text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(at, end - at);
    if (JsonString(line, "event") == event) lines.push_back(line);
    at = end + 1;
  }
  return lines;
}

class WorkerLossTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist)) GTEST_SKIP() << "Fashion-MNIST not installed";
    dir_ = MakeTempDir("workerloss");
    // Short heartbeats, so a lost worker is noticed within 1.5 s.
    auto example = ReadFileToString(SourceDir() + "/examples/fmnist-mlp.pbtxt");
    ASSERT_TRUE(example.ok());
    std::string text = *example;
    text.replace(text.find("cluster {"), 9, "cluster {\n  heartbeat_interval_ms: 100\n  heartbeat_timeout_ms: 1500");
    std::ofstream(dir_ + "/spec.pbtxt") << text;
  }

  // Starts `tessera train` with 3 workers, kills one worker once epoch
  // `epoch` has started, and waits for the job to end. Returns its exit code.
  int RunAndKillAWorker(const std::string& run, const std::vector<std::string>& extra, int epoch, int* victim) {
    return RunAndKillWorkers(run, extra, epoch, /*workers=*/3, /*kills=*/1, victim);
  }

  // The same with `workers` workers of which `kills` are killed (*victim: the first).
  int RunAndKillWorkers(const std::string& run, const std::vector<std::string>& extra, int epoch, int workers,
                        int kills, int* victim) {
    std::vector<std::string> args = {TesseraBinary(), "train", dir_ + "/spec.pbtxt", "--run-dir", run, "--workers",
                                     std::to_string(workers),
                                     "--epochs", "3", "--max-train-examples", std::to_string(kTrainExamples),
                                     "--max-test-examples", "2000", "--threads", "1", "--progress", "plain",
                                     // Small batches: 1000 steps an epoch, far more than can pass
                                     // between the epoch's start and the kill.
                                     "--batch-size", "8"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto launcher = ChildProcess::Start("train", args, run + ".log");
    EXPECT_TRUE(launcher.ok());
    if (!launcher.ok()) return -1;
    // The line the scheduler writes as the epoch begins. Under BSP the epoch
    // cannot end before the loss is noticed (every step waits for the dead
    // worker's push until then), so the loss falls inside the epoch.
    EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log", "epoch " + std::to_string(epoch) + "/3 starts"));
    std::vector<int> victims;
    for (int pid : ChildrenOf((*launcher)->pid())) {
      if (static_cast<int>(victims.size()) < kills && CommandLine(pid).find(" worker ") != std::string::npos) {
        victims.push_back(pid);
      }
    }
    EXPECT_EQ(static_cast<int>(victims.size()), kills);
    *victim = victims.empty() ? -1 : victims[0];
    for (int pid : victims) kill(pid, SIGKILL);
    return (*launcher)->Wait(240000).value_or(-1);
  }

  // What every such job must show: each epoch used every example exactly
  // once, the `lost` losses were noticed (inside an epoch, whose rest was
  // handed on, when `inside`), and the result is a trained model.
  void ExpectEveryExampleOncePerEpoch(const std::string& run, bool inside = true, int lost_workers = 1) {
    const std::string s = OneLine(run + "/summary.json");
    ASSERT_FALSE(s.empty()) << "no summary.json";
    EXPECT_EQ(JsonNumber(s, "examples_per_epoch"), kTrainExamples) << s;
    const std::string n = std::to_string(kTrainExamples);
    EXPECT_NE(s.find("\"examples_by_epoch\": [" + n + ", " + n + ", " + n + "]"), std::string::npos) << s;
    EXPECT_EQ(JsonNumber(s, "workers_lost"), lost_workers) << s;
    EXPECT_GT(JsonNumber(s, "test_accuracy"), 0.75) << s;
    const std::vector<std::string> epochs = Events(run, "epoch");
    ASSERT_EQ(epochs.size(), 3u);
    int disturbed = 0;
    for (const std::string& e : epochs) {
      EXPECT_EQ(JsonNumber(e, "examples"), kTrainExamples) << e;
      if (e.find("examples_of_lost_workers") != std::string::npos) {
        ++disturbed;
        EXPECT_EQ(JsonNumber(e, "parts"), 2) << "one continuation: " << e;
        // What the lost workers trained before they were lost (none when the
        // kill came before their first step) counts once, as the scheduler said.
        const std::string had_done = "steps of this phase part (";
        const std::string log = FileText(run + "/logs/scheduler.log");
        int64_t said = 0;
        for (size_t at = log.find(had_done); at != std::string::npos; at = log.find(had_done, at + 1)) {
          said += std::atoll(log.c_str() + at + had_done.size());
        }
        ASSERT_NE(log.find(had_done), std::string::npos) << log;
        EXPECT_EQ(JsonNumber(e, "examples_of_lost_workers"), said) << e;
      }
    }
    if (inside) {
      EXPECT_EQ(disturbed, 1) << "the loss falls inside one epoch";
    }
    EXPECT_LE(disturbed, 1);
    const std::vector<std::string> lost = Events(run, "worker_lost");
    ASSERT_EQ(static_cast<int>(lost.size()), lost_workers);
    // params.bin is the final parameters, whichever worker wrote it.
    auto params = ReadFileToString(run + "/params.bin");
    ASSERT_TRUE(params.ok());
    EXPECT_EQ(Sha256Hex(params->data(), params->size()), JsonString(s, "params_sha256"));
    EXPECT_TRUE(ProcessesMatching(run).empty()) << "a process of the job is left behind";
  }

  std::string dir_;
};

// BSP: the workers left go on in lock-step, the lost worker's untrained
// positions are trained by them in a continuation, and a replacement worker
// (started by the launcher) joins at the next phase.
TEST_F(WorkerLossTest, BspGoesOnWithoutAKilledWorkerAndUsesEveryExampleOncePerEpoch) {
  const std::string run = dir_ + "/bsp";
  int victim = -1;
  EXPECT_EQ(RunAndKillAWorker(run, {}, 2, &victim), 0);
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("exited with code 137; the job goes on without it"), std::string::npos) << *log;
  EXPECT_EQ(log->find("restarting"), std::string::npos) << "no rollback for a lost worker: " << *log;
  ExpectEveryExampleOncePerEpoch(run);
  EXPECT_EQ(JsonNumber(OneLine(run + "/summary.json"), "workers_joined"), 1);
  EXPECT_EQ(Events(run, "worker_joined").size(), 1u);
  auto scheduler = ReadFileToString(run + "/logs/scheduler.log");
  ASSERT_TRUE(scheduler.ok());
  EXPECT_NE(scheduler->find("go to the workers left"), std::string::npos) << *scheduler;
  // The epoch with the loss has no checkpoint inside it, but its end does.
  for (const std::string& c : Events(run, "checkpoint")) EXPECT_GE(JsonNumber(c, "epoch"), 1) << c;
  EXPECT_EQ(Events(run, "checkpoint").size(), 3u);
  // Its continuation made epoch 2 longer than 1000 steps (24000 examples, 3
  // workers x 8): the learning-rate schedule is re-anchored where epoch 3
  // begins (offset 2 * 1000 - that step), and every server has it before.
  const std::string begins = "epoch 3/3 starts at step ";
  const size_t at = scheduler->find(begins);
  ASSERT_NE(at, std::string::npos) << *scheduler;
  const int64_t step = std::atoll(scheduler->c_str() + at + begins.size());
  EXPECT_GT(step, 2000);
  for (int s = 0; s < 2; ++s) {
    auto server = ReadFileToString(run + "/logs/server-" + std::to_string(s) + ".log");
    ASSERT_TRUE(server.ok());
    EXPECT_NE(server->find("learning-rate schedule re-anchored at version " + std::to_string(step) +
                           ": step offset " + std::to_string(2000 - step)),
              std::string::npos)
        << "server " << s << ":\n" << *server;
  }
}

// Every worker killed inside an epoch: the part ends where their pushes
// reached (every server's slices moved up to that step), the replacements the
// launcher starts train the rest of the epoch from there, and the job ends
// normally, within seconds, counting both losses.
TEST_F(WorkerLossTest, BspGoesOnWhenEveryWorkerIsKilled) {
  const std::string run = dir_ + "/all";
  int victim = -1;
  EXPECT_EQ(RunAndKillWorkers(run, {}, 2, /*workers=*/2, /*kills=*/2, &victim), 0);
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->find("restarting"), std::string::npos) << "no restart for lost workers: " << *log;
  ExpectEveryExampleOncePerEpoch(run, /*inside=*/true, /*lost_workers=*/2);
  EXPECT_EQ(JsonNumber(OneLine(run + "/summary.json"), "workers_joined"), 2);
  const std::string scheduler = FileText(run + "/logs/scheduler.log");
  EXPECT_NE(scheduler.find("every worker of the last part was lost"), std::string::npos) << scheduler;
  EXPECT_EQ(scheduler.find("every worker was lost and none joined"), std::string::npos) << scheduler;
}

// Without replacements the job finishes with the two workers left.
TEST_F(WorkerLossTest, BspFinishesWithTheWorkersLeft) {
  const std::string run = dir_ + "/fewer";
  int victim = -1;
  EXPECT_EQ(RunAndKillAWorker(run, {"--max-restarts", "0"}, 2, &victim), 0);
  ExpectEveryExampleOncePerEpoch(run);
  EXPECT_EQ(JsonNumber(OneLine(run + "/summary.json"), "workers_joined"), 0);
  // The epochs after it run on the 2 workers left.
  const std::vector<std::string> epochs = Events(run, "epoch");
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(JsonNumber(epochs[2], "workers"), 2) << epochs[2];
}

// ASP: the lost worker's positions go to the others the same way. (ASP
// epochs do not wait for the lost worker's pushes, so the kill may land
// between epochs.)
TEST_F(WorkerLossTest, AspGoesOnWithoutAKilledWorker) {
  const std::string run = dir_ + "/asp";
  int victim = -1;
  // The spec's batch: ASP's stale gradients at batch 8 do not train at this learning rate.
  EXPECT_EQ(RunAndKillAWorker(run, {"--consistency", "asp", "--batch-size", "64"}, 2, &victim), 0);
  ExpectEveryExampleOncePerEpoch(run, /*inside=*/false);
}

}  // namespace
}  // namespace tessera
