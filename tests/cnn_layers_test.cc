// The convolutional layers (oneDNN on the CPU): outputs against direct loops,
// numerical gradient checks, batch norm's running statistics, dropout's masks,
// and whole-model checks of a small CNN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/batch_norm.h"
#include "models/conv2d.h"
#include "models/dropout.h"
#include "models/flatten.h"
#include "models/layer.h"
#include "models/max_pool2d.h"
#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Checks every trainable parameter's gradient and dx of L = sum(y .* r)
// against central differences, for a training pass with a fixed seed.
void CheckGradients(Layer& layer, int64_t batch, std::vector<float> x, std::mt19937& rng) {
  int64_t nparams = 0;
  std::vector<std::pair<int64_t, int64_t>> trainable;  // [begin, end) of trainable tensors
  for (const ParamShape& p : layer.param_shapes()) {
    const int64_t n = NumElements(p.shape);
    if (p.trainable) trainable.push_back({nparams, nparams + n});
    nparams += n;
  }
  std::vector<float> params = RandomVector(rng, nparams, 0.5f, 1.5f);
  std::vector<float> grads(nparams, 1e6f);  // garbage: Backward must overwrite
  layer.Bind(params.data(), grads.data());
  const Pass pass{true, 42};
  std::vector<float> y(batch * layer.out_features());
  const std::vector<float> r = RandomVector(rng, y.size());
  layer.Forward(x.data(), batch, y.data(), pass);
  std::vector<float> dx(x.size(), 1e6f);
  layer.Backward(x.data(), y.data(), r.data(), batch, dx.data());
  const std::vector<float> analytic = grads;

  auto loss = [&] {
    std::vector<float> yy(y.size());
    layer.Forward(x.data(), batch, yy.data(), pass);
    return Weighted(yy, r);
  };
  for (const auto& [begin, end] : trainable) {
    for (int64_t k = begin; k < end; ++k) {
      ExpectGradNear(analytic[k], Numeric(&params[k], loss), layer.type() + " param[" + std::to_string(k) + "]");
    }
  }
  for (size_t k = 0; k < x.size(); ++k) {
    ExpectGradNear(dx[k], Numeric(&x[k], loss), layer.type() + " dx[" + std::to_string(k) + "]");
  }
}

// Direct convolution in double.
std::vector<double> DirectConv(const ConvGeometry& g, int64_t batch, const std::vector<float>& x,
                               const std::vector<float>& params) {
  const int64_t oh = g.out_height(), ow = g.out_width();
  const float* w = params.data();
  const float* b = params.data() + g.out_channels * g.in_channels * g.kernel * g.kernel;
  std::vector<double> y(batch * g.out_channels * oh * ow);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < g.out_channels; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double sum = g.bias ? b[o] : 0.0;
          for (int64_t c = 0; c < g.in_channels; ++c)
            for (int64_t ki = 0; ki < g.kernel; ++ki)
              for (int64_t kj = 0; kj < g.kernel; ++kj) {
                const int64_t row = i * g.stride + ki - g.padding, col = j * g.stride + kj - g.padding;
                if (row < 0 || row >= g.height || col < 0 || col >= g.width) continue;
                sum += static_cast<double>(w[((o * g.in_channels + c) * g.kernel + ki) * g.kernel + kj]) *
                       x[((n * g.in_channels + c) * g.height + row) * g.width + col];
              }
          y[((n * g.out_channels + o) * oh + i) * ow + j] = sum;
        }
  return y;
}

ConvGeometry Geometry(int64_t c, int64_t h, int64_t w, int64_t oc, int64_t k, int64_t stride, int64_t pad, bool bias) {
  ConvGeometry g;
  g.in_channels = c;
  g.height = h;
  g.width = w;
  g.out_channels = oc;
  g.kernel = k;
  g.stride = stride;
  g.padding = pad;
  g.bias = bias;
  return g;
}

