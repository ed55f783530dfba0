// A hand-started cluster (the role commands, as on several machines) loses a
// server: the scheduler rolls the job back to its newest checkpoint, a
// replacement server registers, and the job ends as if nothing had happened.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/zmq_transport.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

const char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// Long enough (30 epochs of 16 BSP steps) that the loss lands inside training.
const char kSpec[] = R"pb(
  name: "replace"
  model {
    layer { linear { out_features: 64 } }
    layer { relu {} }
    layer { linear { out_features: 10 } }
  }
  data { max_train_examples: 2000 max_test_examples: 500 }
  cluster { servers: 2 workers: 2 heartbeat_interval_ms: 200 heartbeat_timeout_ms: 1500 }
  optimizer { learning_rate: 0.05 momentum: 0.9 }
  checkpoint { every_steps: 20 keep_last: 2 }
  batch_size: 64
  epochs: 30
)pb";

class ServerReplacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist)) GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    dir_ = MakeTempDir("replace");
    spec_ = dir_ + "/spec.pbtxt";
    std::ofstream(spec_) << kSpec;
  }

  std::unique_ptr<ChildProcess> Start(const std::string& label, std::vector<std::string> args) {
    args.insert(args.begin(), TesseraBinary());
    auto child = ChildProcess::Start(label, args, dir_ + "/" + label + ".log");
    CHECK(child.ok()) << child.status().ToString();
    return std::move(child).value();
  }

  // Starts the scheduler with `flags` and returns its address.
  std::string StartScheduler(const std::string& run, std::vector<std::string> flags) {
    const std::string port_file = dir_ + "/port";
    std::vector<std::string> args = {"scheduler", "--spec", spec_, "--port", "0", "--host", "127.0.0.1",
                                      "--port-file", port_file, "--run-dir", run};
    args.insert(args.end(), flags.begin(), flags.end());
    scheduler_ = Start("scheduler", args);
    const std::string port = WaitForPortFile(port_file);
    CHECK(!port.empty()) << "the scheduler did not write its port";
    return "127.0.0.1:" + port;
  }

  // The step of the newest committed checkpoint in `run`, or -1.
  static int64_t LatestStep(const std::string& run) {
    std::string note;
    auto checkpoint = ResolveCheckpoint(run, &note);
    if (!checkpoint.ok()) return -1;
    auto manifest = ReadManifest(*checkpoint);
    return manifest.ok() ? manifest->step() : -1;
  }

  std::string dir_, spec_;
  std::unique_ptr<ChildProcess> scheduler_;
};

TEST_F(ServerReplacementTest, ALostServerIsReplacedAndTheJobEndsAsIfNothingHappened) {
  // The same job undisturbed, in local mode.
  const std::string reference = dir_ + "/reference";
  CommandResult straight = RunTessera({"train", spec_, "--run-dir", reference, "--threads", "1"});
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  auto reference_summary = ReadFileToString(reference + "/summary.json");
  ASSERT_TRUE(reference_summary.ok());

  const std::string run = dir_ + "/run";
  const std::string address = StartScheduler(run, {});
  std::vector<std::unique_ptr<ChildProcess>> servers, workers;
  for (int i = 0; i < 2; ++i) servers.push_back(Start("server" + std::to_string(i), {"server", "--scheduler", address}));
  for (int i = 0; i < 2; ++i) {
    workers.push_back(Start("worker" + std::to_string(i), {"worker", "--scheduler", address, "--threads", "1"}));
  }
  // Lose a server once a checkpoint is in, well before the end (480 steps).
  int64_t committed = -1;
  ASSERT_TRUE(WaitUntil([&] {
    committed = LatestStep(run);
    return committed >= 20;
  })) << "no checkpoint was committed";
  ASSERT_LT(committed, 400) << "the job was almost done before the loss";
  kill(servers[1]->pid(), SIGKILL);
  auto replacement = Start("server2", {"server", "--scheduler", address});

  EXPECT_EQ(scheduler_->Wait(240000), std::optional<int>(0));
  EXPECT_EQ(servers[0]->Wait(60000), std::optional<int>(0));
  EXPECT_EQ(replacement->Wait(60000), std::optional<int>(0));
  for (auto& w : workers) EXPECT_EQ(w->Wait(60000), std::optional<int>(0)) << w->label();

  auto summary = ReadFileToString(run + "/summary.json");
  ASSERT_TRUE(summary.ok()) << "no summary.json";
  EXPECT_EQ(JsonNumber(*summary, "server_rollbacks"), 1);
  EXPECT_GE(JsonNumber(*summary, "resumed_from_step"), 20);
  EXPECT_EQ(JsonNumber(*summary, "steps"), JsonNumber(*reference_summary, "steps"));
  EXPECT_EQ(JsonString(*summary, "params_sha256"), JsonString(*reference_summary, "params_sha256"))
      << "under BSP the rolled-back job must end with the undisturbed job's parameters";
  auto metrics = ReadFileToString(run + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("\"event\": \"rollback\""));
  auto log = ReadFileToString(dir_ + "/scheduler.log");
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(*log, HasSubstr("rolling the job back to its newest checkpoint"));
}

