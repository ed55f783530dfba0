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

#include "core/in_memory_transport.h"
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
  void Start(int servers, int workers) {
    spec_ = SpecWithTable();
    workers_ = workers;
    auto scheduler = transport_.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
    ASSERT_TRUE(scheduler.ok());
    scheduler_ = std::move(scheduler).value();
    for (int i = 0; i < servers; ++i) {
      ServerOptions options;
      options.scheduler = scheduler_->endpoint();
      servers_.push_back(std::make_unique<Server>(&transport_, options, &stop_));
      threads_.emplace_back([this, i] { results_[i] = servers_[i]->Run(); });
    }
    std::vector<std::string> peers(servers);
    for (int i = 0; i < servers; ++i) {
      Message m = Await(proto::REGISTER);
      peers[i] = m.peer;
      addresses_.push_back(m.header.register_().address());
    }
    proto::ClusterMap map;
    *map.mutable_spec() = spec_;
    map.set_num_workers(workers);
    // One dense tensor of `servers` keys, a key per server: the sparse
    // table is what the test is about.
    map.set_num_keys(servers);
    proto::TensorMeta* tensor = map.add_tensors();
    tensor->set_name("bias");
    tensor->set_offset(0);
    tensor->set_size(servers);
    tensor->add_shape(servers);
    for (int i = 0; i < servers; ++i) {
      proto::ServerInfo* info = map.add_servers();
      info->set_rank(i);
      info->set_address(addresses_[i]);
      proto::KeyRange* r = info->add_ranges();
      r->set_begin(i);
      r->set_end(i + 1);
    }
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

  void TearDown() override {
    for (const std::string& peer : peers_) {
      proto::Header h;
      h.set_op(proto::SHUTDOWN);
      scheduler_->Send(h, {}, peer).IgnoreError();
    }
    if (peers_.empty()) stop_ = true;  // the start failed: end the loops another way
    for (std::thread& t : threads_) t.join();
    for (size_t i = 0; i < peers_.size(); ++i) EXPECT_TRUE(results_[i].ok()) << results_[i].ToString();
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
  Status results_[4];
  std::vector<std::string> peers_, addresses_;
  proto::JobSpec spec_;
  int workers_ = 1;
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

}  // namespace
}  // namespace tessera