TEST(CnnLayersTest, ConvForwardMatchesDirectLoops) {
  for (const ConvGeometry& g : {Geometry(1, 28, 28, 32, 5, 1, 2, true), Geometry(3, 9, 7, 4, 3, 2, 1, false),
                                Geometry(2, 5, 5, 3, 5, 1, 0, true)}) {
    std::mt19937 rng(7);
    Conv2d conv(g);
    EXPECT_EQ(conv.out_shape(), (Shape{g.out_channels, g.out_height(), g.out_width()}));
    const int64_t batch = 3;
    int64_t n = 0;
    for (const ParamShape& p : conv.param_shapes()) n += NumElements(p.shape);
    std::vector<float> params = RandomVector(rng, n), grads(n);
    conv.Bind(params.data(), grads.data());
    const std::vector<float> x = RandomVector(rng, batch * conv.in_features());
    std::vector<float> y(batch * conv.out_features(), -9.0f);
    conv.Forward(x.data(), batch, y.data(), Pass{});
    const std::vector<double> want = DirectConv(g, batch, x, params);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-4) << i;
  }
}

TEST(CnnLayersTest, ConvGradients) {
  std::mt19937 rng(8);
  for (const ConvGeometry& g : {Geometry(2, 6, 5, 3, 3, 1, 1, true), Geometry(1, 7, 7, 2, 3, 2, 0, false)}) {
    Conv2d conv(g);
    CheckGradients(conv, 2, RandomVector(rng, 2 * conv.in_features()), rng);
  }
}

TEST(CnnLayersTest, ConvParamShapesFollowPyTorch) {
  Conv2d conv(Geometry(32, 14, 14, 64, 5, 1, 2, true));
  const std::vector<ParamShape> shapes = conv.param_shapes();
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].shape, (std::vector<int64_t>{64, 32, 5, 5}));
  EXPECT_EQ(shapes[1].shape, (std::vector<int64_t>{64}));
  EXPECT_FLOAT_EQ(shapes[0].init_bound, 1.0f / std::sqrt(32.0f * 25.0f));
  EXPECT_EQ(conv.out_shape(), (Shape{64, 14, 14}));
}

TEST(CnnLayersTest, MaxPoolForwardAndGradients) {
  std::mt19937 rng(9);
  MaxPool2d pool({2, 6, 7}, 2, 2);
  EXPECT_EQ(pool.out_shape(), (Shape{2, 3, 3}));
  const int64_t batch = 2;
  const std::vector<float> x = DistinctVector(rng, batch * pool.in_features());
  std::vector<float> y(batch * pool.out_features());
  pool.Forward(x.data(), batch, y.data(), Pass{});
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          float best = -INFINITY;
          for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < 2; ++b) best = std::max(best, x[((n * 2 + c) * 6 + 2 * i + a) * 7 + 2 * j + b]);
          EXPECT_EQ(y[((n * 2 + c) * 3 + i) * 3 + j], best);
        }
  CheckGradients(pool, batch, x, rng);
  MaxPool2d overlapping({1, 5, 5}, 3, 1);
  CheckGradients(overlapping, 2, DistinctVector(rng, 2 * overlapping.in_features()), rng);
}

TEST(CnnLayersTest, BatchNormGradients) {
  std::mt19937 rng(10);
  BatchNorm bn2d({3, 4, 5}, 0.1f, 1e-5f);
  CheckGradients(bn2d, 4, RandomVector(rng, 4 * bn2d.in_features(), -2.0f, 2.0f), rng);
  BatchNorm bn1d({6}, 0.1f, 1e-5f);
  CheckGradients(bn1d, 8, RandomVector(rng, 8 * bn1d.in_features(), -2.0f, 2.0f), rng);
}