TEST_F(ServerReplacementTest, WithoutRollbacksALostServerEndsTheJob) {
  const std::string run = dir_ + "/run";
  const std::string address = StartScheduler(run, {"--max-restarts", "0"});
  std::vector<std::unique_ptr<ChildProcess>> nodes;
  for (int i = 0; i < 2; ++i) nodes.push_back(Start("server" + std::to_string(i), {"server", "--scheduler", address}));
  for (int i = 0; i < 2; ++i) {
    nodes.push_back(Start("worker" + std::to_string(i), {"worker", "--scheduler", address, "--threads", "1"}));
  }
  ASSERT_TRUE(WaitUntil([&] { return LatestStep(run) >= 0; })) << "no checkpoint was committed";
  kill(nodes[0]->pid(), SIGKILL);
  EXPECT_EQ(scheduler_->Wait(60000), std::optional<int>(1));
  for (size_t i = 1; i < nodes.size(); ++i) EXPECT_TRUE(nodes[i]->Wait(60000).has_value()) << nodes[i]->label();
  auto log = ReadFileToString(dir_ + "/scheduler.log");
  ASSERT_TRUE(log.ok());
  // Noticed by its missing heartbeats, or by a message that finds no connection.
  EXPECT_THAT(*log, ::testing::ContainsRegex("SERVER [01] \\(pid [0-9]+\\) .*it is lost"));
  EXPECT_FALSE(FileExists(run + "/summary.json"));
}

// NODE_EXITED (what the local launcher sends when a child exits) before the
// job has formed: a worker's is ignored (its rank is not in use yet), a
// server's ends the formation at once instead of at the register timeout.
TEST_F(ServerReplacementTest, ANodeThatExitsBeforeTheJobFormsIsHandledAtOnce) {
  // A register timeout far beyond the waits below: only NODE_EXITED can end the formation.
  const std::string token_file = dir_ + "/launcher.token";
  ASSERT_OK(WriteFileAtomic(token_file, "the launcher's secret"));
  const std::string address =
      StartScheduler(dir_ + "/run", {"--register-timeout", "3600", "--launcher-token-file", token_file});
  // One server and one worker: the job (2 + 2) cannot start.
  auto server = Start("server0", {"server", "--scheduler", address});
  auto worker = Start("worker0", {"worker", "--scheduler", address, "--threads", "1"});
  ASSERT_TRUE(WaitForText(dir_ + "/scheduler.log", "SERVER 0 registered"));
  ASSERT_TRUE(WaitForText(dir_ + "/scheduler.log", "WORKER 0 registered"));
  ZmqTransport transport;
  auto endpoint = NormalizeEndpoint(address);
  ASSERT_TRUE(endpoint.ok());
  auto socket = transport.Connect(SocketKind::kDealer, *endpoint);
  ASSERT_TRUE(socket.ok());
  auto exited = [&](const ChildProcess& child) {
    proto::Header h;
    h.set_op(proto::NODE_EXITED);
    h.mutable_node_exited()->set_pid(child.pid());
    h.mutable_node_exited()->set_exit_code(137);
    h.mutable_node_exited()->set_token("the launcher's secret");
    ASSERT_OK((*socket)->Send(h));
  };
  kill(worker->pid(), SIGKILL);
  exited(*worker);
  // The line it writes once it has handled the exit and carried on.
  ASSERT_TRUE(WaitForText(dir_ + "/scheduler.log", "process " + std::to_string(worker->pid()) + " exited; it is no "
                                                   "node taking part"));
  EXPECT_FALSE(scheduler_->Poll().has_value()) << "a worker's exit before the start ends nothing";
  kill(server->pid(), SIGKILL);
  exited(*server);
  EXPECT_EQ(scheduler_->Wait(120000), std::optional<int>(1)) << "it must not wait for the register timeout";
  EXPECT_THAT(FileText(dir_ + "/scheduler.log"),
              HasSubstr("SERVER 0 (pid " + std::to_string(server->pid()) + ") exited with code 137: it is lost before "
                        "the job started"));
}

}  // namespace
}  // namespace tessera
