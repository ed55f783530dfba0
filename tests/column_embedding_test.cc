// The ColumnEmbedding layer and IdLayout: numeric features pass through and
// each categorical id becomes its column's row, gradients checked
// numerically, the rows a batch touches as the model's sparse runs, and what
// Model::Create and ValidateInputValues refuse.
#include "models/column_embedding.h"

#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(IdLayoutTest, ColumnsMapEachIdIntoItsOwnTable) {
  // Two numeric values, then ids into tables of 3 and 5 rows (rows 0-2 and 3-7).
  const IdLayout layout = IdLayout::Columns(2, {3, 5});
  EXPECT_EQ(layout.features(), 4);
  EXPECT_EQ(layout.total_rows(), 8);
  EXPECT_EQ(layout.RowOf(2, 2.0f), 2);
  EXPECT_EQ(layout.RowOf(2, 3.0f), -1);
  EXPECT_EQ(layout.RowOf(3, 0.0f), 3);
  EXPECT_EQ(layout.RowOf(3, 4.0f), 7);
  const std::vector<float> x = {0.5f, 99, 1, 4, -3, 7, 1, 0, /*invalid:*/ 1, 1, 3, 5};
  EXPECT_EQ(layout.RowsOf(x.data(), 3), (std::vector<int64_t>{1, 3, 7}));
  EXPECT_OK(layout.Validate(x.data(), 8));
  Status s = layout.Validate(x.data(), 12);
  EXPECT_THAT(s.message(), HasSubstr("input value 3.000000 of categorical column 0 is not an id in [0, 3)"));
  const std::vector<float> nan = {NAN, 0, 0, 0};
  EXPECT_THAT(layout.Validate(nan.data(), 4).message(), HasSubstr("is not finite"));
  // Shared: every value an id into one table.
  const IdLayout shared = IdLayout::Shared(3, 10);
  EXPECT_EQ(shared.RowOf(1, 9.0f), 9);
  const std::vector<float> ids = {9, 2, 2, 4, 9, 0};
  EXPECT_EQ(shared.RowsOf(ids.data(), 2), (std::vector<int64_t>{0, 2, 4, 9}));
}

TEST(ColumnEmbeddingTest, ForwardPassesNumbersAndLooksUpEachColumnsRow) {
  const int64_t dim = 2, batch = 3;
  ColumnEmbedding layer(IdLayout::Columns(2, {3, 4}), dim);
  EXPECT_EQ(layer.in_shape(), (Shape{4}));
  EXPECT_EQ(layer.out_shape(), (Shape{2 + 2 * dim}));
  ASSERT_EQ(layer.param_shapes().size(), 1u);
  EXPECT_EQ(layer.param_shapes()[0].shape, (std::vector<int64_t>{7, dim}));
  std::mt19937 rng(2);
  std::vector<float> weight = RandomVector(rng, 7 * dim);
  std::vector<float> grad(7 * dim, 5.0f);  // not zero: the layer must clear it
  layer.Bind(weight.data(), grad.data());
  // Column 0 ids 2, 0, 2; column 1 ids 3, 9 (invalid), 0.
  const std::vector<float> x = {0.5f, -1, 2, 3, 1.5f, 2, 0, 9, -0.25f, 0, 2, 0};
  std::vector<float> y(batch * 6);
  layer.Forward(x.data(), batch, y.data(), Pass{});
  const std::vector<float> expected = {
      0.5f, -1, weight[4], weight[5], weight[(3 + 3) * 2], weight[(3 + 3) * 2 + 1],
      1.5f, 2, weight[0], weight[1], 0, 0,
      -0.25f, 0, weight[4], weight[5], weight[3 * 2], weight[3 * 2 + 1]};
  EXPECT_EQ(y, expected);

  const std::vector<float> dy = RandomVector(rng, y.size());
  std::vector<float> dx(x.size(), 9.0f);
  layer.Backward(x.data(), y.data(), dy.data(), batch, dx.data());
  for (int64_t b = 0; b < batch; ++b) {
    EXPECT_EQ(dx[b * 4], dy[b * 6]) << "numbers pass the gradient through";
    EXPECT_EQ(dx[b * 4 + 1], dy[b * 6 + 1]);
    EXPECT_EQ(dx[b * 4 + 2], 0.0f) << "ids have none";
    EXPECT_EQ(dx[b * 4 + 3], 0.0f);
  }
  auto loss = [&] {
    std::vector<float> out(y.size());
    layer.Forward(x.data(), batch, out.data(), Pass{});
    return Weighted(out, dy);
  };
  for (int64_t j = 0; j < 7 * dim; ++j) ExpectGradNear(grad[j], Numeric(&weight[j], loss), "weight " + std::to_string(j));
  EXPECT_EQ(grad[1 * dim], 0.0f) << "column 0's id 1 is not used";

  // A second batch into the same buffer clears the rows the first used.
  const std::vector<float> x2 = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1};
  layer.Backward(x2.data(), y.data(), dy.data(), batch, nullptr);
  for (int64_t r = 0; r < 7; ++r) {
    for (int64_t k = 0; k < dim; ++k) {
      float want = 0;
      for (int64_t b = 0; b < batch; ++b) {
        if (r == 1) want += dy[b * 6 + 2 + k];
        if (r == 4) want += dy[b * 6 + 4 + k];
      }
      EXPECT_FLOAT_EQ(grad[r * dim + k], want) << r << "," << k;
    }
  }
}