TEST(CnnLayersTest, BatchNormRunningStatisticsAndEvaluation) {
  const int64_t channels = 2, h = 3, w = 3, batch = 4;
  const float momentum = 0.25f, epsilon = 1e-5f;
  BatchNorm bn({channels, h, w}, momentum, epsilon);
  const std::vector<ParamShape> shapes = bn.param_shapes();
  ASSERT_EQ(shapes.size(), 4u);
  EXPECT_EQ(shapes[2].name, "running_mean");
  EXPECT_FALSE(shapes[2].trainable);
  EXPECT_FALSE(shapes[3].trainable);
  EXPECT_TRUE(shapes[0].trainable);
  EXPECT_EQ(shapes[0].init_value, 1.0f);
  EXPECT_EQ(shapes[3].init_value, 1.0f);

  std::mt19937 rng(11);
  // weight, bias, running_mean, running_var
  std::vector<float> params = {1.5f, 0.5f, -0.5f, 0.25f, 0.1f, -0.2f, 2.0f, 0.5f};
  std::vector<float> grads(params.size());
  bn.Bind(params.data(), grads.data());
  const std::vector<float> x = RandomVector(rng, batch * channels * h * w, -3.0f, 3.0f);
  std::vector<float> y(x.size()), dy(x.size(), 0.0f);
  bn.Forward(x.data(), batch, y.data(), Pass{true, 1});
  bn.Backward(x.data(), y.data(), dy.data(), batch, nullptr);
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0, sq = 0;
    const double n = batch * h * w;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < h * w; ++k) sum += x[(b * channels + c) * h * w + k];
    const double mean = sum / n;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t k = 0; k < h * w; ++k) sq += std::pow(x[(b * channels + c) * h * w + k] - mean, 2);
    const double unbiased = sq / (n - 1);
    // Training output: normalized with the batch's (biased) variance.
    const double biased = sq / n;
    const double want0 = (x[c * h * w] - mean) / std::sqrt(biased + epsilon) * params[c] + params[2 + c];
    EXPECT_NEAR(y[c * h * w], want0, 1e-4);
    // Pushed: the new running values times the batch.
    EXPECT_NEAR(grads[4 + c], batch * ((1 - momentum) * params[4 + c] + momentum * mean), 1e-4);
    EXPECT_NEAR(grads[6 + c], batch * ((1 - momentum) * params[6 + c] + momentum * unbiased), 1e-4);
  }
  // Evaluation normalizes with the running statistics.
  bn.Forward(x.data(), batch, y.data(), Pass{false, 0});
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t c = (i / (h * w)) % channels;
    const double want = (x[i] - params[4 + c]) / std::sqrt(params[6 + c] + epsilon) * params[c] + params[2 + c];
    ASSERT_NEAR(y[i], want, 1e-4) << i;
  }
}

TEST(CnnLayersTest, DropoutMasksRepeatAndScale) {
  Dropout dropout({100, 100}, 0.3f);
  const int64_t n = 10000;
  std::vector<float> x(n, 2.0f), y(n), y2(n), dx(n), ones(n, 1.0f);
  dropout.Forward(x.data(), 1, y.data(), Pass{true, 5});
  const int64_t zeros = std::count(y.begin(), y.end(), 0.0f);
  EXPECT_NEAR(static_cast<double>(zeros) / n, 0.3, 0.03);
  for (float v : y) {
    if (v != 0.0f) {
      ASSERT_FLOAT_EQ(v, 2.0f / 0.7f);
    }
  }
  dropout.Backward(x.data(), y.data(), ones.data(), 1, dx.data());
  for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(dx[i], y[i] / 2.0f) << i;
  dropout.Forward(x.data(), 1, y2.data(), Pass{true, 5});
  EXPECT_EQ(y, y2);  // same seed, same mask
  dropout.Forward(x.data(), 1, y2.data(), Pass{true, 6});
  EXPECT_NE(y, y2);
  dropout.Forward(x.data(), 1, y2.data(), Pass{false, 6});
  EXPECT_EQ(y2, x);  // evaluation: identity
}

TEST(CnnLayersTest, FlattenKeepsBytes) {
  Flatten flatten({2, 3, 4});
  EXPECT_EQ(flatten.out_shape(), (Shape{24}));
  std::vector<float> x(48);
  std::iota(x.begin(), x.end(), 0.0f);
  std::vector<float> y(48), dx(48);
  flatten.Forward(x.data(), 2, y.data(), Pass{});
  EXPECT_EQ(y, x);
  flatten.Backward(x.data(), y.data(), y.data(), 2, dx.data());
  EXPECT_EQ(dx, x);
}

// [1, 6, 6] -> conv 2@3x3 pad 1 -> batch_norm -> relu -> maxpool 2 -> flatten -> linear 3.
proto::ModelSpec SmallCnn(bool batch_norm) {
  proto::ModelSpec spec;
  proto::Conv2dSpec* conv = spec.add_layer()->mutable_conv2d();
  conv->set_out_channels(2);
  conv->set_kernel_size(3);
  conv->set_padding(1);
  if (batch_norm) spec.add_layer()->mutable_batch_norm();
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_max_pool2d()->set_kernel_size(2);
  spec.add_layer()->mutable_flatten();
  spec.add_layer()->mutable_linear()->set_out_features(3);
  return spec;
}

