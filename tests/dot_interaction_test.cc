// DLRM's dot interaction (models/dot_interaction.h): forward against values
// computed by hand, every gradient against central differences, and the
// checks of its place and its bottom MLP's widths (spec and Model::Create).
#include "models/dot_interaction.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/spec.h"
#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(DotInteractionTest, WithoutBottomGivesTheNumericVectorAndTheLowerTriangle) {
  // numeric = dim = 2, two bags: z0 = (1, 2), z1 = (3, 4), z2 = (5, 6).
  DotInteraction layer(/*numeric=*/2, /*fields=*/2, /*dim=*/2, /*bottom_features=*/{});
  EXPECT_EQ(layer.in_shape(), Shape({6}));
  EXPECT_EQ(layer.out_shape(), Shape({5}));  // 2 + 2 * 3 / 2
  EXPECT_TRUE(layer.param_shapes().empty());
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  std::vector<float> y(5);
  layer.Forward(x.data(), 1, y.data(), Pass{});
  // b, then z1.z0, z2.z0, z2.z1 (DLRM's order: i outer, j < i).
  EXPECT_EQ(y, std::vector<float>({1, 2, 11, 17, 39}));

  // dy = (0, 0, 1, 0, 0): d z1 = z0, d z0 = z1.
  const std::vector<float> dy = {0, 0, 1, 0, 0};
  std::vector<float> dx(6, 99.0f);
  layer.Backward(x.data(), y.data(), dy.data(), 1, dx.data());
  EXPECT_EQ(dx, std::vector<float>({3, 4, 1, 2, 0, 0}));
}

TEST(DotInteractionTest, BottomParametersAreNamedAndSized) {
  DotInteraction layer(/*numeric=*/3, /*fields=*/4, /*dim=*/2, /*bottom_features=*/{5, 2});
  const std::vector<ParamShape> shapes = layer.param_shapes();
  ASSERT_EQ(shapes.size(), 4u);
  EXPECT_EQ(shapes[0].name, "bottom0.weight");
  EXPECT_EQ(shapes[0].shape, std::vector<int64_t>({5, 3}));
  EXPECT_EQ(shapes[1].name, "bottom0.bias");
  EXPECT_EQ(shapes[2].name, "bottom1.weight");
  EXPECT_EQ(shapes[2].shape, std::vector<int64_t>({2, 5}));
  EXPECT_EQ(shapes[3].name, "bottom1.bias");
  EXPECT_EQ(layer.out_shape(), Shape({2 + 10}));
}

// L = sum(y .* r): every parameter's and input's gradient against central differences.
TEST(DotInteractionTest, GradientsMatchCentralDifferences) {
  std::mt19937 rng(7);
  const int64_t numeric = 3, fields = 3, dim = 2, batch = 3;
  DotInteraction layer(numeric, fields, dim, {4, dim});
  int64_t n_params = 0;
  for (const ParamShape& p : layer.param_shapes()) n_params += NumElements(p.shape);
  std::vector<float> params = RandomVector(rng, n_params, -0.8f, 0.8f);
  std::vector<float> grads(n_params, 0.0f);
  layer.Bind(params.data(), grads.data());
  std::vector<float> x = RandomVector(rng, batch * layer.in_features());
  const std::vector<float> r = RandomVector(rng, batch * layer.out_features());
  std::vector<float> y(batch * layer.out_features());
  auto loss = [&]() {
    layer.Forward(x.data(), batch, y.data(), Pass{});
    return Weighted(y, r);
  };
  loss();
  std::vector<float> dx(x.size());
  layer.Backward(x.data(), y.data(), r.data(), batch, dx.data());
  const std::vector<float> analytic = grads;
  for (int64_t k = 0; k < n_params; ++k) {
    ExpectGradNear(analytic[k], Numeric(&params[k], loss), "param " + std::to_string(k));
  }
  for (size_t k = 0; k < x.size(); ++k) ExpectGradNear(dx[k], Numeric(&x[k], loss), "dx[" + std::to_string(k) + "]");
}