proto::ModelSpec ColumnModel(bool sparse) {
  return ParseModel(std::string("layer { column_embedding { embedding_dim: 2 sparse_gradients: ") +
                    (sparse ? "true" : "false") + " } } layer { linear { out_features: 3 } }");
}

TEST(ColumnEmbeddingTest, ModelPushesOnlyTheRowsABatchTouched) {
  // One numeric feature, columns of 4 and 6 ids: weight rows 0-3 and 4-9, keys [0, 20).
  auto model = Model::Create(ColumnModel(true), {3}, 3, Device::kCpu, {4, 6});
  ASSERT_OK(model.status());
  EXPECT_EQ((*model)->tensors()[0].name, "layer0.column_embedding.weight");
  ASSERT_EQ((*model)->sparse_tensors().size(), 1u);
  EXPECT_EQ((*model)->sparse_tensors()[0], (KeyRange{0, 20}));
  const std::vector<float> x = {0.3f, 1, 0, -2, 3, 5};  // rows 1 and 4; rows 3 and 9
  const std::vector<float> labels = {0, 2};
  EXPECT_EQ((*model)->SparseRowsOf(x.data(), 2), (std::vector<KeyRange>{{2, 4}, {6, 10}, {18, 20}}));
  (*model)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_EQ((*model)->touched_runs(), (std::vector<KeyRange>{{2, 4}, {6, 10}, {18, 20}}));
  const std::vector<float> g = *(*model)->grads();
  for (uint64_t k = 0; k < 20; ++k) {
    const bool touched = (k >= 2 && k < 4) || (k >= 6 && k < 10) || k >= 18;
    if (!touched) {
      EXPECT_EQ(g[k], 0.0f) << k;
    }
  }
  auto dense = Model::Create(ColumnModel(false), {3}, 3, Device::kCpu, {4, 6});
  ASSERT_OK(dense.status());
  (*dense)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_TRUE((*dense)->touched_runs().empty());
  EXPECT_EQ(*(*dense)->grads(), g) << "sparse or not, the gradients are the same";
  // The ids' places take only ids of their column; the numbers any finite value.
  const std::vector<float> bad = {1e9f, 1, 6};
  EXPECT_THAT((*model)->ValidateInputValues(bad.data(), 3).message(),
              HasSubstr("of categorical column 1 is not an id in [0, 6)"));
}

TEST(ColumnEmbeddingTest, CreateRefusesWhatCannotWork) {
  auto none = Model::Create(ColumnModel(true), {3}, 3);
  EXPECT_THAT(none.status().message(), HasSubstr("column_embedding needs a table with categorical columns"));
  auto second = Model::Create(ParseModel("layer { relu {} } layer { column_embedding { embedding_dim: 2 } } "
                                         "layer { linear { out_features: 3 } }"),
                              {3}, 3, Device::kCpu, {4});
  EXPECT_THAT(second.status().message(), HasSubstr("model.layer[1] is a column_embedding: it must be the first layer"));
  auto zero = Model::Create(ParseModel("layer { column_embedding { embedding_dim: 0 } } layer { linear { "
                                       "out_features: 3 } }"),
                            {3}, 3, Device::kCpu, {4});
  EXPECT_THAT(zero.status().message(), HasSubstr("column_embedding.embedding_dim must be >= 1, got 0"));
  auto huge = Model::Create(ColumnModel(true), {2}, 3, Device::kCpu, {int64_t{1} << 25});
  EXPECT_THAT(huge.status().message(), HasSubstr("outside [1, 2^24]"));
  auto few = Model::Create(ColumnModel(true), {1}, 3, Device::kCpu, {4, 4});
  EXPECT_THAT(few.status().message(), HasSubstr("holding the 2 categorical ids, got [1]"));
}

}  // namespace
}  // namespace tessera