TEST(CnnLayersTest, SmallCnnModelGradients) {
  auto model = Model::Create(SmallCnn(false), Shape{1, 6, 6}, 3);
  ASSERT_OK(model.status());
  Model& m = **model;
  ASSERT_EQ(m.tensors().size(), 4u);
  EXPECT_EQ(m.tensors()[0].name, "layer0.conv2d.weight");
  EXPECT_EQ(m.tensors()[2].name, "layer4.linear.weight");
  EXPECT_EQ(m.tensors()[2].shape, (std::vector<int64_t>{3, 18}));
  InitializeParameters(m.tensors(), 3, m.params());
  std::mt19937 rng(12);
  const int64_t batch = 3;
  std::vector<float> x = DistinctVector(rng, batch * 36);
  for (float& v : x) v *= 5.0f;
  const std::vector<float> labels = {0, 2, 1};
  m.TrainBatch(x.data(), labels.data(), batch);
  const std::vector<float> analytic = *m.grads();
  auto loss = [&] { return m.EvaluateBatch(x.data(), labels.data(), batch).loss_sum; };
  int checked = 0;
  for (uint64_t k = 0; k < m.num_keys(); ++k) {
    const double numeric = Numeric(m.params() + k, loss);
    ExpectGradNear(analytic[k], numeric, "key " + std::to_string(k));
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 9 + 2 + 3 * 18 + 3);
}

TEST(CnnLayersTest, BatchNormTensorsAreNonTrainableStatistics) {
  auto model = Model::Create(SmallCnn(true), Shape{1, 6, 6}, 3);
  ASSERT_OK(model.status());
  const auto& t = (*model)->tensors();
  ASSERT_EQ(t.size(), 8u);
  EXPECT_EQ(t[2].name, "layer1.batch_norm.weight");
  EXPECT_TRUE(t[2].trainable);
  EXPECT_EQ(t[4].name, "layer1.batch_norm.running_mean");
  EXPECT_FALSE(t[4].trainable);
  EXPECT_FALSE(t[5].trainable);
  std::vector<float> params((*model)->num_keys());
  InitializeParameters(t, 9, params.data());
  for (uint64_t k = t[2].offset; k < t[2].offset + 2; ++k) EXPECT_EQ(params[k], 1.0f);  // scale
  for (uint64_t k = t[5].offset; k < t[5].offset + 2; ++k) EXPECT_EQ(params[k], 1.0f);  // running_var
  for (uint64_t k = t[4].offset; k < t[4].offset + 2; ++k) EXPECT_EQ(params[k], 0.0f);  // running_mean
}

TEST(CnnLayersTest, ShapeMistakesAreNamed) {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(10);
  spec.add_layer()->mutable_conv2d()->set_out_channels(2);
  auto model = Model::Create(spec, Shape{1, 28, 28}, 10);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("model.layer[1]"));
  EXPECT_THAT(model.status().message(), HasSubstr("conv2d needs [channels, height, width]"));

  proto::ModelSpec big;
  proto::Conv2dSpec* conv = big.add_layer()->mutable_conv2d();
  conv->set_out_channels(2);
  conv->set_kernel_size(9);
  conv->set_padding(1);
  EXPECT_THAT(Model::Create(big, Shape{1, 6, 6}, 10).status().message(), HasSubstr("larger than its padded input"));
  conv->set_kernel_size(3);
  conv->set_padding(3);
  EXPECT_THAT(Model::Create(big, Shape{1, 6, 6}, 10).status().message(), HasSubstr("padding must be in"));

  proto::ModelSpec ends_wide = SmallCnn(false);
  ends_wide.mutable_layer()->DeleteSubrange(3, 2);  // no flatten, no linear
  EXPECT_THAT(Model::Create(ends_wide, Shape{1, 6, 6}, 3).status().message(), HasSubstr("the last layer gives outputs of shape [2, 3, 3]"));

  proto::ModelSpec dropout;
  dropout.add_layer()->mutable_dropout()->set_p(1.0f);
  EXPECT_THAT(Model::Create(dropout, Shape{3}, 3).status().message(), HasSubstr("dropout.p must be in [0, 1)"));
}

}  // namespace
}  // namespace tessera
