// The sparse_embedding layer (models/sparse_embedding.h) and what a worker
// feeds it: a batch's distinct ids and each slot's row (worker/sparse_batch.h),
// the model's checks of the layer and of its inputs, and the spec's checks
// of model.sparse_table (core/sparse_table_spec.h).
#include "models/sparse_embedding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/sparse_id.h"
#include "core/sparse_table_spec.h"
#include "models/embedding.h"
#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Float bits, so that tests compare bit for bit (-0.0 and NaN included).
std::vector<uint32_t> Bits(const std::vector<float>& values) {
  std::vector<uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
  return bits;
}

// 1 numeric feature, 2 bags of 2 slots, rows of 2: x = [n, a0, a1, b0, b1].
struct SmallCase {
  std::vector<float> rows = {1,   2,     // row 0
                             10,  20,    // row 1
                             100, 200};  // row 2
  // Example 0: bag a = {row 0, row 2}, bag b = {row 1, none}.
  // Example 1: bag a = {none, none} (empty), bag b = {row 1, row 1}.
  std::vector<float> x = {0.5f,  0,  2,  1, -1,  //
                          -3.0f, -1, -1, 1, 1};
};

TEST(SparseEmbeddingTest, SumForwardAndBackwardAsComputedByHand) {
  SmallCase c;
  SparseEmbedding layer(/*numeric=*/1, /*fields=*/2, /*values_per_field=*/2, /*dim=*/2,
                        proto::SparseEmbeddingSpec::SUM);
  EXPECT_EQ(layer.in_shape(), Shape({5}));
  EXPECT_EQ(layer.out_shape(), Shape({5}));  // 1 + 2 bags * 2
  EXPECT_TRUE(layer.param_shapes().empty());
  std::vector<float> row_grads(6, 99.0f);  // backward overwrites all of it
  layer.BindRows(c.rows.data(), row_grads.data(), 3);
  std::vector<float> y(10);
  layer.Forward(c.x.data(), 2, y.data(), Pass{});
  EXPECT_EQ(y, std::vector<float>({0.5f, 101, 202, 10, 20,  //
                                   -3.0f, 0, 0, 20, 40}));
  const std::vector<float> dy = {7, 1, 2, 3,    4,  //
                                 8, 5, 6, 0.5f, 0.25f};
  std::vector<float> dx(10, 99.0f);
  layer.Backward(c.x.data(), y.data(), dy.data(), 2, dx.data());
  // Row 0: bag a of example 0; row 1: bag b of example 0, twice bag b of example 1; row 2: bag a of example 0.
  EXPECT_EQ(row_grads, std::vector<float>({1, 2, 3 + 0.5f + 0.5f, 4 + 0.25f + 0.25f, 1, 2}));
  EXPECT_EQ(dx, std::vector<float>({7, 0, 0, 0, 0, 8, 0, 0, 0, 0}));  // numeric features get dy; slots nothing
}

TEST(SparseEmbeddingTest, MeanDividesEachBagByItsIdsAndEmptyBagsAreZeros) {
  SmallCase c;
  SparseEmbedding layer(1, 2, 2, 2, proto::SparseEmbeddingSpec::MEAN);
  std::vector<float> row_grads(6);
  layer.BindRows(c.rows.data(), row_grads.data(), 3);
  std::vector<float> y(10);
  layer.Forward(c.x.data(), 2, y.data(), Pass{});
  EXPECT_EQ(y, std::vector<float>({0.5f, 101.0f / 2, 202.0f / 2, 10, 20,  //
                                   -3.0f, 0, 0, 20.0f / 2, 40.0f / 2}));
  const std::vector<float> dy = {0, 1, 2, 3,    4,  //
                                 0, 5, 6, 0.5f, 0.25f};
  layer.Backward(c.x.data(), y.data(), dy.data(), 2, nullptr);
  EXPECT_EQ(row_grads, std::vector<float>({1.0f / 2, 2.0f / 2, 3 + 0.5f / 2 + 0.5f / 2, 4 + 0.25f / 2 + 0.25f / 2,
                                           1.0f / 2, 2.0f / 2}));
}

