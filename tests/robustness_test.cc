// Bad bytes on the wire never crash a node or change a result: random bytes
// and truncated or inconsistent multipart messages sent to the scheduler's
// and a server's ports while a BSP job runs are logged and dropped, and the
// job ends with the same parameters as an undisturbed run. With CURVE on
// (`tessera train --curve`) none of it gets past the handshake: a peer with
// an unknown key is refused and logged, nothing reaches a decoder, and the
// result is the same again.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "core/file_util.h"
#include "proto/wire.pb.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

// The job's spec: the example with heartbeats that tolerate the workers
// being stopped while the attack lands (a minute; the attack takes less).
std::string WriteSpec(const std::string& dir) {
  std::string text = FileText(SourceDir() + "/examples/fmnist-mlp.pbtxt");
  const size_t at = text.find("cluster {");
  EXPECT_NE(at, std::string::npos);
  text.replace(at, 9, "cluster {\n  heartbeat_timeout_ms: 60000");
  const std::string path = dir + "/spec.pbtxt";
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> Job(const std::string& spec, const std::string& run) {
  return {"train", spec, "--run-dir", run, "--epochs", "3", "--max-train-examples", "6000", "--max-test-examples",
          "1000", "--threads", "1"};
}

std::string Digest(const std::string& run) {
  auto text = ReadFileToString(run + "/summary.json");
  if (!text.ok()) return "";
  return JsonString(*text, "params_sha256");
}

// Waits for `pattern` in a file; returns the text after it up to the end of the line.
std::string WaitForLine(const std::string& path, const std::string& pattern, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    auto text = ReadFileToString(path);
    if (text.ok()) {
      const size_t at = text->find(pattern);
      if (at != std::string::npos) {
        const size_t begin = at + pattern.size();
        const size_t end = text->find('\n', begin);
        if (end != std::string::npos) return text->substr(begin, end - begin);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

// Raw TCP: random bytes straight at the port (not even a ZeroMQ greeting).
void SendRawBytes(int port, std::mt19937* rng) {
  for (int i = 0; i < 5; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      std::string junk(1 + (*rng)() % 4096, '\0');
      for (char& c : junk) c = static_cast<char>((*rng)());
      ssize_t ignored = write(fd, junk.data(), junk.size());
      (void)ignored;
    }
    close(fd);
  }
}

std::string HeaderBytes(proto::Op op, int ranges, uint64_t job_id) {
  proto::Header h;
  h.set_op(op);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  h.set_job_id(job_id);
  h.set_sender_rank(0);
  for (int i = 0; i < ranges; ++i) {
    proto::KeyRange* r = h.add_ranges();
    r->set_begin(i * 100);
    r->set_end(i * 100 + 10);
  }
  return h.SerializeAsString();
}

// The hostile tester's PUSH (issue 19, item 7), 31 bytes: a header naming one
// sparse range of 2^28 keys (1 GiB as float32) and a sparse frame of no runs.
std::vector<std::string> ForgedSparsePush() {
  proto::Header h;
  h.set_op(proto::PUSH);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(0);
  r->set_end(uint64_t{1} << 28);
  r->set_sparse(true);
  return {h.SerializeAsString(), std::string(8, '\0')};
}

// The peak resident set (VmHWM in /proc/PID/status) of a process, in MiB; -1
// when it cannot be read.
int64_t PeakRssMib(int pid) {
  const std::string status = FileText("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("VmHWM:");
  if (at == std::string::npos) return -1;
  return std::stoll(status.substr(at + 6)) / 1024;  // the file gives kB
}

// A CURVE key pair for a peer no allow-list admits, and the key of the node it
// attacks; empty for a plain peer.
struct PeerKeys {
  std::string public_key, secret_key, server_key;
};

// Sends multipart messages from one DEALER, which a ROUTER receives in order.
class Peer {
 public:
  Peer(zmq::context_t* ctx, int port, const PeerKeys& keys = {}) : socket_(*ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 1000);
    if (!keys.server_key.empty()) {
      socket_.set(zmq::sockopt::curve_serverkey, keys.server_key);
      socket_.set(zmq::sockopt::curve_publickey, keys.public_key);
      socket_.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    }
    socket_.connect("tcp://127.0.0.1:" + std::to_string(port));
  }
  void Send(const std::vector<std::string>& parts) {
    for (size_t i = 0; i < parts.size(); ++i) {
      socket_.send(zmq::buffer(parts[i]), i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

 private:
  zmq::socket_t socket_;
};

// ZeroMQ peers sending malformed multipart messages.
void SendBadMessages(zmq::context_t* ctx, int port, std::mt19937* rng, const PeerKeys& keys = {}) {
  Peer peer(ctx, port, keys);
  // The messages the test looks for in the logs come first: a role logs only
  // the first drops of a burst in full (core/drop_log.h), then counts them.
  peer.Send({HeaderBytes(proto::PUSH, 1, 12345), std::string(40, 'x')});  // well formed, unknown job
  peer.Send({""});                                                    // an empty header
  peer.Send({HeaderBytes(proto::PUSH, 2, 0), std::string(40, 'x')});  // truncated: 2 ranges, 1 frame
  peer.Send({HeaderBytes(proto::PUSH, 1, 0), std::string(7, 'x')});   // frame of the wrong size
  peer.Send({HeaderBytes(proto::PHASE_DONE, 0, 12345)});              // control op from a stranger
  peer.Send({HeaderBytes(proto::LEASE_REQUEST, 0, 0)});
  peer.Send({HeaderBytes(proto::REGISTER, 0, 0)});                    // REGISTER without a role
  peer.Send({HeaderBytes(static_cast<proto::Op>(999), 0, 0)});        // unknown op
  for (int i = 0; i < 5; ++i) peer.Send(ForgedSparsePush());         // claims 1 GiB each
  for (int i = 0; i < 50; ++i) {
    std::string junk(1 + (*rng)() % 512, '\0');
    for (char& c : junk) c = static_cast<char>((*rng)());
    peer.Send({junk});              // a header that does not parse
    peer.Send({junk, junk, junk});  // several random frames
  }
}

// The public key in a key file (core/curve_keys.h's "curve-public-key KEY NAME").
std::string PublicKeyIn(const std::string& path) {
  const std::string text = FileText(path);
  const size_t at = text.find(' ');
  return at == std::string::npos ? "" : text.substr(at + 1, 40);
}

// Parameter: whether the attacked cluster runs with CURVE.
class GarbageTest : public ::testing::TestWithParam<bool> {};

TEST_P(GarbageTest, GarbageOnEveryPortIsDroppedAndTheResultHolds) {
  if (!FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  const bool curve = GetParam();
  const std::string base = MakeTempDir("garbage");
  const std::string spec = WriteSpec(base);
  CommandResult clean = RunTessera(Job(spec, base + "/clean"));
  ASSERT_EQ(clean.exit_code, 0) << clean.output;

  const std::string run = base + "/attacked";
  std::vector<std::string> args = Job(spec, run);
  if (curve) args.push_back("--curve");
  args.insert(args.begin(), TesseraBinary());
  auto launcher = ChildProcess::Start("train", args, base + "/attacked.log");
  ASSERT_TRUE(launcher.ok());
  // Strike once training is under way (the servers hold their key ranges and
  // know the job), with the workers stopped: the job cannot end before the
  // attack has landed, whatever the machine's load.
  ASSERT_TRUE(WaitForText(run + "/logs/scheduler.log", "epoch 1/3 starts")) << FileText(base + "/attacked.log");
  std::vector<int> workers;
  for (int pid : ChildrenOf((*launcher)->pid())) {
    if (CommandLine(pid).find(" worker ") != std::string::npos) workers.push_back(pid);
  }
  ASSERT_EQ(workers.size(), 2u);
  for (int pid : workers) kill(pid, SIGSTOP);
  ASSERT_FALSE(FileExists(run + "/summary.json")) << "the job ended before its workers were stopped";
  // (Waits of 30 s at most: the stopped workers' heartbeat timeout is 60 s.)
  ASSERT_TRUE(WaitForText(run + "/logs/server-0.log", "server rank ", 30));
  const std::string scheduler_port = WaitForLine(run + "/scheduler.port", "", 30000);
  const std::string server_endpoint = WaitForLine(run + "/logs/server-0.log", "server listening on tcp://127.0.0.1:", 30000);
  ASSERT_FALSE(scheduler_port.empty());
  ASSERT_FALSE(server_endpoint.empty());
  const int server_port = std::stoi(server_endpoint.substr(0, server_endpoint.find(',')));

  std::mt19937 rng(42);
  zmq::context_t ctx;
  // The lines looked for below are among the first drops (a role logs only
  // the first of a burst in full): raw bytes, which ZeroMQ may take for
  // messages too, come once they are in.
  if (curve) {
    // Plain peers fail the handshake; a peer with a key of its own is refused by name.
    char public_key[41], secret_key[41];
    ASSERT_EQ(zmq_curve_keypair(public_key, secret_key), 0);
    const std::string stranger = std::string("refused a node at 127.0.0.1 with public key ") + public_key;
    SendBadMessages(&ctx, std::stoi(scheduler_port), &rng);
    SendBadMessages(&ctx, server_port, &rng);
    SendBadMessages(&ctx, std::stoi(scheduler_port), &rng,
                    {public_key, secret_key, PublicKeyIn(run + "/keys/scheduler.pub")});
    SendBadMessages(&ctx, server_port, &rng, {public_key, secret_key, PublicKeyIn(run + "/keys/server.pub")});
    EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log", stranger, 30));
    EXPECT_TRUE(WaitForText(run + "/logs/server-0.log", stranger, 30));
  } else {
    for (int port : {std::stoi(scheduler_port), server_port}) SendBadMessages(&ctx, port, &rng);
    EXPECT_TRUE(WaitForText(run + "/logs/scheduler.log", "dropped a malformed message", 30));
    EXPECT_TRUE(WaitForText(run + "/logs/server-0.log", "dropped a malformed message", 30));
    EXPECT_TRUE(WaitForText(run + "/logs/server-0.log", "dropped PUSH for job 12345", 30));
  }
  for (int port : {std::stoi(scheduler_port), server_port}) SendRawBytes(port, &rng);
  // The forged pushes (1 GiB each, as claimed) made nothing of that size.
  for (int pid : ChildrenOf((*launcher)->pid())) {
    if (CommandLine(pid).find(" worker ") != std::string::npos) continue;
    EXPECT_LT(PeakRssMib(pid), 512) << CommandLine(pid);
  }
  for (int pid : workers) kill(pid, SIGCONT);

  EXPECT_EQ((*launcher)->Wait(120000), std::optional<int>(0));
  EXPECT_EQ(Digest(run), Digest(base + "/clean"));
  EXPECT_EQ(Digest(run).size(), 64u);
  if (curve) {
    // Nothing got past a handshake to a decoder.
    for (const std::string role : {"scheduler", "server-0", "server-1"}) {
      EXPECT_EQ(FileText(run + "/logs/" + role + ".log").find("dropped a malformed message"), std::string::npos)
          << role;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Transport, GarbageTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Curve" : "Plain"; });

// Issue 19, item 7: five 31-byte PUSHes claiming 1 GiB each made a receiver
// allocate (and zero) 1 GiB per message, before anything checked the sender
// or the range. A scheduler with no job yet and a server still waiting for
// its cluster map must keep their peak memory where it was.
TEST(RobustnessTest, ForgedSparsePushesDoNotGrowASchedulerOrAServer) {
  const std::string dir = MakeTempDir("forged");
  WriteTinyImageData(dir, 64, 16);
  const std::string spec = dir + "/spec.pbtxt";
  std::ofstream(spec) << "name: \"forged\"\ndata { dir: \"" << dir
                      << "\" }\nmodel { layer { linear { out_features: 10 } } }\ncluster { servers: 1 workers: 1 }\n";
  // The job never forms (no worker comes): the scheduler waits for one, the
  // server for its cluster map.
  auto scheduler = ChildProcess::Start("scheduler",
                                       {TesseraBinary(), "scheduler", "--spec", spec, "--host", "127.0.0.1", "--port",
                                        "0", "--port-file", dir + "/scheduler.port"},
                                       dir + "/scheduler.log");
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
  const std::string scheduler_port = WaitForPortFile(dir + "/scheduler.port");
  ASSERT_FALSE(scheduler_port.empty()) << FileText(dir + "/scheduler.log");
  auto server = ChildProcess::Start(
      "server", {TesseraBinary(), "server", "--scheduler", "127.0.0.1:" + scheduler_port, "--host", "127.0.0.1"},
      dir + "/server.log");
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string server_endpoint = WaitForLine(dir + "/server.log", "server listening on tcp://127.0.0.1:", 60000);
  ASSERT_FALSE(server_endpoint.empty()) << FileText(dir + "/server.log");
  const int server_port = std::stoi(server_endpoint.substr(0, server_endpoint.find(',')));

  struct Target {
    std::string name, log;
    int pid, port;
    int64_t peak_before_mib = -1;
  };
  std::vector<Target> targets = {{"scheduler", dir + "/scheduler.log", (*scheduler)->pid(), std::stoi(scheduler_port)},
                                 {"server", dir + "/server.log", (*server)->pid(), server_port}};
  zmq::context_t ctx;
  for (Target& t : targets) {
    t.peak_before_mib = PeakRssMib(t.pid);
    ASSERT_GT(t.peak_before_mib, 0) << t.name;
    Peer peer(&ctx, t.port);
    for (int i = 0; i < 5; ++i) peer.Send(ForgedSparsePush());
    // Messages of one peer arrive in order: once this one is logged, the
    // forged ones have been received and handled.
    peer.Send({"not a header"});
    ASSERT_TRUE(WaitForText(t.log, "dropped a malformed message", 60)) << t.name << ": " << FileText(t.log);
  }
  for (const Target& t : targets) {
    const int64_t peak = PeakRssMib(t.pid);
    std::cout << t.name << ": peak resident set " << t.peak_before_mib << " MiB before 5 forged pushes, " << peak
              << " MiB after" << std::endl;
    EXPECT_LT(peak, t.peak_before_mib + 64) << t.name << " allocated what a forged push claims (1 GiB each)";
    EXPECT_TRUE(IsRunning(t.pid)) << t.name;
  }
  (*server)->Stop(3000);
  (*scheduler)->Stop(3000);
}

}  // namespace
}  // namespace tessera
