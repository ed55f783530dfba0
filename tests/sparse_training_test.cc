// The worker and model side of issue 16's sparse tables fitted together,
// without servers: bench/make_criteo's click logs read as CRITEO data (ids
// beside x), each batch's distinct ids made rows (SparseBatch), a
// sparse_embedding + MLP model trained on them, the rows kept in a map and
// stepped by the servers' AdaGrad (server/sparse_optimizer.h), the dense
// parameters by plain SGD. One pass must find the planted signal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "core/task_metrics.h"
#include "models/model.h"
#include "server/sparse_optimizer.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "worker/example_reader.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

constexpr int64_t kDim = 8;
constexpr int64_t kNumeric = 13, kSlots = 26;

// One row of the table and its optimizer state, as a server would hold it.
struct Row {
  std::vector<float> values, state;
};

// The rows the test stands in for the servers with: created on first touch
// uniform in +-0.01 from (seed, id), stepped by AdaGrad.
class RowTable {
 public:
  explicit RowTable(const SparseOptimizer* optimizer) : optimizer_(optimizer) {}

  // rows[ids.size() * kDim]: the values of each id's row, created if new.
  void Pull(const std::vector<uint64_t>& ids, std::vector<float>* rows) {
    rows->resize(ids.size() * kDim);
    for (size_t r = 0; r < ids.size(); ++r) {
      const Row& row = Find(ids[r]);
      std::copy(row.values.begin(), row.values.end(), rows->begin() + r * kDim);
    }
  }

  // One AdaGrad step of each id's row from its gradient summed over `batch` examples.
  void Push(int64_t step, float lr, const std::vector<uint64_t>& ids, const std::vector<float>& row_grads,
            int64_t batch) {
    std::vector<float> mean(kDim);
    for (size_t r = 0; r < ids.size(); ++r) {
      for (int64_t k = 0; k < kDim; ++k) mean[k] = row_grads[r * kDim + k] / static_cast<float>(batch);
      Row& row = Find(ids[r]);
      optimizer_->ApplyRow(step, lr, row.values.data(), mean.data(), row.state.data(), kDim);
    }
  }

  size_t size() const { return rows_.size(); }

 private:
  Row& Find(uint64_t id) {
    auto [it, created] = rows_.try_emplace(id);
    if (created) {
      SplitMix64 random(MixSeed(7, id));
      for (int64_t k = 0; k < kDim; ++k) it->second.values.push_back((random.NextFloat() * 2 - 1) * 0.01f);
      it->second.state.resize(kDim * optimizer_->state_per_value());
      optimizer_->InitState(it->second.state.data(), kDim);
    }
    return it->second;
  }

  const SparseOptimizer* optimizer_;
  std::map<uint64_t, Row> rows_;
};

void MakeCriteo(const ScopedTestDir& dir, const std::string& name, int rows, int rows_seed) {
  auto child = ChildProcess::Start("make_criteo",
                                   {TESSERA_MAKE_CRITEO, "--rows", std::to_string(rows), "--seed", "5", "--rows_seed",
                                    std::to_string(rows_seed), "--vocab", "2000", "--out", dir.File(name)},
                                   dir.File(name + ".log"));
  ASSERT_OK(child.status());
  ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(dir.File(name + ".log"));
}