// Row gradients and the numeric features' dx against central differences,
// for bags of several ids (repeats, empty slots and empty bags included).
TEST(SparseEmbeddingTest, GradientsMatchCentralDifferences) {
  for (const auto combiner : {proto::SparseEmbeddingSpec::SUM, proto::SparseEmbeddingSpec::MEAN}) {
    const int64_t numeric = 2, fields = 3, per_field = 3, dim = 4, n_rows = 5, batch = 4;
    std::mt19937 rng(5);
    std::vector<float> rows = RandomVector(rng, n_rows * dim);
    std::vector<float> x(batch * (numeric + fields * per_field));
    for (int64_t e = 0; e < batch; ++e) {
      float* example = x.data() + e * (numeric + fields * per_field);
      for (int64_t i = 0; i < numeric; ++i) example[i] = RandomVector(rng, 1)[0];
      for (int64_t s = 0; s < fields * per_field; ++s)
        example[numeric + s] = static_cast<float>(rng() % (n_rows + 1)) - 1;
    }
    x[numeric + 3] = x[numeric + 4] = x[numeric + 5] = -1;  // example 0's second bag: empty
    const std::vector<float> r = RandomVector(rng, batch * (numeric + fields * dim));
    SparseEmbedding layer(numeric, fields, per_field, dim, combiner);
    std::vector<float> row_grads(rows.size()), y(r.size()), dx(x.size());
    const auto loss = [&]() {
      layer.Forward(x.data(), batch, y.data(), Pass{});
      return Weighted(y, r);
    };
    layer.BindRows(rows.data(), row_grads.data(), n_rows);
    loss();
    layer.Backward(x.data(), y.data(), r.data(), batch, dx.data());
    for (size_t k = 0; k < rows.size(); ++k) {
      ExpectGradNear(row_grads[k], Numeric(&rows[k], loss), "row value " + std::to_string(k));
    }
    for (int64_t e = 0; e < batch; ++e) {
      for (int64_t i = 0; i < numeric; ++i) {
        const int64_t at = e * (numeric + fields * per_field) + i;
        ExpectGradNear(dx[at], Numeric(&x[at], loss), "numeric " + std::to_string(at));
      }
    }
  }
}

// With one id per bag and SUM, the layer is a dense Embedding over the
// batch's rows: the same outputs and row gradients, bit for bit.
TEST(SparseEmbeddingTest, OneIdPerBagSumIsADenseEmbeddingBitForBit) {
  const int64_t rows = 40, dim = 5, fields = 7, batch = 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> table(rows * dim);
  for (float& v : table) v = normal(rng);
  table[3] = -0.0f;
  std::vector<float> x(batch * fields);
  for (float& v : x) v = static_cast<float>(rng() % rows);
  std::vector<float> dy(batch * fields * dim);
  for (float& v : dy) v = normal(rng);

  SparseEmbedding sparse(/*numeric=*/0, fields, 1, dim, proto::SparseEmbeddingSpec::SUM);
  std::vector<float> row_grads(rows * dim);
  sparse.BindRows(table.data(), row_grads.data(), rows);
  std::vector<float> sparse_y(batch * fields * dim);
  sparse.Forward(x.data(), batch, sparse_y.data(), Pass{});
  sparse.Backward(x.data(), sparse_y.data(), dy.data(), batch, nullptr);

  Embedding dense(Shape{fields}, rows, dim);
  std::vector<float> dense_grads(rows * dim);
  dense.Bind(table.data(), dense_grads.data());
  std::vector<float> dense_y(batch * fields * dim);
  dense.Forward(x.data(), batch, dense_y.data(), Pass{});
  dense.Backward(x.data(), dense_y.data(), dy.data(), batch, nullptr);

  EXPECT_EQ(Bits(sparse_y), Bits(dense_y));
  EXPECT_EQ(Bits(row_grads), Bits(dense_grads));
}

