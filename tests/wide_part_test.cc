// The wide part of a Wide & Deep model (models/wide_part.h) and its ids
// (core/feature_cross.h): the logit and the rows' gradients by hand, the
// cross ids, a whole model's gradients (deep, bags and wide weights)
// against central differences, and the spec's line for each mistake.
#include "models/wide_part.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/feature_cross.h"
#include "core/sparse_id.h"
#include "core/sparse_table_spec.h"
#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(WidePartTest, AddsTheWeightsReadAndSumsTheirGradients) {
  WidePart wide(/*slots=*/3);
  const std::vector<float> rows = {0.5f, -2.0f, 10.0f};
  std::vector<float> grads(3, 99.0f);
  // Example 0 reads rows 0, 2 and none; example 1 reads row 2 twice and row 1.
  const std::vector<float> slots = {0, 2, -1,  //
                                    2, 1, 2};
  wide.BindRows(rows.data(), grads.data(), 3, slots.data());
  const std::vector<float> deep = {1.0f, 0.25f};
  std::vector<float> logits(2);
  wide.AddTo(deep.data(), 2, logits.data());
  EXPECT_EQ(logits, std::vector<float>({1.0f + 0.5f + 10.0f, 0.25f + 10.0f - 2.0f + 10.0f}));
  const std::vector<float> dlogits = {0.5f, -1.0f};
  wide.Backward(dlogits.data(), 2);
  EXPECT_EQ(grads, std::vector<float>({0.5f, -1.0f, 0.5f - 2.0f}));
}

proto::SparseEmbeddingSpec WideLayer(const std::string& text) {
  const proto::ModelSpec model = ParseModel(R"(sparse_table { name: "ids" dim: 2 }
      sparse_table { name: "wide" dim: 1 }
      layer { sparse_embedding { table: "ids" fields: 3 wide_table: "wide" )" +
                                            text + R"( } }
      layer { linear { out_features: 1 } })");
  return model.layer(0).sparse_embedding();
}

TEST(FeatureCrossTest, CrossIdsDependOnTheFieldsTheirOrderAndTheCross) {
  const std::vector<uint64_t> ab = {11, 22}, ba = {22, 11}, ac = {11, 33};
  EXPECT_EQ(CrossId(0, ab), CrossId(0, ab));
  EXPECT_NE(CrossId(0, ab), CrossId(0, ba));
  EXPECT_NE(CrossId(0, ab), CrossId(0, ac));
  EXPECT_NE(CrossId(0, ab), CrossId(1, ab));
  EXPECT_EQ(CrossId(0, std::vector<uint64_t>({11, kNoSparseId})), kNoSparseId);
  // Pinned: a change of the hash would silently break served models.
  EXPECT_EQ(CrossId(0, std::vector<uint64_t>({1, 2})), 0xdd7d734738148536ULL);
}

TEST(FeatureCrossTest, WideIdsAreTheFieldsThenTheCrosses) {
  const proto::SparseEmbeddingSpec layer =
      WideLayer("wide_cross { field: 1 field: 3 } wide_cross { field: 2 field: 1 }");
  EXPECT_EQ(WideSlots(layer), 3 + 2);
  const std::vector<uint64_t> ids = {1, 2,           3,  //
                                     4, kNoSparseId, 6};
  const std::vector<uint64_t> wide = WideIds(layer, ids, 2);
  const std::vector<uint64_t> c13 = {1, 3}, c21 = {2, 1}, c46 = {4, 6};
  EXPECT_EQ(wide, std::vector<uint64_t>({1, 2, 3, CrossId(0, c13), CrossId(1, c21),  //
                                         4, kNoSparseId, 6, CrossId(0, c46), kNoSparseId}));
  const proto::SparseEmbeddingSpec crosses_only = WideLayer("wide_fields: false wide_cross { field: 1 field: 2 }");
  EXPECT_EQ(WideSlots(crosses_only), 1);
  EXPECT_EQ(WideIds(crosses_only, ids, 2).size(), 2u);
}

const char kWideAndDeepDlrm[] = R"(
  sparse_table { name: "ids" dim: 2 }
  sparse_table { name: "wide" dim: 1 }
  layer { sparse_embedding { table: "ids" fields: 3 wide_table: "wide" wide_cross { field: 1 field: 2 } } }
  layer { dot_interaction { bottom_features: 3 bottom_features: 2 } }
  layer { linear { out_features: 4 } }
  layer { relu {} }
  layer { linear { out_features: 1 } }
  loss: SIGMOID_BINARY_CROSS_ENTROPY
)";

