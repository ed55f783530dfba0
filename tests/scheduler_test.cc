// The scheduler in one process: its event loop runs on a thread over the
// in-memory transport (no ZeroMQ), the servers and workers are played by
// the test, speaking the wire protocol by hand, and time is a ManualClock the
// test moves. Deadlines (register, heartbeat) are reached when the test says,
// not after real seconds.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/clock.h"
#include "core/file_util.h"
#include "core/in_memory_transport.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "scheduler/job_shape.h"
#include "tests/checkpoint_fixture.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using std::chrono::seconds;

constexpr char kToken[] = "the launcher's secret";

// A server or worker played by the test.
class FakeNode {
 public:
  FakeNode(Transport* transport, const std::string& scheduler, proto::Role role, int pid)
      : role_(role), pid_(pid) {
    auto socket = transport->Connect(SocketKind::kDealer, scheduler);
    EXPECT_OK(socket.status());
    if (socket.ok()) socket_ = std::move(socket).value();
  }

  // `token`: the cluster's secret, when the node knows one.
  void Register(const std::string& token = "") {
    proto::Header h;
    h.set_op(proto::REGISTER);
    h.mutable_register_()->set_role(role_);
    h.mutable_register_()->set_pid(pid_);
    if (!token.empty()) h.mutable_register_()->set_token(token);
    if (role_ == proto::SERVER) h.mutable_register_()->set_address("mem://server-" + std::to_string(pid_));
    Send(h);
  }

  // The next message from the scheduler with `op` (others are skipped);
  // nullopt when none comes within a minute. A CLUSTER_MAP teaches the node
  // its rank and the job's id.
  std::optional<Message> Await(proto::Op op) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = socket_->Receive(100);
      if (!m.ok() || m->header.op() != op) continue;
      if (op == proto::CLUSTER_MAP) {
        job_id_ = m->header.job_id();
        rank_ = m->header.cluster_map().rank();
      }
      return std::move(m).value();
    }
    return std::nullopt;
  }

  // Sends `h` as this node (job id, role and rank filled in).
  void Send(proto::Header h) {
    h.set_job_id(job_id_);
    h.set_sender_role(role_);
    h.set_sender_rank(rank_);
    EXPECT_OK(socket_->Send(h));
  }

  // A heartbeat, and its answer: once answered, the scheduler has counted it.
  void Beat() {
    proto::Header h;
    h.set_op(proto::HEARTBEAT);
    Send(h);
    EXPECT_TRUE(Await(proto::HEARTBEAT).has_value()) << "no answer to a heartbeat";
  }

  int pid() const { return pid_; }
  int rank() const { return rank_; }

 private:
  proto::Role role_;
  int pid_;
  std::unique_ptr<Socket> socket_;
  uint64_t job_id_ = 0;
  int rank_ = -1;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("scheduler");
    WriteTinyImageData(dir_, 64, 16);
    auto spec = ParseJobSpec(R"pb(
      model { layer { linear { out_features: 10 } } }
      cluster { servers: 1 workers: 1 heartbeat_interval_ms: 500 heartbeat_timeout_ms: 5000 }
    )pb",
                             "test spec");
    ASSERT_OK(spec.status());
    options_.spec = *spec;
    options_.spec.mutable_data()->set_dir(dir_);
    options_.clock = &clock_;
    options_.register_timeout_s = 120;
    options_.launcher_token = kToken;
  }

  void TearDown() override {
    stop_ = true;  // a scheduler still running stops (Aborted)
    if (thread_.joinable()) thread_.join();
  }

  // Runs the scheduler on a thread; returns its address. A test may run one
  // after another (after Result()), each at an address of its own.
  std::string Start(const std::string& endpoint = "mem://scheduler") {
    auto socket = transport_.Bind(SocketKind::kRouter, endpoint);
    EXPECT_OK(socket.status());
    done_ = false;
    scheduler_ = std::make_unique<Scheduler>(&transport_, options_, &stop_, std::move(socket).value());
    thread_ = std::thread([this] {
      result_ = scheduler_->Run();
      done_ = true;
    });
    return endpoint;
  }

  // Waits for Run() to return; its status.
  Status Result() {
    EXPECT_TRUE(WaitUntil([this] { return done_.load(); }, 60)) << "the scheduler is still running";
    if (thread_.joinable()) thread_.join();
    return result_;
  }

  // One server and one worker register; the job starts (the worker gets its
  // first phase).
  void FormTheJob(FakeNode* server, FakeNode* worker) {
    server->Register();
    ASSERT_TRUE(server->Await(proto::CLUSTER_MAP).has_value());
    proto::Header ready;
    ready.set_op(proto::SERVER_READY);
    server->Send(ready);
    worker->Register();
    ASSERT_TRUE(worker->Await(proto::CLUSTER_MAP).has_value());
    ASSERT_TRUE(worker->Await(proto::START_PHASE).has_value());
  }

  std::string dir_;
  SchedulerOptions options_;
  ManualClock clock_;
  InMemoryTransport transport_;  // declared before scheduler_: it outlives the socket
  std::atomic<bool> stop_{false};
  std::unique_ptr<Scheduler> scheduler_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  Status result_;
};