TEST(SparseBatchTest, DistinctSortedIdsAndEachSlotsRow) {
  const uint64_t big = uint64_t{1} << 60;  // far beyond float32's exact integers
  // 2 examples of 1 numeric feature and 3 slots.
  const std::vector<uint64_t> slot_ids = {big + 1, 5,   kNoSparseId,  //
                                          5,       big, big + 1};
  std::vector<float> x = {0.25f, 9, 9, 9,  //
                          -4.0f, 9, 9, 9};
  StatusOr<SparseBatch> sparse = MakeSparseBatch(slot_ids, /*batch=*/2, /*numeric=*/1, /*slots=*/3, x.data());
  ASSERT_OK(sparse.status());
  EXPECT_EQ(sparse->ids, std::vector<uint64_t>({5, big, big + 1}));
  EXPECT_EQ(x, std::vector<float>({0.25f, 2, 0, -1,  //
                                   -4.0f, 0, 1, 2}));
}

TEST(SparseBatchTest, AnEmptyBatchAndAWrongCountOfIds) {
  std::vector<float> x;
  StatusOr<SparseBatch> empty = MakeSparseBatch({}, 0, 13, 26, x.data());
  ASSERT_OK(empty.status());
  EXPECT_TRUE(empty->ids.empty());
  std::vector<float> one(4);
  StatusOr<SparseBatch> wrong = MakeSparseBatch({1, 2}, 1, 1, 3, one.data());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("needs 3 ids, got 2"));
}

const char kSparseModel[] = R"(
  sparse_table { name: "ids" dim: 4 }
  layer { sparse_embedding { table: "ids" fields: 3 } }
  layer { linear { out_features: 8 } }
  layer { relu {} }
  layer { linear { out_features: 1 } }
  loss: SIGMOID_BINARY_CROSS_ENTROPY
)";

TEST(SparseEmbeddingModelTest, TheTableIsNotAmongTheDenseParameters) {
  StatusOr<std::unique_ptr<Model>> model = Model::Create(ParseModel(kSparseModel), Shape{2 + 3}, 2);
  ASSERT_OK(model.status());
  EXPECT_EQ((*model)->sparse_row_dim(), 4);
  // layer1.linear: (2 + 3 * 4) * 8 + 8; layer3.linear: 8 + 1.
  EXPECT_EQ((*model)->num_keys(), uint64_t{14 * 8 + 8 + 8 + 1});
  EXPECT_EQ((*model)->tensors().front().name, "layer1.linear.weight");
  StatusOr<std::unique_ptr<Model>> dense = Model::Create(ParseModel("layer { linear { out_features: 1 } } "
                                                                    "loss: SIGMOID_BINARY_CROSS_ENTROPY"),
                                                         Shape{5}, 2);
  ASSERT_OK(dense.status());
  EXPECT_EQ((*dense)->sparse_row_dim(), 0);
}

TEST(SparseEmbeddingModelTest, TrainsOnBoundRowsAndFillsTheirGradients) {
  StatusOr<std::unique_ptr<Model>> model = Model::Create(ParseModel(kSparseModel), Shape{5}, 2);
  ASSERT_OK(model.status());
  InitializeParameters((*model)->tensors(), 1, (*model)->params());
  std::vector<float> rows = {0.1f, 0.2f, 0.3f, 0.4f, -0.5f, 0.6f, -0.7f, 0.8f};
  std::vector<float> row_grads(8, 0.0f);
  (*model)->BindSparseRows(rows.data(), row_grads.data(), 2);
  const std::vector<float> x = {1.0f,  2.0f, 0, 1, -1,  //
                                -1.0f, 0.5f, 1, 1, 0};
  ASSERT_OK((*model)->ValidateInputValues(x.data(), x.size()));
  const std::vector<float> labels = {1, 0};
  const BatchStats stats = (*model)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_TRUE(std::isfinite(stats.loss_sum));
  int nonzero = 0;
  for (float g : row_grads) nonzero += g != 0.0f;
  EXPECT_GT(nonzero, 0);
  // Forward-only passes need no gradient buffer.
  (*model)->BindSparseRows(rows.data(), nullptr, 2);
  std::vector<float> outputs(2);
  (*model)->EvaluateBatch(x.data(), labels.data(), 2, nullptr, outputs.data());
  EXPECT_TRUE(std::isfinite(outputs[0]));
}