// The loss of a batch against every gradient TrainBatch gives: the dense
// parameters', the bags' rows' and the wide weights'.
TEST(WidePartTest, AModelsGradientsMatchCentralDifferences) {
  auto created = Model::Create(ParseModel(kWideAndDeepDlrm), Shape{2 + 3}, 2);
  ASSERT_OK(created.status());
  Model& model = **created;
  EXPECT_EQ(model.wide_slots(), 4);
  InitializeParameters(model.tensors(), 5, model.params());
  std::mt19937 rng(11);
  for (uint64_t k = 0; k < model.num_keys(); ++k) model.params()[k] = RandomVector(rng, 1, -0.7f, 0.7f)[0];
  // Three examples of 2 numeric features and 3 fields; the worker's way to rows.
  const std::vector<uint64_t> field_ids = {7, 8,           9,  //
                                           7, kNoSparseId, 10, 11, 8, 9};
  std::vector<float> x = {0.5f, -1.0f, 0, 0, 0,  //
                          1.5f, 0.25f, 0, 0, 0, -0.5f, 2.0f, 0, 0, 0};
  auto bags = MakeSparseBatch(field_ids, 3, 2, 3, x.data());
  ASSERT_OK(bags.status());
  proto::SparseEmbeddingSpec layer = ParseModel(kWideAndDeepDlrm).layer(0).sparse_embedding();
  std::vector<float> wide_slots(3 * 4);
  auto wide = MakeSparseBatch(WideIds(layer, field_ids, 3), 3, 0, 4, wide_slots.data());
  ASSERT_OK(wide.status());
  std::vector<float> rows = RandomVector(rng, bags->ids.size() * 2, -0.5f, 0.5f);
  std::vector<float> weights = RandomVector(rng, wide->ids.size(), -0.5f, 0.5f);
  std::vector<float> row_grads(rows.size()), weight_grads(weights.size());
  model.BindSparseRows(rows.data(), row_grads.data(), static_cast<int64_t>(bags->ids.size()));
  model.BindWideRows(weights.data(), weight_grads.data(), static_cast<int64_t>(wide->ids.size()), wide_slots.data());
  const std::vector<float> labels = {1, 0, 1};
  model.TrainBatch(x.data(), labels.data(), 3);
  const std::vector<float> grads = *model.grads();
  auto loss = [&]() { return model.EvaluateBatch(x.data(), labels.data(), 3).loss_sum; };
  for (uint64_t k = 0; k < model.num_keys(); ++k) {
    ExpectGradNear(grads[k], Numeric(model.params() + k, loss), "param " + std::to_string(k));
  }
  for (size_t k = 0; k < rows.size(); ++k)
    ExpectGradNear(row_grads[k], Numeric(&rows[k], loss), "row value " + std::to_string(k));
  for (size_t k = 0; k < weights.size(); ++k) {
    ExpectGradNear(weight_grads[k], Numeric(&weights[k], loss), "wide weight " + std::to_string(k));
  }
  // The field ids 7, 8, 9, 10, 11 and the crosses (7, 8) and (11, 8);
  // example 1's cross has an empty field: no id.
  EXPECT_EQ(wide->ids.size(), 7u);
}

TEST(WidePartTest, EachMistakeIsOneLineNamingTheField) {
  const auto error = [](const std::string& wide, int dim) {
    const proto::ModelSpec model = ParseModel(R"(sparse_table { name: "ids" dim: 2 }
        sparse_table { name: "wide" dim: )" + std::to_string(dim) +
                                              R"( }
        layer { sparse_embedding { table: "ids" fields: 3 )" +
                                              wide + R"( } }
        layer { linear { out_features: 1 } })");
    const std::string message(ValidateSparseEmbeddingLayer(model, 0).message());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  };
  const std::string at = "model.layer[0].sparse_embedding.";
  EXPECT_EQ(error(R"(wide_table: "wide")", 1), "");
  // As the run directory's spec.pbtxt writes it: no wide part.
  EXPECT_EQ(error(R"(wide_table: "")", 1), "");
  EXPECT_EQ(error(R"(wide_table: "nope")", 1), at + "wide_table 'nope' is no model.sparse_table's name");
  EXPECT_THAT(error(R"(wide_table: "wide")", 4),
              HasSubstr(at + "wide_table 'wide' must have dim 1 (a weight per feature), got 4"));
  EXPECT_THAT(error(R"(wide_table: "ids")", 1), HasSubstr(at + "wide_table 'ids' is the bags' table too"));
  EXPECT_THAT(error(R"(wide_table: "wide" values_per_field: 2)", 1),
              HasSubstr(at + "wide_table needs values_per_field 1"));
  EXPECT_THAT(error(R"(wide_table: "wide" wide_fields: false)", 1), HasSubstr("needs at least one wide_cross"));
  EXPECT_THAT(error(R"(wide_cross { field: 1 field: 2 })", 1), HasSubstr(at + "wide_cross needs a wide_table"));
  EXPECT_THAT(error(R"(wide_table: "wide" wide_cross { field: 1 })", 1),
              HasSubstr(at + "wide_cross[0] must cross 2 or more fields, got 1"));
  EXPECT_THAT(error(R"(wide_table: "wide" wide_cross { field: 1 field: 2 } wide_cross { field: 3 field: 4 })", 1),
              HasSubstr(at + "wide_cross[1].field[1] must be in [1, 3] (fields count from 1), got 4"));
  EXPECT_THAT(error(R"(wide_table: "wide" wide_cross { field: 0 field: 2 })", 1),
              HasSubstr(at + "wide_cross[0].field[0] must be in [1, 3]"));
  EXPECT_THAT(error(R"(wide_table: "wide" wide_cross { field: 2 field: 2 })", 1),
              HasSubstr(at + "wide_cross[0].field[1], 2, is also field[0]"));
  // A model of more than one output has no single logit to add to.
  auto softmax = Model::Create(ParseModel(R"(sparse_table { name: "ids" dim: 2 }
        sparse_table { name: "wide" dim: 1 }
        layer { sparse_embedding { table: "ids" fields: 3 wide_table: "wide" } }
        layer { linear { out_features: 3 } })"),
                               Shape{1 + 3}, 3);
  ASSERT_FALSE(softmax.ok());
  EXPECT_THAT(softmax.status().message(), HasSubstr("the wide part adds to one logit, but the model gives 3 outputs"));
}

}  // namespace
}  // namespace tessera
