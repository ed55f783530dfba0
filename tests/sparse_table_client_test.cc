// Sparse tables on real Server event loops (over the in-memory transport,
// the scheduler played by the test): workers' SparseTableClients push and
// pull rows by id, spread over the servers by ServerOfId; the rows they read
// back are, bit for bit, those of one SparseTableShard holding the whole
// table; refused requests come back as ERROR.
#include "worker/sparse_table_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "core/in_memory_transport.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "server/server.h"
#include "server/sparse_table_shard.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr int kDim = 3;

proto::JobSpec SpecWithTable() {
  auto spec = LoadJobSpec(std::string(TESSERA_SOURCE_DIR) + "/examples/fmnist-mlp.pbtxt");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  proto::JobSpec s = spec.ok() ? *spec : proto::JobSpec();
  s.set_seed(11);
  s.mutable_cluster()->set_heartbeat_timeout_ms(3600 * 1000);  // the test answers no heartbeats
  proto::SparseTableSpec* t = s.mutable_model()->add_sparse_table();
  t->set_name("items");
  t->set_dim(kDim);
  t->set_init_bound(0.5f);
  t->mutable_optimizer()->set_type(proto::SparseOptimizerSpec::ADAGRAD);
  t->mutable_optimizer()->set_learning_rate(0.125f);
  return s;
}

// `servers` Server event loops and the scheduler's side of their start.
class SparseTablesOnServersTest : public ::testing::Test {
 protected:
  // Starts `servers` servers for `workers` workers over `keys` dense keys
  // (the first servers - 1 hold one key each, the last the rest), restored
  // from `restore` when given.
  void Start(int servers, int workers, int keys = 3, const proto::Restore* restore = nullptr) {
    spec_ = SpecWithTable();
    workers_ = workers;
    if (scheduler_ == nullptr) {
      auto scheduler = transport_.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
      ASSERT_TRUE(scheduler.ok());
      scheduler_ = std::move(scheduler).value();
    }
    results_.assign(servers, OkStatus());
    for (int i = 0; i < servers; ++i) {
      ServerOptions options;
      options.scheduler = scheduler_->endpoint();
      servers_.push_back(std::make_unique<Server>(&transport_, options, &stop_));
      threads_.emplace_back([this, i] { results_[i] = servers_[i]->Run(); });
    }
    std::vector<std::string> peers(servers);
    addresses_.assign(servers, "");
    for (int i = 0; i < servers; ++i) {
      Message m = Await(proto::REGISTER);
      peers[i] = m.peer;
      addresses_[i] = m.header.register_().address();
    }
    proto::ClusterMap map;
    *map.mutable_spec() = spec_;
    map.set_num_workers(workers);
    // One dense tensor: the sparse table is what the test is about.
    map.set_num_keys(keys);
    proto::TensorMeta* tensor = map.add_tensors();
    tensor->set_name("bias");
    tensor->set_offset(0);
    tensor->set_size(keys);
    tensor->add_shape(keys);
    for (int i = 0; i < servers; ++i) {
      proto::ServerInfo* info = map.add_servers();
      info->set_rank(i);
      info->set_address(addresses_[i]);
      proto::KeyRange* r = info->add_ranges();
      r->set_begin(i);
      r->set_end(i + 1 < servers ? i + 1 : keys);
    }
    if (restore != nullptr) *map.mutable_restore() = *restore;
    for (int i = 0; i < servers; ++i) {
      map.set_rank(i);
      proto::Header h;
      h.set_op(proto::CLUSTER_MAP);
      h.set_job_id(5);
      *h.mutable_cluster_map() = map;
      ASSERT_TRUE(scheduler_->Send(h, {}, peers[i]).ok());
    }
    for (int i = 0; i < servers; ++i) Await(proto::SERVER_READY);
    peers_ = peers;
  }

  // Shuts the servers down and waits for them; each must end well.
  void Stop() {
    for (const std::string& peer : peers_) {
      proto::Header h;
      h.set_op(proto::SHUTDOWN);
      scheduler_->Send(h, {}, peer).IgnoreError();
    }
    if (peers_.empty()) stop_ = true;  // the start failed: end the loops another way
    for (std::thread& t : threads_) t.join();
    for (size_t i = 0; i < peers_.size(); ++i) EXPECT_TRUE(results_[i].ok()) << results_[i].ToString();
    threads_.clear();
    servers_.clear();
    peers_.clear();
  }