// Collects the WARNING lines glog writes while it exists (from any thread).
class WarningLines : public google::LogSink {
 public:
  WarningLines() { google::AddLogSink(this); }
  ~WarningLines() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int, const struct ::tm*, const char* message,
            size_t length) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (severity == google::GLOG_WARNING) lines_.emplace_back(message, length);
  }
  // How many lines so far contain `text`.
  int Count(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const std::string& line : lines_) n += line.find(text) != std::string::npos;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// Issue 19, item 9: every dropped message was a log line (5 MB per 40,000 of
// junk). Now the first 10 of an interval (60 s) are, and the next interval's
// first drop says how many were not.
TEST_F(SchedulerTest, JunkFromAStrangerIsLoggedAtAFewLinesPerInterval) {
  WarningLines warnings;
  const std::string address = Start();
  FakeNode stranger(&transport_, address, proto::SERVER, 401);
  proto::Header progress;
  progress.set_op(proto::PROGRESS);
  for (int i = 0; i < 1000; ++i) stranger.Send(progress);  // from an unregistered peer: dropped
  // A peer's messages are handled in order: once it has its map, all 1000 were.
  stranger.Register();
  ASSERT_TRUE(stranger.Await(proto::CLUSTER_MAP).has_value());
  EXPECT_EQ(warnings.Count("dropped PROGRESS from an unregistered peer"), 10);
  EXPECT_EQ(warnings.Count("more messages since"), 0);

  clock_.Advance(seconds(61));
  stranger.Send(progress);  // registered now, but PROGRESS is a worker's: dropped
  ASSERT_TRUE(WaitUntil([&] { return warnings.Count("dropped PROGRESS from SERVER 0") == 1; }, 60));
  EXPECT_EQ(warnings.Count("dropped 990 more messages since the last one logged, 61.0 s ago (at most 10 are logged "
                           "per 60.0 s)"),
            1);
}

TEST_F(SchedulerTest, AJobThatDoesNotFormGivesUpAtTheRegisterTimeoutOfItsClock) {
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 101);
  server.Register();
  ASSERT_TRUE(server.Await(proto::CLUSTER_MAP).has_value());  // counted: the job has its one server
  clock_.Advance(seconds(119));
  clock_.Advance(seconds(2));
  const Status s = Result();
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_EQ(s.message(), "1 of 1 servers and 0 of 1 workers registered within 120 s");
}

