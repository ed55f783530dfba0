// Whole jobs on real processes over loopback: `tessera train` in local mode,
// and the three role commands started by hand as in a multi-machine cluster.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "core/file_util.h"
#include "core/sha256.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

const char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string Example() { return SourceDir() + "/examples/fmnist-mlp.pbtxt"; }

std::string Summary(const std::string& run_dir) {
  auto text = ReadFileToString(run_dir + "/summary.json");
  if (!text.ok()) return "";
  std::string s = *text;
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

// A short job: a slice of the data, a few epochs.
std::vector<std::string> ShortJob(const std::string& run_dir, int servers, int workers) {
  return {"train", Example(), "--run-dir", run_dir, "--servers", std::to_string(servers), "--workers",
          std::to_string(workers), "--epochs", "2", "--max-train-examples", "3000", "--max-test-examples", "1000",
          "--threads", "1"};
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist)) GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
};

TEST_F(ClusterTest, ShortJobRunsAndEveryProcessExits) {
  const std::string run = MakeTempDir("cluster") + "/run";
  CommandResult r = RunTessera(ShortJob(run, 2, 2));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string s = Summary(run);
  EXPECT_GT(JsonNumber(s, "test_accuracy"), 0.6) << s;
  EXPECT_EQ(JsonNumber(s, "epochs"), 2);
  EXPECT_EQ(JsonNumber(s, "servers"), 2);
  EXPECT_EQ(JsonNumber(s, "workers"), 2);
  EXPECT_EQ(JsonNumber(s, "examples_per_epoch"), 3000);
  // Steady state leaves the first epoch out: samples_per_sec is epoch 2's rate, reported apart from epoch 1's.
  std::vector<double> epoch_rates;
  auto metrics = ReadFileToString(run + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  for (const std::string& line : SplitLines(*metrics)) {
    if (line.find("\"event\": \"epoch\"") != std::string::npos) epoch_rates.push_back(JsonNumber(line, "samples_per_sec"));
  }
  ASSERT_EQ(epoch_rates.size(), 2u) << *metrics;
  EXPECT_NEAR(JsonNumber(s, "samples_per_sec"), epoch_rates[1], 1e-3 * epoch_rates[1]);
  EXPECT_NEAR(JsonNumber(s, "first_epoch_samples_per_sec"), epoch_rates[0], 1e-3 * epoch_rates[0]);
  EXPECT_GT(JsonNumber(s, "all_epochs_samples_per_sec"), 0);
  // 3000 examples in 8 shards of 375, batch 64: 6 steps a shard, 4 shards a worker, 2 epochs.
  EXPECT_EQ(JsonNumber(s, "steps"), 2 * 24);
  EXPECT_NE(r.output.find("test accuracy"), std::string::npos);
  // params.bin is the final parameters; its digest is params_sha256.
  auto params = ReadFileToString(run + "/params.bin");
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->size(), 235146u * 4);
  EXPECT_EQ(Sha256Hex(params->data(), params->size()), JsonString(s, "params_sha256"));
  for (const char* log : {"scheduler", "server-0", "server-1", "worker-0", "worker-1"}) {
    EXPECT_TRUE(FileExists(run + "/logs/" + log + ".log")) << log;
  }
  EXPECT_TRUE(FileExists(run + "/spec.pbtxt"));
  EXPECT_TRUE(ProcessesMatching(run).empty());
}

TEST_F(ClusterTest, BspIsBitwiseReproducibleWhateverTheServerCount) {
  const std::string base = MakeTempDir("repro");
  std::vector<std::string> digests;
  for (int servers : {1, 2, 3}) {
    const std::string run = base + "/s" + std::to_string(servers);
    CommandResult r = RunTessera(ShortJob(run, servers, 2));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    digests.push_back(JsonString(Summary(run), "params_sha256"));
    ASSERT_EQ(digests.back().size(), 64u);
  }
  const std::string again = base + "/again";
  ASSERT_EQ(RunTessera(ShortJob(again, 2, 2)).exit_code, 0);
  EXPECT_EQ(digests[0], digests[1]);
  EXPECT_EQ(digests[1], digests[2]);
  EXPECT_EQ(digests[1], JsonString(Summary(again), "params_sha256"));
  // A different seed gives different parameters: the digest is not constant.
  const std::string other = base + "/seed";
  std::vector<std::string> args = ShortJob(other, 2, 2);
  args.insert(args.end(), {"--seed", "7"});
  ASSERT_EQ(RunTessera(args).exit_code, 0);
  EXPECT_NE(digests[1], JsonString(Summary(other), "params_sha256"));
}