TEST(SparseEmbeddingModelTest, InputValidationRefusesBadRowsOfTheBatch) {
  StatusOr<std::unique_ptr<Model>> model = Model::Create(ParseModel(kSparseModel), Shape{5}, 2);
  ASSERT_OK(model.status());
  std::vector<float> rows(3 * 4);
  (*model)->BindSparseRows(rows.data(), nullptr, 3);
  ASSERT_OK((*model)->ValidateInputValues(std::vector<float>({1e30f, -7, 0, 2, -1}).data(), 5));
  const auto message = [&](std::vector<float> x) {
    return (*model)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())).message();
  };
  EXPECT_EQ(message({0, 0, 0, 3, 0}),
            "example 0, value 3: an id slot holds 3.000000, expected -1 (no id) or a row of the batch in [0, 3)");
  EXPECT_THAT(message({0, 0, 0, 0, 0, 0, 0, 1.5f, 0, 0}), HasSubstr("example 1, value 2: an id slot holds 1.5"));
  EXPECT_THAT(message({0, 0, -2, 0, 0}), HasSubstr("an id slot holds -2"));
  EXPECT_THAT(message({0, 0, NAN, 0, 0}), HasSubstr("an id slot holds nan"));
  EXPECT_THAT(message({0, INFINITY, 0, 0, 0}), HasSubstr("example 0, value 1: a numeric feature, inf, is not finite"));
}

TEST(SparseEmbeddingModelTest, CreateRefusesAMissingTableALaterLayerButNotCuda) {
  const auto error = [](const std::string& layers, const Shape& shape) {
    return Model::Create(ParseModel(layers + " loss: SIGMOID_BINARY_CROSS_ENTROPY"), shape, 2).status().message();
  };
  EXPECT_THAT(error(R"(sparse_table { name: "ids" dim: 4 }
                       layer { sparse_embedding { table: "other" fields: 3 } } layer { linear { out_features: 1 } })",
                    Shape{5}),
              HasSubstr("model.layer[0]: sparse_embedding.table 'other' is no model.sparse_table's name"));
  EXPECT_THAT(error(R"(sparse_table { name: "ids" dim: 4 }
                       layer { linear { out_features: 5 } }
                       layer { sparse_embedding { table: "ids" fields: 3 } } layer { linear { out_features: 1 } })",
                    Shape{5}),
              HasSubstr("model.layer[1] is a sparse_embedding: it must be the first layer"));
  EXPECT_THAT(error(R"(sparse_table { name: "ids" dim: 4 }
                       layer { sparse_embedding { table: "ids" fields: 3 values_per_field: 2 } }
                       layer { linear { out_features: 1 } })",
                    Shape{5}),
              HasSubstr("needs examples of [numeric + 6] values, got [5]"));
  // CUDA has its twin (models/cuda/cuda_sparse_embedding.h; cuda_layers_test checks it).
  EXPECT_OK(CheckDeviceLayers(ParseModel(kSparseModel), Device::kCuda));
  StatusOr<Shape> out = ModelOutputShape(ParseModel(kSparseModel), Shape{13 + 3});
  ASSERT_OK(out.status());
  EXPECT_EQ(*out, Shape({1}));
}