TEST_F(SchedulerTest, ASilentServerIsLostAtTheHeartbeatTimeout) {
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 201);
  FakeNode worker(&transport_, address, proto::WORKER, 202);
  FormTheJob(&server, &worker);
  // 3 s in, the worker beats; the server does not. At 6 s only the server
  // has been silent past the 5 s timeout.
  clock_.Advance(seconds(3));
  worker.Beat();
  clock_.Advance(seconds(3));
  const Status s = Result();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(s.message(), "SERVER 0 (pid 201) sent no heartbeat for 6.00 s: it is lost");
  auto shutdown = worker.Await(proto::SHUTDOWN);
  ASSERT_TRUE(shutdown.has_value());
  EXPECT_EQ(shutdown->header.shutdown().reason(), s.message());
}

TEST_F(SchedulerTest, NodesThatBeatAreNeverLostHoweverLongTheJobRuns) {
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 301);
  FakeNode worker(&transport_, address, proto::WORKER, 302);
  FormTheJob(&server, &worker);
  for (int i = 0; i < 20; ++i) {  // 80 s of the clock, a beat every 4 s
    clock_.Advance(seconds(4));
    server.Beat();
    worker.Beat();
  }
  EXPECT_FALSE(done_.load()) << result_.ToString();
  stop_ = true;
  EXPECT_EQ(Result().code(), StatusCode::kAborted);
}

// A worker's exit before the start is ignored (its rank is not in use yet);
// a server's ends the formation at once, long before the register timeout.
TEST_F(SchedulerTest, ANodeThatExitsBeforeTheStartIsHandledAtOnce) {
  options_.spec.mutable_cluster()->set_workers(2);
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 401);
  FakeNode worker(&transport_, address, proto::WORKER, 402);
  server.Register();
  ASSERT_TRUE(server.Await(proto::CLUSTER_MAP).has_value());
  worker.Register();
  // Sent after the REGISTER on the same socket, so the scheduler knows the
  // worker when it hears of its exit.
  auto exited = [&](int pid) {
    proto::Header h;
    h.set_op(proto::NODE_EXITED);
    h.mutable_node_exited()->set_pid(pid);
    h.mutable_node_exited()->set_token(kToken);
    h.mutable_node_exited()->set_exit_code(137);
    worker.Send(h);
  };
  exited(worker.pid());
  exited(server.pid());
  const Status s = Result();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(s.message(), "SERVER 0 (pid 401) exited with code 137: it is lost before the job started");
}

// The server dies while the epoch-end checkpoint is being taken: the job
// rolls back (every other node is told ROLLBACK, Run() returns for the next
// run), and the cut never commits: no manifest, no `latest`.
TEST_F(SchedulerTest, AServerLostDuringACutRollsTheJobBackAndTheCutNeverCommits) {
  options_.run_dir = dir_ + "/run";
  ASSERT_OK(MakeDirs(options_.run_dir));
  options_.max_rollbacks = 1;
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 501);
  FakeNode worker(&transport_, address, proto::WORKER, 502);
  FormTheJob(&server, &worker);
  proto::Header done;
  done.set_op(proto::PHASE_DONE);
  done.mutable_phase_done()->set_epoch(0);
  done.mutable_phase_done()->set_examples(64);  // the whole training set
  worker.Send(done);
  auto cut = server.Await(proto::CHECKPOINT);
  ASSERT_TRUE(cut.has_value());
  const std::string dir = cut->header.checkpoint().dir();
  EXPECT_EQ(dir, options_.run_dir + "/checkpoints/" + CheckpointName(cut->header.checkpoint().step()));

  proto::Header exited;
  exited.set_op(proto::NODE_EXITED);
  exited.mutable_node_exited()->set_pid(server.pid());
  exited.mutable_node_exited()->set_token(kToken);
  exited.mutable_node_exited()->set_exit_code(9);
  worker.Send(exited);
  ASSERT_TRUE(worker.Await(proto::ROLLBACK).has_value());
  ASSERT_OK(Result());
  EXPECT_TRUE(scheduler_->rolled_back());
  EXPECT_EQ(scheduler_->rollback_reason(), "SERVER 0 (pid 501) exited with code 9: it is lost");
  EXPECT_FALSE(FileExists(dir + "/MANIFEST"));
  EXPECT_FALSE(FileExists(options_.run_dir + "/checkpoints/latest"));
  EXPECT_NE(FileText(options_.run_dir + "/metrics.jsonl").find("\"event\": \"rollback\""), std::string::npos);
}

