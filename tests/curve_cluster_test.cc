// CurveZMQ end to end, with real processes: `tessera keygen`, the key-file
// mistakes of every role (one line, exit 2, nothing started), loopback-only
// binding without keys, a `tessera train --curve` cluster ending with the
// plain run's parameters, and nodes without an admitted key that can
// neither register nor push while the job's result stays the same.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/curve_keys.h"
#include "core/file_util.h"
#include "core/zmq_transport.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

bool HaveFashionMnist() { return FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

std::string Example() { return SourceDir() + "/examples/fmnist-mlp.pbtxt"; }

int ModeOf(const std::string& path) {
  struct stat st = {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// The number of lines of `text`, not counting a final newline.
int Lines(const std::string& text) {
  int lines = 0;
  for (size_t i = 0; i < text.size(); ++i) lines += text[i] == '\n' && i + 1 < text.size();
  return text.empty() ? 0 : lines + 1;
}

TEST(KeygenTest, WritesAPairItsRolesRead) {
  ScopedTestDir dir;
  CommandResult r = RunTessera({"keygen", "--out", dir.File("keys"), "--name", "worker-3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string secret = FileText(dir.File("keys/worker-3.secret"));
  const std::string pub = FileText(dir.File("keys/worker-3.pub"));
  EXPECT_EQ(ModeOf(dir.File("keys/worker-3.secret")), 0600);
  // One line each; the reader checks the key is 40 Z85 characters.
  auto pair = ReadCurveSecretKey(dir.File("keys/worker-3.secret"));
  ASSERT_OK(pair.status());
  EXPECT_EQ(secret, "curve-secret-key " + pair->secret_key + "\n");
  EXPECT_EQ(pub, "curve-public-key " + pair->public_key + " worker-3\n");
  EXPECT_THAT(r.output, HasSubstr(pair->public_key));
}

TEST(KeygenTest, MistakesAreOneLineAndExit2) {
  ScopedTestDir dir;
  CommandResult none = RunTessera({"keygen"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(none.output, "tessera keygen: --out DIR is required\n");
  ASSERT_EQ(RunTessera({"keygen", "--out", dir.path()}).exit_code, 0);
  const std::string before = FileText(dir.File("node.secret"));
  CommandResult again = RunTessera({"keygen", "--out", dir.path()});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.output, HasSubstr("node.secret exists; keygen never overwrites a key"));
  EXPECT_EQ(Lines(again.output), 1) << again.output;
  EXPECT_EQ(FileText(dir.File("node.secret")), before);
  CommandResult bad_name = RunTessera({"keygen", "--out", dir.path(), "--name", "../up"});
  EXPECT_EQ(bad_name.exit_code, 2);
  EXPECT_EQ(Lines(bad_name.output), 1) << bad_name.output;
}

// Key files of every kind and mistake, made once.
class KeyMistakesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(RunTessera({"keygen", "--out", dir_.path(), "--name", "scheduler"}).exit_code, 0);
    ASSERT_EQ(RunTessera({"keygen", "--out", dir_.path(), "--name", "node"}).exit_code, 0);
    std::ofstream(dir_.File("short.secret")) << "curve-secret-key abc\n";
  }

  // Runs a role that must refuse at once; checks the one line names `expected`.
  void ExpectRefusal(std::vector<std::string> args, const std::string& expected) {
    args.push_back("--port-file");
    args.push_back(dir_.File("port"));
    CommandResult r = RunTessera(args, 60);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(expected));
    EXPECT_EQ(Lines(r.output), 1) << r.output;
    EXPECT_FALSE(FileExists(dir_.File("port"))) << "the scheduler started listening";
  }

  ScopedTestDir dir_;
};

TEST_F(KeyMistakesTest, TheSchedulerNamesEachBadKeyFile) {
  const std::vector<std::string> base = {"scheduler", "--spec", Example(), "--port", "0"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ExpectRefusal(with({"--curve-secret-key", dir_.File("absent.secret"), "--curve-allow-keys", dir_.File("node.pub")}),
                "tessera scheduler: --curve-secret-key: " + dir_.File("absent.secret") + ": cannot read the key file");
  ExpectRefusal(
      with({"--curve-secret-key", dir_.File("scheduler.pub"), "--curve-allow-keys", dir_.File("node.pub")}),
      dir_.File("scheduler.pub") +
          ":1:1: expected curve-secret-key, got curve-public-key (a public key where a secret key is needed)");
  ExpectRefusal(with({"--curve-secret-key", dir_.File("short.secret"), "--curve-allow-keys", dir_.File("node.pub")}),
                dir_.File("short.secret") + ":1:18: a CURVE key is 40 Z85 characters, got 3");
  ExpectRefusal(
      with({"--curve-secret-key", dir_.File("scheduler.secret"), "--curve-allow-keys", dir_.File("node.secret")}),
      "--curve-allow-keys: " + dir_.File("node.secret") + ":1:1: expected curve-public-key");
  ExpectRefusal(with({"--curve-secret-key", dir_.File("scheduler.secret")}),
                "--curve-allow-keys is required with --curve-secret-key");
}

TEST_F(KeyMistakesTest, ServersAndWorkersNameEachBadKeyFile) {
  const std::string scheduler = "127.0.0.1:1";  // never reached: the flags are checked first
  CommandResult worker = RunTessera({"worker", "--scheduler", scheduler, "--curve-secret-key", dir_.File("node.secret"),
                                     "--scheduler-public-key", dir_.File("scheduler.secret")},
                                    60);
  EXPECT_EQ(worker.exit_code, 2);
  EXPECT_THAT(worker.output, HasSubstr("--scheduler-public-key: " + dir_.File("scheduler.secret") +
                                       ":1:1: expected curve-public-key, got curve-secret-key"));
  CommandResult no_key =
      RunTessera({"worker", "--scheduler", scheduler, "--curve-secret-key", dir_.File("node.secret")}, 60);
  EXPECT_EQ(no_key.exit_code, 2);
  EXPECT_THAT(no_key.output, HasSubstr("--scheduler-public-key is required with --curve-secret-key"));
  CommandResult server = RunTessera({"server", "--scheduler", scheduler, "--curve-secret-key", dir_.File("node.secret"),
                                     "--scheduler-public-key", dir_.File("scheduler.pub")},
                                    60);
  EXPECT_EQ(server.exit_code, 2);
  EXPECT_THAT(server.output, HasSubstr("--curve-allow-keys is required with --curve-secret-key"));
  for (const CommandResult& r : {worker, no_key, server}) EXPECT_EQ(Lines(r.output), 1) << r.output;
}

TEST_F(KeyMistakesTest, WithoutKeysOnlyLoopbackUnlessInsecure) {
  ExpectRefusal({"scheduler", "--spec", Example(), "--host", "0.0.0.0", "--port", "0"},
                "tessera scheduler: --host 0.0.0.0 is beyond loopback: give CURVE keys");
  CommandResult server = RunTessera({"server", "--scheduler", "127.0.0.1:1", "--host", "10.1.2.3"}, 60);
  EXPECT_EQ(server.exit_code, 2);
  EXPECT_THAT(server.output, HasSubstr("--host 10.1.2.3 is beyond loopback"));
  // --insecure lets it listen, with a warning (once it has planned the job: the data must be there).
  if (!HaveFashionMnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  auto scheduler = ChildProcess::Start("scheduler",
                                       {TesseraBinary(), "scheduler", "--spec", Example(), "--host", "0.0.0.0",
                                        "--insecure", "--port", "0", "--port-file", dir_.File("port")},
                                       dir_.File("scheduler.log"));
  ASSERT_TRUE(scheduler.ok());
  EXPECT_FALSE(WaitForPortFile(dir_.File("port")).empty()) << FileText(dir_.File("scheduler.log"));
  EXPECT_THAT(FileText(dir_.File("scheduler.log")), HasSubstr("INSECURE: listening on 0.0.0.0 without CURVE"));
  (*scheduler)->Stop(3000);
}

// The fmnist example, short, with heartbeats that tolerate workers stopped
// while intruders try their luck (a minute).
class CurveJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveFashionMnist()) return;
    base_ = new std::string(MakeTempDir("curve-job"));
    std::string text = FileText(Example());
    const size_t at = text.find("cluster {");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 9, "cluster {\n  heartbeat_timeout_ms: 60000");
    std::ofstream(*base_ + "/spec.pbtxt") << text;
    CommandResult plain = RunTessera(Job(*base_ + "/plain"));
    ASSERT_EQ(plain.exit_code, 0) << plain.output;
    plain_digest_ = new std::string(Digest(*base_ + "/plain"));
    ASSERT_EQ(plain_digest_->size(), 64u);
  }

  void SetUp() override {
    if (!HaveFashionMnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  }

  static std::vector<std::string> Job(const std::string& run) {
    return {"train", *base_ + "/spec.pbtxt", "--run-dir", run,         "--epochs", "3", "--max-train-examples",
            "6000",  "--max-test-examples",  "1000",      "--threads", "1"};
  }

  static std::string Digest(const std::string& run) {
    auto text = ReadFileToString(run + "/summary.json");
    return text.ok() ? JsonString(*text, "params_sha256") : "";
  }

  static std::string* base_;
  static std::string* plain_digest_;
};

std::string* CurveJobTest::base_ = nullptr;
std::string* CurveJobTest::plain_digest_ = nullptr;

TEST_F(CurveJobTest, ACurveClusterEndsWithThePlainRunsParameters) {
  const std::string run = *base_ + "/curve";
  std::vector<std::string> args = Job(run);
  args.push_back("--curve");
  CommandResult r = RunTessera(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Digest(run), *plain_digest_);
  for (const std::string role : {"scheduler", "server-0", "server-1", "worker-0", "worker-1"}) {
    EXPECT_THAT(FileText(run + "/logs/" + role + ".log"), HasSubstr("CURVE on: public key")) << role;
  }
  EXPECT_EQ(ModeOf(run + "/keys/scheduler.secret"), 0600);
}

TEST_F(CurveJobTest, NodesWithoutAnAdmittedKeyCannotRegisterOrPush) {
  const std::string run = *base_ + "/intruded";
  std::vector<std::string> args = Job(run);
  args.insert(args.begin(), TesseraBinary());
  args.push_back("--curve");
  auto launcher = ChildProcess::Start("train", args, *base_ + "/intruded.log");
  ASSERT_TRUE(launcher.ok());
  // Intruders come while the job trains, with its workers stopped: it cannot end before they tried.
  ASSERT_TRUE(WaitForText(run + "/logs/scheduler.log", "epoch 1/3 starts")) << FileText(*base_ + "/intruded.log");
  std::vector<int> workers;
  for (int pid : ChildrenOf((*launcher)->pid())) {
    if (CommandLine(pid).find(" worker ") != std::string::npos) workers.push_back(pid);
  }
  ASSERT_EQ(workers.size(), 2u);
  for (int pid : workers) kill(pid, SIGSTOP);
  const std::string port = FileText(run + "/scheduler.port");
  ASSERT_FALSE(port.empty());
  const std::string scheduler = "127.0.0.1:" + port.substr(0, port.find('\n'));

  // A worker with a key of its own that no allow-list holds, and one without keys.
  ASSERT_EQ(RunTessera({"keygen", "--out", *base_ + "/stranger"}).exit_code, 0);
  auto stranger_keys = ReadCurveSecretKey(*base_ + "/stranger/node.secret");
  ASSERT_OK(stranger_keys.status());
  auto stranger =
      ChildProcess::Start("stranger",
                          {TesseraBinary(), "worker", "--scheduler", scheduler, "--curve-secret-key",
                           *base_ + "/stranger/node.secret", "--scheduler-public-key", run + "/keys/scheduler.pub"},
                          *base_ + "/stranger.log");
  ASSERT_TRUE(stranger.ok());
  auto keyless =
      ChildProcess::Start("keyless", {TesseraBinary(), "worker", "--scheduler", scheduler}, *base_ + "/keyless.log");
  ASSERT_TRUE(keyless.ok());
  const std::string refused = "refused a node at 127.0.0.1 with public key " + stranger_keys->public_key;
  EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log", refused, 60));
  EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log",
                          "refused a connection on tcp://" + scheduler + ": ", 60));

  // The stranger's key pushes straight to a server: refused there too.
  const std::string listening = "server listening on ";
  const std::string server_log = FileText(run + "/logs/server-0.log");
  const size_t at = server_log.find(listening);
  ASSERT_NE(at, std::string::npos);
  const std::string endpoint =
      server_log.substr(at + listening.size(), server_log.find(',', at) - at - listening.size());
  auto server_key = ReadCurvePublicKey(run + "/keys/server.pub");
  ASSERT_OK(server_key.status());
  ZmqTransport transport(CurveSettings{*stranger_keys, {}, nullptr});
  auto pusher = transport.Connect(SocketKind::kDealer, endpoint, {.server_public_key = *server_key});
  ASSERT_OK(pusher.status());
  proto::Header push;
  push.set_op(proto::PUSH);
  push.set_step(1);
  ASSERT_OK((*pusher)->Send(push));
  EXPECT_TRUE(WaitForText(run + "/logs/server-0.log", refused, 60));

  for (int pid : workers) kill(pid, SIGCONT);
  EXPECT_EQ((*launcher)->Wait(300000), std::optional<int>(0)) << FileText(*base_ + "/intruded.log");
  EXPECT_EQ(Digest(run), *plain_digest_);
  // Neither intruder ever registered.
  const std::string log = FileText(run + "/logs/scheduler.log");
  for (const auto* intruder : {&*stranger, &*keyless}) {
    EXPECT_THAT(log, Not(HasSubstr("(pid " + std::to_string((*intruder)->pid()) + ")")));
    (*intruder)->Stop(3000);
  }
}

}  // namespace
}  // namespace tessera
