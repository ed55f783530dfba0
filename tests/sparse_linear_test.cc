// The SparseLinear layer and IdLayout::Pairs: y = b + sum value * W[index]
// equals a dense Linear over the scattered input, gradients checked
// numerically, only the rows a batch touched pushed, and what Model::Create
// and ValidateInputValues refuse.
#include "models/sparse_linear.h"

#include <cmath>
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

TEST(IdLayoutTest, PairsReadTheirIndexesAndSkipPadding) {
  const IdLayout layout = IdLayout::Pairs(3, 10);  // 3 (index, value) pairs, features 0-9
  EXPECT_EQ(layout.features(), 6);
  EXPECT_EQ(layout.total_rows(), 10);
  EXPECT_EQ(layout.RowOf(0, 9.0f), 9);
  EXPECT_EQ(layout.RowOf(1, 9.0f), -1) << "a value is not an id";
  EXPECT_EQ(layout.RowOf(2, -1.0f), -1) << "padding reads no row";
  const std::vector<float> x = {7, 0.5f, 2, -3, -1, 0, /*second:*/ 2, 1e6f, 0, 8, -1, 0};
  EXPECT_EQ(layout.RowsOf(x.data(), 2), (std::vector<int64_t>{0, 2, 7}));
  EXPECT_OK(layout.Validate(x.data(), 12));
  const std::vector<float> beyond = {10, 1, -1, 0, -1, 0};
  EXPECT_THAT(layout.Validate(beyond.data(), 6).message(),
              HasSubstr("input feature index 10.000000 of pair 0 is neither -1 (padding) nor a feature in [0, 10)"));
  const std::vector<float> nan = {1, NAN, -1, 0, -1, 0};
  EXPECT_THAT(layout.Validate(nan.data(), 6).message(), HasSubstr("is not finite"));
}

TEST(SparseLinearTest, ForwardIsALinearOverTheScatteredInput) {
  const int64_t features = 12, out = 3, pairs = 4, batch = 3;
  SparseLinear layer(pairs, features, out);
  EXPECT_EQ(layer.in_shape(), (Shape{pairs, 2}));
  EXPECT_EQ(layer.out_shape(), (Shape{out}));
  ASSERT_EQ(layer.param_shapes().size(), 2u);
  EXPECT_EQ(layer.param_shapes()[0].shape, (std::vector<int64_t>{features, out}));
  EXPECT_EQ(layer.param_shapes()[1].shape, (std::vector<int64_t>{out}));
  std::mt19937 rng(3);
  std::vector<float> params = RandomVector(rng, features * out + out);
  std::vector<float> grad(params.size(), 5.0f);  // not zero: the layer must clear it
  layer.Bind(params.data(), grad.data());
  const std::vector<float> x = {0, 0.5f, 3, -2, 11, 1, -1, 0,   //
                                5, 1.5f, -1, 0, -1, 0, -1, 0,   //
                                3, 0.25f, 4, 1, 7, -1, 8, 2};
  std::vector<float> y(batch * out);
  layer.Forward(x.data(), batch, y.data(), Pass{});
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<float> dense(features, 0.0f);
    for (int64_t k = 0; k < pairs; ++k) {
      if (x[b * 8 + 2 * k] >= 0) dense[static_cast<int>(x[b * 8 + 2 * k])] = x[b * 8 + 2 * k + 1];
    }
    for (int64_t o = 0; o < out; ++o) {
      double want = params[features * out + o];
      for (int64_t f = 0; f < features; ++f) want += dense[f] * params[f * out + o];
      EXPECT_NEAR(y[b * out + o], want, 1e-5) << b << "," << o;
    }
  }
  const std::vector<float> dy = RandomVector(rng, y.size());
  std::vector<float> dx(x.size(), 9.0f);
  layer.Backward(x.data(), y.data(), dy.data(), batch, dx.data());
  EXPECT_EQ(dx, std::vector<float>(x.size(), 0.0f)) << "inputs get no gradient";
  auto loss = [&] {
    std::vector<float> o(y.size());
    layer.Forward(x.data(), batch, o.data(), Pass{});
    return Weighted(o, dy);
  };
  for (size_t j = 0; j < params.size(); ++j) ExpectGradNear(grad[j], Numeric(&params[j], loss), "param " + std::to_string(j));
  EXPECT_EQ(grad[1 * out], 0.0f) << "feature 1 is in no example";

  // A second batch into the same buffer clears the rows the first wrote.
  const std::vector<float> x2(x.size(), -1.0f);  // all padding (values -1 are ignored with it)
  layer.Backward(x2.data(), y.data(), dy.data(), batch, nullptr);
  for (int64_t j = 0; j < features * out; ++j) EXPECT_EQ(grad[j], 0.0f) << j;
}