// Resumed (after a rollback, say) from a checkpoint of its own run directory
// with a later one in it: that later one belongs to the abandoned timeline.
// Once the job has formed it is gone and `latest` names the resume point.
TEST_F(SchedulerTest, AResumeInItsOwnRunDirectoryPrunesTheAbandonedTimeline) {
  options_.spec.set_epochs(3);
  auto shape = PlanJob(options_.spec);
  ASSERT_OK(shape.status());
  const std::string run = dir_ + "/run";
  const std::string resume_point = WriteCheckpoint(run, options_.spec, *shape, 4, 1, 0);
  const std::string abandoned = WriteCheckpoint(run, options_.spec, *shape, 8, 2, 0);
  ASSERT_OK(WriteFileAtomic(run + "/checkpoints/latest", CheckpointName(8) + "\n"));
  options_.run_dir = run;
  options_.resume_from = resume_point;
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 601);
  FakeNode worker(&transport_, address, proto::WORKER, 602);
  server.Register();
  auto map = server.Await(proto::CLUSTER_MAP);
  ASSERT_TRUE(map.has_value());
  EXPECT_TRUE(std::filesystem::equivalent(map->header.cluster_map().restore().dir(), resume_point));
  EXPECT_TRUE(FileExists(abandoned)) << "not before every server is in";
  proto::Header ready;
  ready.set_op(proto::SERVER_READY);
  server.Send(ready);
  worker.Register();
  auto phase = worker.Await(proto::START_PHASE);
  ASSERT_TRUE(phase.has_value());
  EXPECT_EQ(phase->header.phase().epoch(), 1);
  EXPECT_FALSE(FileExists(abandoned));
  EXPECT_TRUE(FileExists(resume_point + "/MANIFEST"));
  EXPECT_EQ(FileText(run + "/checkpoints/latest"), CheckpointName(4) + "\n");
  proto::Header exited;  // the end: the server is gone, and no rollbacks are left
  exited.set_op(proto::NODE_EXITED);
  exited.mutable_node_exited()->set_pid(server.pid());
  exited.mutable_node_exited()->set_token(kToken);
  worker.Send(exited);
  EXPECT_EQ(Result().code(), StatusCode::kUnavailable);
}

// The fake server's answer to CHECKPOINT: it snapshots and writes a part
// (one small file, with its checksum) into the cut's directory.
void AnswerCut(FakeNode* server, const proto::Checkpoint& cut) {
  const std::string bytes = "the part of step " + std::to_string(cut.step());
  ASSERT_OK(MakeDirs(cut.dir() + "/server-0"));
  ASSERT_OK(WriteFileAtomic(cut.dir() + "/server-0/000001.sst", bytes));
  proto::Header snapshot;
  snapshot.set_op(proto::CHECKPOINT_SNAPSHOT);
  snapshot.mutable_checkpoint_done()->set_step(cut.step());
  server->Send(snapshot);
  proto::Header done;
  done.set_op(proto::CHECKPOINT_DONE);
  proto::CheckpointDone* d = done.mutable_checkpoint_done();
  d->set_step(cut.step());
  d->set_dir("server-0");
  d->set_bytes(static_cast<int64_t>(bytes.size()));
  proto::FileChecksum* file = d->add_files();
  file->set_name("000001.sst");
  file->set_size(bytes.size());
  file->set_sha256(Sha256Hex(bytes.data(), bytes.size()));
  server->Send(done);
}

// Worker `rank`'s loss sum at `step`: magnitudes from 2^-20 to 2^19, so that
// adding the same losses in another order changes the last bits.
double StepLoss(int rank, int64_t step) {
  return std::ldexp(1.0 + 0.37 * static_cast<double>((rank * 31 + step * 17) % 11),
                    static_cast<int>((step * 7 + rank * 5) % 40) - 20);
}