  void TearDown() override { Stop(); }

  // Every server writes its part of a checkpoint at `step` into `dir`; the
  // CHECKPOINT_DONE of each, by rank.
  std::vector<proto::CheckpointDone> Checkpoint(const std::string& dir, int64_t step) {
    // The dense slices, which no worker pushes here, move up to the cut's step.
    for (const std::string& peer : peers_) {
      proto::Header h;
      h.set_op(proto::MEMBERSHIP);
      h.set_job_id(5);
      h.mutable_membership()->set_seq(++membership_seq_);
      for (int r = 0; r < workers_; ++r) h.mutable_membership()->add_active(r);
      h.mutable_membership()->set_advance_to_step(step);
      EXPECT_TRUE(scheduler_->Send(h, {}, peer).ok());
    }
    for (size_t i = 0; i < peers_.size(); ++i) Await(proto::MEMBERSHIP_ACK);
    for (const std::string& peer : peers_) {
      proto::Header h;
      h.set_op(proto::CHECKPOINT);
      h.set_job_id(5);
      h.mutable_checkpoint()->set_dir(dir);
      h.mutable_checkpoint()->set_step(step);
      EXPECT_TRUE(scheduler_->Send(h, {}, peer).ok());
    }
    std::vector<proto::CheckpointDone> done(peers_.size());
    for (size_t i = 0; i < peers_.size(); ++i) {
      Message m = Await(proto::CHECKPOINT_DONE);
      if (m.header.sender_rank() >= 0 && m.header.sender_rank() < static_cast<int>(done.size())) {
        done[m.header.sender_rank()] = m.header.checkpoint_done();
      }
    }
    return done;
  }

  // The next message to the scheduler with `op` (heartbeats skipped).
  Message Await(proto::Op op) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = scheduler_->Receive(100);
      if (m.ok() && m->header.op() == op) return std::move(m).value();
    }
    ADD_FAILURE() << "no " << proto::Op_Name(op) << " within 60 s";
    return Message();
  }

  std::unique_ptr<SparseTableClient> Client(int rank) {
    auto client = std::make_unique<SparseTableClient>(&transport_, addresses_, std::vector<int>{kDim}, rank, 5);
    EXPECT_TRUE(client->Connect().ok());
    return client;
  }

  // The whole table in one shard: what the servers' parts must add up to.
  std::unique_ptr<SparseTableShard> Reference() {
    SparseTableShardOptions o;
    o.spec = spec_.model().sparse_table(0);
    o.seed = spec_.seed();
    o.workers = workers_;
    auto shard = SparseTableShard::Create(o);
    EXPECT_TRUE(shard.ok());
    return std::move(shard).value();
  }

  InMemoryTransport transport_;
  std::unique_ptr<Socket> scheduler_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::thread> threads_;
  std::vector<Status> results_;
  std::vector<std::string> peers_, addresses_;
  proto::JobSpec spec_;
  int workers_ = 1;
  int64_t membership_seq_ = 0;
};

std::vector<float> Grads(size_t rows, float base) {
  std::vector<float> g(rows * kDim);
  for (size_t i = 0; i < g.size(); ++i) g[i] = base - 0.375f * static_cast<float>(i % 7);
  return g;
}

