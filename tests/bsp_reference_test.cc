// BSP with W workers of batch b must equal plain single-process SGD with
// batch W*b over the same examples in the same order. The reference below
// replays the data plan (core/data_plan.h) in one process, with the same
// model code and optimizer but no servers, sockets or sharding, and the test
// compares its parameters with those the cluster wrote to params.bin.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/data_plan.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "models/model.h"
#include "server/optimizer.h"
#include "tests/test_util.h"
#include "worker/batch_reader.h"

namespace tessera {
namespace {

constexpr int kWorkers = 2;
constexpr int kBatch = 16;
constexpr int kEpochs = 2;
constexpr int kExamples = 1000;

const char kSpec[] = R"(
name: "bsp-reference"
model {
  layer { linear { out_features: 64 } }
  layer { relu {} }
  layer { linear { out_features: 10 } }
}
cluster { servers: 2 workers: 2 }
optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 weight_decay: 0.0005 }
batch_size: 16
epochs: 2
seed: 11
data { max_train_examples: 1000 max_test_examples: 500 shards_per_worker: 3 }
)";

// Single-process SGD replaying the cluster's data plan: at each step the
// global batch is worker 0's batch, then worker 1's, ... as BSP combines them.
std::vector<float> ReferenceSgd(const proto::JobSpec& spec, const ImageDataset& data) {
  auto model = Model::Create(spec.model(), Shape{1, data.rows, data.cols}, data.num_classes);
  CHECK(model.ok());
  InitializeParameters((*model)->tensors(), spec.seed(), (*model)->params());
  auto optimizer = CreateOptimizer(spec.optimizer());
  CHECK(optimizer.ok());
  const uint64_t n = (*model)->num_keys();
  std::vector<float> state(n * (*optimizer)->state_per_param(), 0.0f);
  BatchReader reader(&data, spec.data().mean(), spec.data().std());
  int64_t step = 0;
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<int64_t> order = EpochOrder(spec.seed(), epoch, data.count);
    const std::vector<Shard> shards = CutShards(data.count, spec.data().shards_per_worker() * kWorkers);
    // Each worker's batches, as positions [begin, end) in the epoch order.
    std::vector<std::vector<Shard>> batches(kWorkers);
    for (int r = 0; r < kWorkers; ++r) {
      for (int s : ShardsOfRank(static_cast<int>(shards.size()), kWorkers, r)) {
        for (int64_t p = shards[s].begin; p < shards[s].end; p += kBatch) {
          batches[r].push_back({p, std::min<int64_t>(p + kBatch, shards[s].end)});
        }
      }
    }
    const size_t steps = std::max(batches[0].size(), batches[1].size());
    for (size_t t = 0; t < steps; ++t) {
      std::vector<float> x, part_x;
      std::vector<float> labels, part_labels;
      for (int r = 0; r < kWorkers; ++r) {
        if (t >= batches[r].size()) continue;
        reader.Read(order, batches[r][t].begin, batches[r][t].size(), &part_x, &part_labels);
        x.insert(x.end(), part_x.begin(), part_x.end());
        labels.insert(labels.end(), part_labels.begin(), part_labels.end());
      }
      const int64_t count = static_cast<int64_t>(labels.size());
      (*model)->TrainBatch(x.data(), labels.data(), count);
      ++step;
      if (count == 0) continue;
      std::vector<float> mean(*(*model)->grads());
      const float scale = 1.0f / static_cast<float>(count);
      for (float& g : mean) g *= scale;
      (*optimizer)->Apply(step, (*model)->params(), mean.data(), state.data(), n);
    }
  }
  return std::vector<float>((*model)->params(), (*model)->params() + n);
}

TEST(BspReferenceTest, ClusterEqualsSingleProcessSgdWithTheGlobalBatch) {
  auto spec = ParseJobSpec(kSpec, "inline");
  ASSERT_OK(spec.status());
  ASSERT_OK(ValidateJobSpec(*spec));
  const proto::DataSpec& d = spec->data();
  if (!FileExists(DataPath(d, d.train_images()))) GTEST_SKIP() << "Fashion-MNIST not installed";

  const std::string dir = MakeTempDir("bsp-ref");
  std::ofstream(dir + "/spec.pbtxt") << kSpec;
  // On the CPU, as the reference below: on a GPU machine --device=auto would
  // pick the GPU, whose sums are not bitwise the CPU's.
  CommandResult r =
      RunTessera({"train", dir + "/spec.pbtxt", "--run-dir", dir + "/run", "--threads", "1", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto bytes = ReadFileToString(dir + "/run/params.bin");
  ASSERT_OK(bytes.status());

  auto data = LoadImageDataset(DataPath(d, d.train_images()), DataPath(d, d.train_labels()), kExamples);
  ASSERT_OK(data.status());
  const std::vector<float> reference = ReferenceSgd(*spec, *data);
  ASSERT_EQ(bytes->size(), reference.size() * sizeof(float));
  const float* cluster = reinterpret_cast<const float*>(bytes->data());

  auto model = Model::Create(spec->model(), Shape{1, data->rows, data->cols}, data->num_classes);
  ASSERT_OK(model.status());
  std::vector<float> initial((*model)->num_keys());
  InitializeParameters((*model)->tensors(), spec->seed(), initial.data());
  for (const TensorInfo& t : (*model)->tensors()) {
    double diff = 0, norm = 0, moved = 0;
    for (uint64_t i = t.offset; i < t.offset + t.size; ++i) {
      diff += std::pow(static_cast<double>(cluster[i]) - reference[i], 2);
      norm += std::pow(static_cast<double>(reference[i]), 2);
      moved += std::pow(static_cast<double>(reference[i]) - initial[i], 2);
    }
    EXPECT_LE(std::sqrt(diff / norm), 1e-5) << t.name;
    // Training moved every tensor, so agreement is not just "both unchanged".
    EXPECT_GT(std::sqrt(moved / norm), 1e-3) << t.name;
  }
}

}  // namespace
}  // namespace tessera