// What worker `rank` sums over steps [first, end), from `start`, as a worker adds them up.
double WorkerSum(int rank, int64_t first, int64_t end, double start = 0) {
  for (int64_t s = first; s < end; ++s) start += StepLoss(rank, s);
  return start;
}

// Worker `rank`'s PROGRESS in epoch 0 after steps [first, end), 4 examples each.
proto::Header StepsDone(int rank, int64_t first, int64_t end) {
  proto::Header h;
  h.set_op(proto::PROGRESS);
  proto::Progress* p = h.mutable_progress();
  p->set_epoch(0);
  p->set_step(end);
  p->set_loss_sum(WorkerSum(rank, first, end));
  p->set_examples(4 * (end - first));
  for (int64_t s = first; s < end; ++s) {
    p->add_step_loss_sums(StepLoss(rank, s));
    p->add_step_examples(4);
  }
  return h;
}

// The value of `key` in the last line of RUN/metrics.jsonl with `event`; NaN when there is none.
double LastMetric(const std::string& run, const std::string& event, const std::string& key) {
  const std::string text = FileText(run + "/metrics.jsonl");
  const size_t at = text.rfind("\"event\": \"" + event + "\"");
  if (at == std::string::npos) return std::nan("");
  const size_t begin = text.rfind('\n', at) + 1;
  return JsonNumber(text.substr(begin, text.find('\n', at) - begin), key, std::nan(""));
}