TEST(DotInteractionTest, TheSamePassGivesTheSameBits) {
  std::mt19937 rng(3);
  DotInteraction layer(/*numeric=*/4, /*fields=*/5, /*dim=*/3, {8, 3});
  int64_t n_params = 0;
  for (const ParamShape& p : layer.param_shapes()) n_params += NumElements(p.shape);
  std::vector<float> params = RandomVector(rng, n_params), grads(n_params);
  layer.Bind(params.data(), grads.data());
  const std::vector<float> x = RandomVector(rng, 6 * layer.in_features());
  std::vector<float> a(6 * layer.out_features()), b(a.size());
  layer.Forward(x.data(), 6, a.data(), Pass{});
  layer.Forward(x.data(), 6, b.data(), Pass{});
  EXPECT_EQ(a, b);
}

proto::JobSpec DlrmSpec(const std::string& dot) {
  const std::string text = R"pb(
    data { format: CRITEO dir: "/tmp" train_files: "a" test_files: "b" }
    model {
      sparse_table { name: "ids" dim: 4 }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      )pb" + dot + R"pb(
      layer { linear { out_features: 1 } }
      loss: SIGMOID_BINARY_CROSS_ENTROPY
    }
  )pb";
  StatusOr<proto::JobSpec> spec = ParseJobSpec(text, "dlrm.pbtxt");
  EXPECT_OK(spec.status());
  return spec.ok() ? *spec : proto::JobSpec();
}

TEST(DotInteractionTest, ModelTakesItAfterTheSparseEmbedding) {
  const proto::JobSpec spec = DlrmSpec("layer { dot_interaction { bottom_features: 8 bottom_features: 4 } }");
  EXPECT_OK(ValidateJobSpec(spec));
  auto model = Model::Create(spec.model(), Shape{13 + 26}, 2);
  ASSERT_OK(model.status());
  EXPECT_EQ((*model)->layer(1).out_shape(), Shape({4 + 26 * 27 / 2}));
  EXPECT_EQ((*model)->tensors()[0].name, "layer1.dot_interaction.bottom0.weight");
}

TEST(DotInteractionTest, EachMistakeIsOneLineNamingIt) {
  // The bottom MLP must end at the table's dim.
  auto wrong_end = Model::Create(DlrmSpec("layer { dot_interaction { bottom_features: 8 } }").model(),
                                 Shape{13 + 26}, 2);
  ASSERT_FALSE(wrong_end.ok());
  EXPECT_THAT(wrong_end.status().message(), HasSubstr("model.layer[1]: dot_interaction.bottom_features ends at 8"));
  EXPECT_THAT(wrong_end.status().message(), HasSubstr("the table's dim, 4"));
  // No bottom: the numeric features (13) are not the dim (4).
  auto no_bottom = Model::Create(DlrmSpec("layer { dot_interaction {} }").model(), Shape{13 + 26}, 2);
  ASSERT_FALSE(no_bottom.ok());
  EXPECT_THAT(no_bottom.status().message(), HasSubstr("without bottom_features takes the 13 numeric features"));
  auto zero = Model::Create(DlrmSpec("layer { dot_interaction { bottom_features: 0 } }").model(), Shape{13 + 26}, 2);
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(zero.status().message(), HasSubstr("dot_interaction.bottom_features[0] must be in [1, 16777216], got 0"));
  // Anywhere but right after the sparse_embedding.
  proto::JobSpec late = DlrmSpec("layer { relu {} }");
  late.mutable_model()->add_layer()->mutable_dot_interaction()->add_bottom_features(4);
  Status misplaced = ValidateJobSpec(late);
  EXPECT_THAT(misplaced.message(), HasSubstr("model.layer[3] is a dot_interaction: it must come right after a "
                                             "sparse_embedding first layer"));
  // The spec's check names the same fields before any data is read.
  EXPECT_EQ(ValidateJobSpec(DlrmSpec("layer { dot_interaction { bottom_features: 8 } }")).message(),
            "model.layer[1].dot_interaction.bottom_features ends at 8: the vector dotted with the bags needs the "
            "table's dim, 4");
  EXPECT_EQ(ValidateJobSpec(DlrmSpec("layer { dot_interaction { bottom_features: 4 bottom_features: -1 } }")).message(),
            "model.layer[1].dot_interaction.bottom_features[1] must be in [1, 16777216], got -1");
  for (const std::string& text : {misplaced.message(), std::string(wrong_end.status().message())}) {
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  }
  // CUDA has no twin yet: refused by name.
  EXPECT_THAT(CheckDeviceLayers(DlrmSpec("layer { dot_interaction { bottom_features: 4 } }").model(), Device::kCuda)
                  .message(),
              HasSubstr("model.layer[1]: dot_interaction runs on the CPU only"));
}

}  // namespace
}  // namespace tessera