proto::ModelSpec SparseModel(bool sparse) {
  return ParseModel(std::string("layer { sparse_linear { out_features: 2 sparse_gradients: ") +
                    (sparse ? "true" : "false") + " } } layer { relu {} } layer { linear { out_features: 3 } }");
}

TEST(SparseLinearTest, ModelPushesOnlyTheRowsABatchTouched) {
  // 1000 features of 2 outputs: weight keys [0, 2000), bias [2000, 2002).
  auto model = Model::Create(SparseModel(true), {2, 2}, 3, Device::kCpu, {}, 1000);
  ASSERT_OK(model.status());
  InitializeParameters((*model)->tensors(), /*seed=*/7, (*model)->params());
  EXPECT_EQ((*model)->input_features(), 4) << "2 pairs an example, not 1000 values";
  EXPECT_EQ((*model)->tensors()[0].name, "layer0.sparse_linear.weight");
  EXPECT_EQ((*model)->tensors()[1].name, "layer0.sparse_linear.bias");
  ASSERT_EQ((*model)->sparse_tensors().size(), 1u);
  EXPECT_EQ((*model)->sparse_tensors()[0], (KeyRange{0, 2000}));
  const std::vector<float> x = {3, 1, 4, 2, 999, 0.5f, -1, 0};
  const std::vector<float> labels = {0, 2};
  const std::vector<KeyRange> runs = {{6, 10}, {1998, 2000}};
  EXPECT_EQ((*model)->SparseRowsOf(x.data(), 2), runs);
  (*model)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_EQ((*model)->touched_runs(), runs);
  const std::vector<float> g = *(*model)->grads();
  for (uint64_t k = 0; k < 2000; ++k) {
    if ((k < 6 || k >= 10) && k < 1998) {
      ASSERT_EQ(g[k], 0.0f) << k;
    }
  }
  float touched = 0;
  for (uint64_t k : {6, 7, 8, 9, 1998, 1999}) touched += std::fabs(g[k]);
  EXPECT_GT(touched, 0.0f) << "the touched rows have a gradient";
  auto dense = Model::Create(SparseModel(false), {2, 2}, 3, Device::kCpu, {}, 1000);
  ASSERT_OK(dense.status());
  std::copy_n((*model)->params(), (*model)->num_keys(), (*dense)->params());
  (*dense)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_TRUE((*dense)->touched_runs().empty());
  EXPECT_EQ(*(*dense)->grads(), g) << "sparse or not, the gradients are the same";
  const std::vector<float> bad = {1000, 1, -1, 0};
  EXPECT_THAT((*model)->ValidateInputValues(bad.data(), 4).message(),
              HasSubstr("is neither -1 (padding) nor a feature in [0, 1000) for the sparse_linear first layer"));
}

TEST(SparseLinearTest, CreateRefusesWhatCannotWork) {
  auto no_data = Model::Create(SparseModel(true), {2, 2}, 3);
  EXPECT_THAT(no_data.status().message(), HasSubstr("sparse_linear needs libsvm data"));
  auto dense_first = Model::Create(ParseModel("layer { linear { out_features: 3 } }"), {2, 2}, 3, Device::kCpu, {}, 10);
  EXPECT_THAT(dense_first.status().message(), HasSubstr("libsvm data (data.format LIBSVM) needs a sparse_linear first"));
  auto second = Model::Create(ParseModel("layer { sparse_linear { out_features: 3 } } layer { sparse_linear { "
                                         "out_features: 3 } }"),
                              {2, 2}, 3, Device::kCpu, {}, 10);
  EXPECT_THAT(second.status().message(), HasSubstr("model.layer[1] is a sparse_linear: it must be the first layer"));
  auto shape = Model::Create(SparseModel(true), {4}, 3, Device::kCpu, {}, 10);
  EXPECT_THAT(shape.status().message(), HasSubstr("sparse_linear needs [pairs, 2] inputs, got [4]"));
  auto zero = Model::Create(ParseModel("layer { sparse_linear { out_features: 0 } }"), {2, 2}, 3, Device::kCpu, {}, 10);
  EXPECT_THAT(zero.status().message(), HasSubstr("sparse_linear.out_features must be >= 1, got 0"));
  auto many = Model::Create(SparseModel(true), {2, 2}, 3, Device::kCpu, {}, (int64_t{1} << 24) + 1);
  EXPECT_THAT(many.status().message(), HasSubstr("at most 2^24"));
  // CPU only for now: a CUDA model refuses it whether or not this build has CUDA.
  auto cuda = Model::Create(SparseModel(true), {2, 2}, 3, Device::kCuda, {}, 10);
  EXPECT_THAT(cuda.status().message(), HasSubstr("sparse_linear runs on the CPU only"));
  EXPECT_EQ(CheckDeviceLayers(SparseModel(true), Device::kCuda).message(),
            "model.layer[0]: sparse_linear runs on the CPU only for now (use --device cpu)");
}

}  // namespace
}  // namespace tessera