// Issue 19 #5: a job resumed from a cut inside an epoch reported that
// epoch's train_loss over the steps after the cut only. The cut now keeps
// every worker's loss sums up to it (it commits once every worker has
// reported past it), and the resumed workers go on from their own, so the
// epoch's train_loss is, bit for bit, what a job that never stopped
// reports: the workers' sums over all 8 steps, added in rank order, over
// the epoch's 64 examples.
TEST_F(SchedulerTest, AnEpochResumedFromACutInsideItReportsTheTrainLossOfTheWholeEpoch) {
  const std::string run = dir_ + "/run";
  ASSERT_OK(MakeDirs(run));
  options_.run_dir = run;
  options_.spec.mutable_cluster()->set_workers(2);
  options_.spec.set_batch_size(4);  // 64 examples, 8 shards of 8: 8 steps of 4 examples per worker
  options_.spec.mutable_checkpoint()->set_every_steps(4);
  options_.spec.mutable_checkpoint()->set_keep_last(10);
  const double uninterrupted = (WorkerSum(0, 0, 8) + WorkerSum(1, 0, 8)) / 64;

  // The first run: a cut inside the epoch, then the job stops.
  std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 801);
  FakeNode first(&transport_, address, proto::WORKER, 802), second(&transport_, address, proto::WORKER, 803);
  server.Register();
  ASSERT_TRUE(server.Await(proto::CLUSTER_MAP).has_value());
  proto::Header ready;
  ready.set_op(proto::SERVER_READY);
  server.Send(ready);
  first.Register();
  second.Register();
  for (FakeNode* worker : {&first, &second}) ASSERT_TRUE(worker->Await(proto::CLUSTER_MAP).has_value());
  FakeNode* workers[2] = {first.rank() == 0 ? &first : &second, first.rank() == 0 ? &second : &first};
  auto phase = workers[0]->Await(proto::START_PHASE);
  ASSERT_TRUE(phase.has_value());
  ASSERT_EQ(phase->header.phase().steps(), 8);
  workers[0]->Send(StepsDone(0, 0, 2));
  auto cut = server.Await(proto::CHECKPOINT);  // 4 steps ahead of the workers' step 2
  ASSERT_TRUE(cut.has_value());
  const int64_t cut_step = cut->header.checkpoint().step();
  ASSERT_GT(cut_step, 2);
  ASSERT_LT(cut_step, 8);
  AnswerCut(&server, cut->header.checkpoint());
  server.Beat();  // its answers are handled: every part is in
  EXPECT_FALSE(FileExists(cut->header.checkpoint().dir() + "/MANIFEST")) << "the workers' loss sums are not";
  workers[0]->Send(StepsDone(0, 2, 8));
  workers[1]->Send(StepsDone(1, 0, 8));
  ASSERT_TRUE(WaitUntil([&] { return FileExists(cut->header.checkpoint().dir() + "/MANIFEST"); }, 60));
  auto manifest = ReadManifest(cut->header.checkpoint().dir());
  ASSERT_OK(manifest.status());
  ASSERT_EQ(manifest->partial_epoch_loss().by_rank_size(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(manifest->partial_epoch_loss().by_rank(rank).loss_sum(), WorkerSum(rank, 0, cut_step));
    EXPECT_EQ(manifest->partial_epoch_loss().by_rank(rank).examples(), 4 * cut_step);
  }
  // The test tells a sum in the workers' order from one split at the cut.
  ASSERT_NE(WorkerSum(0, 0, cut_step) + WorkerSum(0, cut_step, 8), WorkerSum(0, 0, 8));
  stop_ = true;  // its stop cut lands at the epoch's end; resumed below from the one inside
  auto stop_cut = server.Await(proto::CHECKPOINT);
  ASSERT_TRUE(stop_cut.has_value());
  AnswerCut(&server, stop_cut->header.checkpoint());
  EXPECT_EQ(Result().code(), StatusCode::kAborted);

  // The second run resumes from the cut inside the epoch.
  stop_ = false;
  options_.resume_from = cut->header.checkpoint().dir();
  address = Start("mem://scheduler-resumed");
  FakeNode server2(&transport_, address, proto::SERVER, 901);
  FakeNode third(&transport_, address, proto::WORKER, 902), fourth(&transport_, address, proto::WORKER, 903);
  server2.Register();
  ASSERT_TRUE(server2.Await(proto::CLUSTER_MAP).has_value());
  server2.Send(ready);
  third.Register();
  fourth.Register();
  for (FakeNode* worker : {&third, &fourth}) {
    ASSERT_TRUE(worker->Await(proto::CLUSTER_MAP).has_value());
    auto resumed = worker->Await(proto::START_PHASE);
    ASSERT_TRUE(resumed.has_value());
    const proto::Phase& p = resumed->header.phase();
    EXPECT_EQ(p.skip_steps(), cut_step);
    ASSERT_EQ(p.resumed_loss_sums_size(), 2);
    const int rank = worker->rank();
    EXPECT_EQ(p.resumed_loss_sums(rank), WorkerSum(rank, 0, cut_step));
    // The worker trains the steps after the cut, going on from its sum before it.
    proto::Header done;
    done.set_op(proto::PHASE_DONE);
    proto::PhaseDone* d = done.mutable_phase_done();
    d->set_epoch(0);
    d->set_loss_sum(WorkerSum(rank, cut_step, 8, p.resumed_loss_sums(rank)));
    d->set_examples(4 * (8 - cut_step));
    d->set_skipped_examples(4 * cut_step);
    d->set_steps(8);
    worker->Send(done);
  }
  ASSERT_TRUE(WaitForText(run + "/metrics.jsonl", "\"event\": \"epoch\"", 60));
  EXPECT_EQ(LastMetric(run, "epoch", "train_loss"), uninterrupted) << "bit for bit";
  EXPECT_EQ(LastMetric(run, "epoch", "examples"), 4 * (8 - cut_step) * 2) << "those trained after the resume";

  // The job ends: the final checkpoint, the final evaluation, summary.json.
  auto final_cut = server2.Await(proto::CHECKPOINT);
  ASSERT_TRUE(final_cut.has_value());
  AnswerCut(&server2, final_cut->header.checkpoint());
  for (FakeNode* worker : {&third, &fourth}) {
    auto eval = worker->Await(proto::START_PHASE);
    ASSERT_TRUE(eval.has_value());
    ASSERT_TRUE(eval->header.phase().test());
    proto::Header done;
    done.set_op(proto::PHASE_DONE);
    done.mutable_phase_done()->set_epoch(0);
    done.mutable_phase_done()->set_test(true);
    done.mutable_phase_done()->set_examples(8);
    worker->Send(done);
  }
  ASSERT_OK(Result());
  EXPECT_EQ(JsonNumber(FileText(run + "/summary.json"), "train_loss", -1), uninterrupted);
}