TEST_F(SparseTablesOnServersTest, TwoWorkersOnThreeServersTrainTheBitsOfOneWholeTable) {
  Start(/*servers=*/3, /*workers=*/2);
  auto w0 = Client(0), w1 = Client(1);
  auto reference = Reference();
  // Large and sequential ids alike, spread over the three servers.
  const std::vector<std::vector<uint64_t>> ids0 = {{1, 2, 3, 40, uint64_t{1} << 60}, {2, 7}, {}};
  const std::vector<std::vector<uint64_t>> ids1 = {{3, 9, 40}, {}, {7, 8, ~uint64_t{0}}};
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> g0 = Grads(ids0[step].size(), 1.5f + step), g1 = Grads(ids1[step].size(), -2.0f);
    std::vector<float> rows(ids0[step].size() * kDim);
    ASSERT_TRUE(w0->PullRows(0, step, ids0[step], rows.data(), 60000).ok());
    auto expected = reference->ReadRows(ids0[step]);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(std::memcmp(rows.data(), expected->data(), rows.size() * sizeof(float)), 0) << "step " << step;
    ASSERT_TRUE(w0->PushRows(0, step, 3, ids0[step], g0.data()).ok());
    ASSERT_TRUE(w1->PushRows(0, step, 4, ids1[step], g1.data()).ok());
    ASSERT_TRUE(reference->AddPush(0, step, 3, ids0[step], g0).ok());
    ASSERT_TRUE(reference->AddPush(1, step, 4, ids1[step], g1).ok());
  }
  const std::vector<uint64_t> all = {1, 2, 3, 7, 8, 9, 40, uint64_t{1} << 60, ~uint64_t{0}};
  std::vector<float> rows(all.size() * kDim);
  ASSERT_TRUE(w1->PullRows(0, 3, all, rows.data(), 60000).ok());  // waits for step 2's pushes
  auto expected = reference->ReadRows(all);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(std::memcmp(rows.data(), expected->data(), rows.size() * sizeof(float)), 0);
  EXPECT_GT(w0->pushed_bytes(), 0u);
}

TEST_F(SparseTablesOnServersTest, RefusedRequestsAnswerAnErrorAndChangeNothing) {
  Start(/*servers=*/1, /*workers=*/1);
  auto w = Client(0);
  std::vector<float> rows(2 * kDim);
  // Unsorted ids: the server refuses the pull.
  const std::vector<uint64_t> unsorted = {5, 4};
  const Status refused = w->PullRows(0, 0, unsorted, rows.data(), 60000);
  EXPECT_EQ(refused.code(), StatusCode::kAborted) << refused.ToString();
  EXPECT_NE(refused.message().find("strictly increasing"), std::string::npos) << refused.ToString();
  // A push for a step the table is not at: refused; the next pull says so.
  const std::vector<uint64_t> ids = {4, 5};
  ASSERT_TRUE(w->PushRows(0, 7, 1, ids, Grads(2, 1.0f).data()).ok());
  const Status after_push = w->PullRows(0, 0, ids, rows.data(), 60000);
  EXPECT_EQ(after_push.code(), StatusCode::kAborted) << after_push.ToString();
  auto reference = Reference();
  ASSERT_TRUE(w->PullRows(0, 0, ids, rows.data(), 60000).ok());
  auto expected = reference->ReadRows(ids);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(std::memcmp(rows.data(), expected->data(), rows.size() * sizeof(float)), 0);
  EXPECT_FALSE(w->PullRows(1, 0, ids, rows.data(), 60000).ok());  // no table 1
}