TEST(SparseTrainingTest, OnePassOverClickLogsBeatsAuc070) {
  ScopedTestDir dir;
  MakeCriteo(dir, "train.tsv", 40000, 0);
  MakeCriteo(dir, "test.tsv", 8000, 1);
  StatusOr<proto::JobSpec> spec = ParseJobSpec(R"(name: "ctr"
      data { format: CRITEO dir: ")" + dir.path() + R"(" train_files: "train.tsv" test_files: "test.tsv" }
      model {
        sparse_table { name: "ids" dim: 8 }
        layer { sparse_embedding { table: "ids" fields: 26 } }
        layer { linear { out_features: 32 } }
        layer { relu {} }
        layer { linear { out_features: 1 } }
        loss: SIGMOID_BINARY_CROSS_ENTROPY
      })",
                                               "test");
  ASSERT_OK(spec.status());
  ASSERT_OK(ValidateJobSpec(*spec));
  StatusOr<proto::TableData> table = DescribeTable(spec->data(), nullptr, nullptr, proto::TableLabels::BINARY);
  ASSERT_OK(table.status());
  proto::ClusterMap map;
  *map.mutable_table_data() = *table;
  map.set_train_examples(40000);
  map.set_test_examples(8000);
  StatusOr<std::unique_ptr<ExampleReader>> train = OpenExampleReader(spec->data(), map, Split::kTraining);
  StatusOr<std::unique_ptr<ExampleReader>> test = OpenExampleReader(spec->data(), map, Split::kTest);
  ASSERT_OK(train.status());
  ASSERT_OK(test.status());
  StatusOr<std::unique_ptr<Model>> model = Model::Create(spec->model(), (*train)->example_shape(), 2);
  ASSERT_OK(model.status());
  ASSERT_EQ((*model)->sparse_row_dim(), kDim);
  InitializeParameters((*model)->tensors(), 1, (*model)->params());
  SparseOptimizerOptions adagrad;
  adagrad.type = SparseOptimizerType::kAdagrad;
  StatusOr<std::unique_ptr<SparseOptimizer>> optimizer = SparseOptimizer::Create(adagrad);
  ASSERT_OK(optimizer.status());
  RowTable rows(optimizer->get());

  const int64_t batch = 128;
  const float row_lr = 0.1f, dense_lr = 0.05f;
  const ExampleOrder order = TrainingOrder(/*seed=*/3, /*epoch=*/0, **train);
  std::vector<float> x, labels, pulled, row_grads;
  std::vector<uint64_t> ids;
  int64_t step = 0;
  for (int64_t begin = 0; begin < (*train)->count(); begin += batch) {
    const int64_t count = std::min(batch, (*train)->count() - begin);
    std::vector<int64_t> examples(count);
    for (int64_t i = 0; i < count; ++i) examples[i] = order.At(begin + i);
    ASSERT_OK((*train)->ReadWithIds(examples, &x, &labels, &ids));
    StatusOr<SparseBatch> sparse = MakeSparseBatch(ids, count, kNumeric, kSlots, x.data());
    ASSERT_OK(sparse.status());
    const int64_t n_rows = static_cast<int64_t>(sparse->ids.size());
    rows.Pull(sparse->ids, &pulled);
    row_grads.assign(n_rows * kDim, 0.0f);
    (*model)->BindSparseRows(pulled.data(), row_grads.data(), n_rows);
    ASSERT_OK((*model)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())));
    (*model)->TrainBatch(x.data(), labels.data(), count);
    rows.Push(++step, row_lr, sparse->ids, row_grads, count);
    float* params = (*model)->params();
    const std::vector<float>& grads = *(*model)->grads();
    for (uint64_t k = 0; k < (*model)->num_keys(); ++k) params[k] -= dense_lr * grads[k] / static_cast<float>(count);
  }
  EXPECT_GT(rows.size(), 1000u);  // many ids, created as they came

  BinaryMetrics metrics;
  std::vector<float> outputs;
  for (int64_t begin = 0; begin < (*test)->count(); begin += 512) {
    const int64_t count = std::min<int64_t>(512, (*test)->count() - begin);
    std::vector<int64_t> examples(count);
    for (int64_t i = 0; i < count; ++i) examples[i] = begin + i;
    ASSERT_OK((*test)->ReadWithIds(examples, &x, &labels, &ids));
    StatusOr<SparseBatch> sparse = MakeSparseBatch(ids, count, kNumeric, kSlots, x.data());
    ASSERT_OK(sparse.status());
    rows.Pull(sparse->ids, &pulled);
    (*model)->BindSparseRows(pulled.data(), nullptr, static_cast<int64_t>(sparse->ids.size()));
    outputs.resize(count);
    (*model)->EvaluateBatch(x.data(), labels.data(), count, nullptr, outputs.data());
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_OK(metrics.Add(static_cast<int64_t>(labels[i]), 1.0 / (1.0 + std::exp(-static_cast<double>(outputs[i])))));
    }
  }
  const BinaryResult result = metrics.Result();
  ASSERT_TRUE(result.auc_defined);
  EXPECT_GT(result.auc, 0.70) << "log loss " << result.log_loss;
  std::cout << "test AUC " << result.auc << ", log loss " << result.log_loss << ", rows " << rows.size() << "\n";
}

}  // namespace
}  // namespace tessera