// Only the launcher may say a node exited (issue 19 #8): a NODE_EXITED
// without its token, or with another, is dropped, and the job goes on.
TEST_F(SchedulerTest, ANodeExitedWithoutTheLaunchersTokenIsDropped) {
  const std::string address = Start();
  FakeNode server(&transport_, address, proto::SERVER, 701);
  FakeNode worker(&transport_, address, proto::WORKER, 702);
  FormTheJob(&server, &worker);
  for (const std::string& token : {std::string(), std::string("a guess")}) {
    proto::Header forged;
    forged.set_op(proto::NODE_EXITED);
    forged.mutable_node_exited()->set_pid(server.pid());
    forged.mutable_node_exited()->set_exit_code(9);
    forged.mutable_node_exited()->set_token(token);
    worker.Send(forged);
  }
  worker.Beat();  // answered after the forged messages on the same socket: they were handled
  EXPECT_FALSE(done_.load()) << result_.ToString();
  proto::Header real;
  real.set_op(proto::NODE_EXITED);
  real.mutable_node_exited()->set_pid(server.pid());
  real.mutable_node_exited()->set_exit_code(9);
  real.mutable_node_exited()->set_token(kToken);
  worker.Send(real);
  const Status s = Result();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(s.message(), "SERVER 0 (pid 701) exited with code 9: it is lost");
}

// Only the nodes the launcher started may join its cluster (issue 19 #8): a
// REGISTER without the cluster's token, or with another, is dropped, so
// forged nodes that come first take neither a rank nor a spare's place.
TEST_F(SchedulerTest, ARegisterWithoutTheClustersTokenIsDropped) {
  constexpr char kClusterToken[] = "the cluster's secret";
  options_.cluster_token = kClusterToken;
  const std::string address = Start();
  WarningLines warnings;
  FakeNode forged_server(&transport_, address, proto::SERVER, 801);
  FakeNode forged_worker(&transport_, address, proto::WORKER, 802);
  FakeNode guessing_worker(&transport_, address, proto::WORKER, 803);
  forged_server.Register();
  forged_worker.Register();
  guessing_worker.Register("a guess");
  FakeNode server(&transport_, address, proto::SERVER, 804);
  FakeNode worker(&transport_, address, proto::WORKER, 805);
  server.Register(kClusterToken);
  auto server_map = server.Await(proto::CLUSTER_MAP);
  ASSERT_TRUE(server_map.has_value()) << "the real server must get the map";
  ASSERT_EQ(server_map->header.cluster_map().servers_size(), 1);
  EXPECT_EQ(server_map->header.cluster_map().servers(0).address(), "mem://server-804");
  proto::Header ready;
  ready.set_op(proto::SERVER_READY);
  server.Send(ready);
  worker.Register(kClusterToken);
  auto worker_map = worker.Await(proto::CLUSTER_MAP);
  ASSERT_TRUE(worker_map.has_value()) << "the real worker must get a rank, not wait as a standby";
  EXPECT_EQ(worker_map->header.cluster_map().rank(), 0);
  ASSERT_TRUE(worker.Await(proto::START_PHASE).has_value());
  EXPECT_TRUE(WaitUntil([&] { return warnings.Count("dropped a REGISTER without the cluster's token") == 3; }, 60));
  // A forged worker stays outside: its messages are dropped as an unregistered peer's.
  proto::Header lease;
  lease.set_op(proto::LEASE_REQUEST);
  forged_worker.Send(lease);
  EXPECT_TRUE(WaitUntil([&] { return warnings.Count("LEASE_REQUEST from an unregistered peer") == 1; }, 60));
}

}  // namespace
}  // namespace tessera