TEST(SparseTableSpecTest, NamesDimsAndOptimizerRangesAreChecked) {
  const auto error = [](const std::string& tables) { return ValidateSparseTables(ParseModel(tables)).message(); };
  EXPECT_EQ(error(R"(sparse_table { name: "ids_1" dim: 16 } sparse_table { name: "b" dim: 1024 })"), "");
  EXPECT_EQ(error(R"(sparse_table { name: "" dim: 4 })"),
            "model.sparse_table[0].name must hold 1 to 64 characters, got 0");
  EXPECT_EQ(error(R"(sparse_table { name: "Ids" dim: 4 })"),
            "model.sparse_table[0].name may hold only a-z, 0-9 and '_', got 'Ids'");
  EXPECT_EQ(error("sparse_table { name: \"" + std::string(65, 'a') + "\" dim: 4 }"),
            "model.sparse_table[0].name must hold 1 to 64 characters, got 65");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 } sparse_table { name: "a" dim: 4 })"),
            "model.sparse_table[1].name 'a' is also model.sparse_table[0]'s");
  EXPECT_EQ(error(R"(sparse_table { name: "a" })"), "model.sparse_table[0] 'a': dim must be in [1, 1024], got 0");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 1025 })"),
            "model.sparse_table[0] 'a': dim must be in [1, 1024], got 1025");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 init_bound: -1 })"),
            "model.sparse_table[0] 'a': init_bound must be a finite number >= 0, got -1");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 admit_after: 0 })"),
            "model.sparse_table[0] 'a': admit_after must be in [1, 255], got 0");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 admit_after: 256 })"),
            "model.sparse_table[0] 'a': admit_after must be in [1, 255], got 256");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 memory_budget_mb: -1 })"),
            "model.sparse_table[0] 'a': memory_budget_mb must be >= 0, got -1");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 expire_after_steps: -5 })"),
            "model.sparse_table[0] 'a': expire_after_steps must be >= 0, got -5");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { learning_rate: 0 } })"),
            "model.sparse_table[0] 'a': optimizer.learning_rate must be > 0, got 0");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { ftrl_l1: -0.5 } })"),
            "model.sparse_table[0] 'a': optimizer.ftrl_l1 must be >= 0, got -0.5");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { adagrad_epsilon: nan } })"),
            "model.sparse_table[0] 'a': optimizer.adagrad_epsilon must be >= 0, got nan");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { beta1: 1 } })"),
            "model.sparse_table[0] 'a': optimizer.beta1 must be in [0, 1), got 1");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { beta2: -0.1 } })"),
            "model.sparse_table[0] 'a': optimizer.beta2 must be in [0, 1), got -0.1");
  EXPECT_EQ(error(R"(sparse_table { name: "a" dim: 4 optimizer { epsilon: 0 } })"),
            "model.sparse_table[0] 'a': optimizer.epsilon must be > 0, got 0");
}

TEST(SparseTableSpecTest, TheLayerNamesATableAndComesFirst) {
  const proto::ModelSpec model = ParseModel(R"(sparse_table { name: "ids" dim: 4 }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { sparse_embedding { table: "nope" fields: 0 } })");
  EXPECT_OK(ValidateSparseEmbeddingLayer(model, 0));
  EXPECT_EQ(ValidateSparseEmbeddingLayer(model, 1).message(),
            "model.layer[1] is a sparse_embedding: it must be the first layer (its inputs are the data's numeric "
            "features and id slots)");
  proto::ModelSpec bad = model;
  bad.mutable_layer(0)->mutable_sparse_embedding()->set_table("nope");
  EXPECT_EQ(ValidateSparseEmbeddingLayer(bad, 0).message(),
            "model.layer[0].sparse_embedding.table 'nope' is no model.sparse_table's name");
  bad = model;
  bad.mutable_layer(0)->mutable_sparse_embedding()->set_values_per_field(0);
  EXPECT_EQ(ValidateSparseEmbeddingLayer(bad, 0).message(),
            "model.layer[0].sparse_embedding.values_per_field must be >= 1, got 0");
  EXPECT_EQ(FindSparseTable(model, "ids"), &model.sparse_table(0));
  EXPECT_EQ(FindSparseTable(model, "x"), nullptr);
}

}  // namespace
}  // namespace tessera