// More shards than examples: some shards are empty, and BSP still uses every
// example exactly once per epoch (the scheduler checks the count).
TEST_F(ClusterTest, TinyDatasetWithEmptyShards) {
  const std::string run = MakeTempDir("tiny") + "/run";
  CommandResult r = RunTessera({"train", Example(), "--run-dir", run, "--epochs", "2", "--max-train-examples", "5",
                                "--max-test-examples", "3", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(JsonNumber(Summary(run), "examples_per_epoch"), 5);
}

TEST_F(ClusterTest, AspJobTrains) {
  const std::string run = MakeTempDir("asp") + "/run";
  std::vector<std::string> args = ShortJob(run, 2, 2);
  args.insert(args.end(), {"--consistency", "asp"});
  CommandResult r = RunTessera(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string s = Summary(run);
  EXPECT_EQ(JsonString(s, "consistency"), "ASP");
  EXPECT_GT(JsonNumber(s, "test_accuracy"), 0.6) << s;
  EXPECT_EQ(JsonNumber(s, "examples_per_epoch"), 3000);
}

// The role commands, started by hand as a multi-machine cluster runs them.
TEST_F(ClusterTest, RoleCommandsFormACluster) {
  const std::string dir = MakeTempDir("roles");
  const std::string port_file = dir + "/port";
  auto start = [&](const std::string& label, std::vector<std::string> args) {
    args.insert(args.begin(), TesseraBinary());
    auto child = ChildProcess::Start(label, args, dir + "/" + label + ".log");
    CHECK(child.ok()) << child.status().ToString();
    return std::move(child).value();
  };
  auto scheduler = start("scheduler", {"scheduler", "--spec", Example(), "--port", "0", "--host", "127.0.0.1",
                                       "--port-file", port_file, "--run-dir", dir, "--epochs", "1",
                                       "--max-train-examples", "2000", "--max-test-examples", "500"});
  const std::string port = WaitForPortFile(port_file);
  ASSERT_FALSE(port.empty()) << "scheduler did not write its port";
  const std::string address = "127.0.0.1:" + port;
  std::vector<std::unique_ptr<ChildProcess>> nodes;
  for (int i = 0; i < 2; ++i) nodes.push_back(start("server" + std::to_string(i), {"server", "--scheduler", address}));
  for (int i = 0; i < 2; ++i) {
    nodes.push_back(start("worker" + std::to_string(i), {"worker", "--scheduler", address, "--threads", "1"}));
  }
  EXPECT_EQ(scheduler->Wait(120000), std::optional<int>(0));
  for (auto& n : nodes) EXPECT_EQ(n->Wait(60000), std::optional<int>(0)) << n->label();
  EXPECT_GT(JsonNumber(Summary(dir), "test_accuracy"), 0.5);
}

// Starts `tessera train` on a long job in the background and waits until
// training is under way; returns the launcher and its children's pids.
std::unique_ptr<ChildProcess> StartLongJob(const std::string& run, std::vector<int>* children) {
  // No restarts: these tests see what a lost process does to the job itself.
  std::vector<std::string> args = {TesseraBinary(), "train", Example(), "--run-dir", run, "--threads", "1",
                                   "--epochs", "50", "--max-restarts", "0"};
  auto launcher = ChildProcess::Start("train", args, run + ".log");
  CHECK(launcher.ok());
  EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log", "epoch 1/50 starts")) << FileText(run + ".log");
  *children = ChildrenOf((*launcher)->pid());
  return std::move(launcher).value();
}

bool AllGone(const std::vector<int>& pids) {
  return WaitUntil([&] { return std::none_of(pids.begin(), pids.end(), IsRunning); }, 30);
}

TEST_F(ClusterTest, CtrlCStopsEveryProcess) {
  std::vector<int> children;
  auto launcher = StartLongJob(MakeTempDir("sigint") + "/run", &children);
  ASSERT_EQ(children.size(), 5u);  // scheduler, 2 servers, 2 workers
  kill(launcher->pid(), SIGINT);
  EXPECT_EQ(launcher->Wait(60000), std::optional<int>(130));
  EXPECT_TRUE(AllGone(children));
}

TEST_F(ClusterTest, KilledLauncherTakesItsChildrenAlong) {
  std::vector<int> children;
  auto launcher = StartLongJob(MakeTempDir("sigkill") + "/run", &children);
  ASSERT_EQ(children.size(), 5u);
  kill(launcher->pid(), SIGKILL);
  launcher->Wait(5000);
  EXPECT_TRUE(AllGone(children));
}

// A lost worker does not end the job (nor roll it back): the scheduler
// notices it and training goes on with the worker left; Ctrl-C still stops
// everything. (tests/worker_loss_test.cc checks the data of such jobs.)
TEST_F(ClusterTest, LostWorkerDoesNotEndTheJob) {
  std::vector<int> children;
  const std::string run = MakeTempDir("lostworker") + "/run";
  auto launcher = StartLongJob(run, &children);
  int victim = -1;
  for (int pid : children) {
    if (CommandLine(pid).find(" worker ") != std::string::npos) victim = pid;
  }
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  auto metrics = [&]() {
    auto text = ReadFileToString(run + "/metrics.jsonl");
    return text.ok() ? *text : std::string();
  };
  size_t lost_at = std::string::npos;
  ASSERT_TRUE(WaitUntil([&] {
    lost_at = metrics().find("\"event\": \"worker_lost\"");
    return lost_at != std::string::npos;
  })) << "the scheduler did not notice the lost worker";
  // Training goes on after it (the job has 50 epochs: progress lines keep coming while it trains).
  EXPECT_TRUE(WaitUntil([&] { return metrics().find("\"event\": \"progress\"", lost_at) != std::string::npos; }));
  EXPECT_FALSE(launcher->Poll().has_value()) << "the job ended";
  kill(launcher->pid(), SIGINT);
  EXPECT_EQ(launcher->Wait(60000), std::optional<int>(130));
  EXPECT_TRUE(AllGone(children));
  auto log = ReadFileToString(run + ".log");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("exited with code 137; the job goes on without it"), std::string::npos) << *log;
}

// With no restart left, a lost scheduler ends the job, and the console shows
// the end of its log (the one place a role's log lines reach the console).
TEST_F(ClusterTest, ALostSchedulerWithNoRestartLeftFailsTheJobWithTheEndOfItsLog) {
  std::vector<int> children;
  const std::string run = MakeTempDir("lostscheduler") + "/run";
  auto launcher = StartLongJob(run, &children);
  int victim = -1;
  for (int pid : children) {
    if (CommandLine(pid).find(" scheduler ") != std::string::npos) victim = pid;
  }
  ASSERT_GT(victim, 0);
  kill(victim, SIGKILL);
  EXPECT_EQ(launcher->Wait(60000), std::optional<int>(1));
  EXPECT_TRUE(AllGone(children));
  const std::string log = FileText(run + ".log");
  const size_t at = log.find("scheduler exited with code 137; the end of ");
  ASSERT_NE(at, std::string::npos) << log;
  // Its last lines follow, glog's ("I1207 ...", "W1207 ...").
  const size_t tail = log.find("/logs/scheduler.log:\n", at);
  ASSERT_NE(tail, std::string::npos) << log;
  const size_t first = tail + std::string("/logs/scheduler.log:\n").size();
  ASSERT_LT(first, log.size()) << log;
  EXPECT_NE(std::string("IWEF").find(log[first]), std::string::npos) << log;
  EXPECT_EQ(log.find("restarting"), std::string::npos) << log;
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// A multi-machine cluster started by hand, with short heartbeats.
class HeartbeatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist)) GTEST_SKIP() << "Fashion-MNIST not installed";
    dir_ = MakeTempDir("heartbeat");
    auto example = ReadFileToString(Example());
    ASSERT_TRUE(example.ok());
    std::string text = *example;
    text.replace(text.find("cluster {"), 9, "cluster {\n  heartbeat_interval_ms: 100\n  heartbeat_timeout_ms: 1500");
    std::ofstream(dir_ + "/spec.pbtxt") << text;
    scheduler_ = Start("scheduler", {"scheduler", "--spec", dir_ + "/spec.pbtxt", "--port", "0", "--host", "127.0.0.1",
                                     "--port-file", dir_ + "/port", "--run-dir", dir_ + "/run", "--epochs", "50"});
    const std::string port = WaitForPortFile(dir_ + "/port");
    ASSERT_FALSE(port.empty());
    for (int i = 0; i < 2; ++i) nodes_.push_back(Start("server" + std::to_string(i), {"server", "--scheduler", "127.0.0.1:" + port}));
    for (int i = 0; i < 2; ++i) {
      nodes_.push_back(Start("worker" + std::to_string(i), {"worker", "--scheduler", "127.0.0.1:" + port, "--threads", "1"}));
    }
    // Training under way.
    ASSERT_TRUE(WaitForText(scheduler_->log_path(), "epoch 1/50 starts"));
  }
  std::unique_ptr<ChildProcess> Start(const std::string& label, std::vector<std::string> args) {
    args.insert(args.begin(), TesseraBinary());
    auto child = ChildProcess::Start(label, args, dir_ + "/" + label + ".log");
    CHECK(child.ok());
    return std::move(child).value();
  }
  std::string dir_;
  std::unique_ptr<ChildProcess> scheduler_;
  std::vector<std::unique_ptr<ChildProcess>> nodes_;
};