// A cut at step 2 of three servers, restored onto two: each server keeps
// the rows its ids now map to, and training goes on with the bits of the
// one whole table.
TEST_F(SparseTablesOnServersTest, ACheckpointRestoredOntoAnotherNumberOfServersGoesOnExactly) {
  Start(/*servers=*/3, /*workers=*/2);
  auto reference = Reference();
  std::vector<uint64_t> ids;
  for (uint64_t k = 0; k < 40; ++k) ids.push_back(k * k * 7919 + 3);
  auto train = [&](SparseTableClient* w0, SparseTableClient* w1, int step) {
    std::vector<uint64_t> mine0, mine1;
    for (size_t i = 0; i < ids.size(); ++i) (i % 3 == static_cast<size_t>(step % 3) ? mine1 : mine0).push_back(ids[i]);
    const std::vector<float> g0 = Grads(mine0.size(), 0.5f + step), g1 = Grads(mine1.size(), -1.0f);
    ASSERT_TRUE(w0->PushRows(0, step, 5, mine0, g0.data()).ok());
    ASSERT_TRUE(w1->PushRows(0, step, 6, mine1, g1.data()).ok());
    ASSERT_TRUE(reference->AddPush(0, step, 5, mine0, g0).ok());
    ASSERT_TRUE(reference->AddPush(1, step, 6, mine1, g1).ok());
  };
  auto expect_rows = [&](SparseTableClient* w, int64_t version) {
    std::vector<float> rows(ids.size() * kDim);
    ASSERT_TRUE(w->PullRows(0, version, ids, rows.data(), 60000).ok());
    auto expected = reference->ReadRows(ids);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(std::memcmp(rows.data(), expected->data(), rows.size() * sizeof(float)), 0) << "version " << version;
  };
  {
    auto w0 = Client(0), w1 = Client(1);
    train(w0.get(), w1.get(), 0);
    train(w0.get(), w1.get(), 1);
    expect_rows(w0.get(), 2);
  }
  const std::string dir = MakeTempDir("sparse_table_checkpoint");
  const std::vector<proto::CheckpointDone> done = Checkpoint(dir, 2);
  proto::Restore restore;
  restore.set_dir(dir);
  restore.set_step(2);
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(done[r].error().empty()) << done[r].error();
    bool listed = false;
    for (const proto::FileChecksum& f : done[r].files()) {
      if (f.name() != "sparse-0.rows") continue;
      uint64_t size = 0;
      auto sha = Sha256OfFile(dir + "/" + done[r].dir() + "/" + f.name(), &size);
      ASSERT_TRUE(sha.ok());
      EXPECT_EQ(*sha, f.sha256());
      EXPECT_EQ(size, f.size());
      listed = true;
    }
    EXPECT_TRUE(listed) << "server " << r << " lists no sparse-0.rows";
    proto::RestorePart* part = restore.add_parts();
    part->set_dir(done[r].dir());
    proto::KeyRange* range = part->add_ranges();
    range->set_begin(r);
    range->set_end(r + 1);
    restore.set_state_per_param(done[r].state_per_param());
  }
  Stop();

  Start(/*servers=*/2, /*workers=*/2, /*keys=*/3, &restore);
  auto w0 = Client(0), w1 = Client(1);
  expect_rows(w1.get(), 2);
  train(w0.get(), w1.get(), 2);
  expect_rows(w0.get(), 3);
}

// A checkpoint without a table's rows is refused by name: the server does
// not start from it.
TEST_F(SparseTablesOnServersTest, ACheckpointWithoutTheTablesRowsIsRefused) {
  Start(/*servers=*/1, /*workers=*/1);
  const std::string dir = MakeTempDir("sparse_table_missing");
  const std::vector<proto::CheckpointDone> done = Checkpoint(dir, 0);
  ASSERT_TRUE(done[0].error().empty()) << done[0].error();
  Stop();
  ASSERT_EQ(std::remove((dir + "/server-0/sparse-0.rows").c_str()), 0);
  proto::Restore restore;
  restore.set_dir(dir);
  restore.set_step(0);
  restore.set_state_per_param(done[0].state_per_param());
  proto::RestorePart* part = restore.add_parts();
  part->set_dir("server-0");
  part->add_ranges()->set_end(3);
  // The server ends its Run with the error instead of becoming ready.
  ServerOptions options;
  options.scheduler = scheduler_->endpoint();
  Server server(&transport_, options, &stop_);
  Status result;
  std::thread thread([&] { result = server.Run(); });
  Message reg = Await(proto::REGISTER);
  proto::ClusterMap map;
  *map.mutable_spec() = SpecWithTable();
  map.set_num_workers(1);
  map.set_num_keys(3);
  proto::TensorMeta* tensor = map.add_tensors();
  tensor->set_name("bias");
  tensor->set_size(3);
  tensor->add_shape(3);
  proto::ServerInfo* info = map.add_servers();
  info->set_address(reg.header.register_().address());
  info->add_ranges()->set_end(3);
  *map.mutable_restore() = restore;
  proto::Header h;
  h.set_op(proto::CLUSTER_MAP);
  h.set_job_id(5);
  *h.mutable_cluster_map() = map;
  ASSERT_TRUE(scheduler_->Send(h, {}, reg.peer).ok());
  thread.join();
  EXPECT_EQ(result.code(), StatusCode::kDataLoss) << result.ToString();
  EXPECT_NE(result.message().find("no rows of sparse table 'items'"), std::string::npos) << result.ToString();
}

}  // namespace
}  // namespace tessera