// Each node notices by its heartbeats (the 1.5 s timeout; the other timeouts
// a node could notice by are 120 s and name no heartbeat).
TEST_F(HeartbeatTest, NodesStopWhenTheSchedulerDies) {
  kill(scheduler_->pid(), SIGKILL);
  for (auto& n : nodes_) {
    EXPECT_EQ(n->Wait(60000), std::optional<int>(1)) << n->label();
    EXPECT_NE(FileText(n->log_path()).find("no answer to heartbeats"), std::string::npos) << n->label();
  }
}

// A lost worker is noticed within the timeout and the job goes on; a worker
// started by hand takes its rank and joins.
TEST_F(HeartbeatTest, TheSchedulerNoticesALostWorkerAndANewOneJoins) {
  kill(nodes_[3]->pid(), SIGKILL);  // worker 1 (or 0: ranks follow registration)
  auto log = [&]() { return FileText(scheduler_->log_path()); };
  EXPECT_TRUE(WaitForText(scheduler_->log_path(), "it is lost")) << log();
  // Noticed by its heartbeats (no launcher here tells the scheduler of an exit).
  EXPECT_NE(log().find("sent no heartbeat for"), std::string::npos) << log();
  EXPECT_NE(log().find("the job goes on with 1 workers"), std::string::npos) << log();
  EXPECT_FALSE(scheduler_->Poll().has_value()) << "the job ended";
  auto port_text = ReadFileToString(dir_ + "/port");
  ASSERT_TRUE(port_text.ok() && !port_text->empty());
  std::string port = *port_text;
  port.pop_back();
  nodes_.push_back(Start("worker2", {"worker", "--scheduler", "127.0.0.1:" + port, "--threads", "1"}));
  EXPECT_TRUE(WaitForText(scheduler_->log_path(), "joins as rank")) << log();
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(nodes_[i]->Poll().has_value()) << nodes_[i]->label() << " stopped";
}

}  // namespace
}  // namespace tessera
