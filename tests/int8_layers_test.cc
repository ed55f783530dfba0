// The int8 inference layers against the float layers run on the same values
// dequantized: an input already on the int8 grid and integer weights give
// sums that int8 and float compute exactly alike, so the two must agree to
// float rounding. Also: inputs off the grid round to the nearest step and
// saturate, and specs that make no sense are refused. Also the fused
// inference passes (a convolution with the ReLU and pooling after it, int8
// or float) against the layers run one by one.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/spec.h"
#include "models/conv2d.h"
#include "models/int8_layers.h"
#include "models/layer.h"
#include "models/linear.h"
#include "models/model.h"
#include "tests/gradient_check.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Values q * scale with q integers in [lo, hi].
std::vector<float> OnGrid(std::mt19937& rng, size_t n, int lo, int hi, float scale) {
  std::uniform_int_distribution<int> q(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = static_cast<float>(q(rng)) * scale;
  return out;
}

struct Int8Params {
  std::vector<float> int8;   // weight (integers), bias, weight_scale: the int8 layer's buffer
  std::vector<float> float_; // weight * weight_scale, bias: the float layer's
};

Int8Params MakeParams(std::mt19937& rng, int64_t out, int64_t per_out, bool bias) {
  Int8Params p;
  std::uniform_int_distribution<int> q(-127, 127);
  std::vector<float> scales = RandomVector(rng, out, 0.001f, 0.02f);
  std::vector<float> weights(out * per_out);
  for (float& w : weights) w = static_cast<float>(q(rng));
  std::vector<float> b = RandomVector(rng, out, -0.5f, 0.5f);
  p.int8 = weights;
  if (bias) p.int8.insert(p.int8.end(), b.begin(), b.end());
  p.int8.insert(p.int8.end(), scales.begin(), scales.end());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < per_out; ++k) p.float_.push_back(weights[o * per_out + k] * scales[o]);
  }
  if (bias) p.float_.insert(p.float_.end(), b.begin(), b.end());
  return p;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float tolerance) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tolerance * (1.0f + std::fabs(want[i]))) << "at " << i;
  }
}

proto::Int8Spec Int8(float scale, bool is_unsigned) {
  proto::Int8Spec s;
  s.set_input_scale(scale);
  s.set_input_unsigned(is_unsigned);
  return s;
}

TEST(Int8LayersTest, ConvMatchesFloatConvOnTheGrid) {
  std::mt19937 rng(7);
  for (bool is_unsigned : {false, true}) {
    for (bool bias : {true, false}) {
      ConvGeometry g;
      g.in_channels = 3, g.height = 9, g.width = 8, g.out_channels = 5, g.kernel = 3, g.stride = 2, g.padding = 1;
      g.bias = bias;
      const float scale = 0.037f;
      const int64_t batch = 4;
      Int8Params p = MakeParams(rng, g.out_channels, g.in_channels * g.kernel * g.kernel, bias);
      const std::vector<float> x = OnGrid(rng, batch * g.in_channels * g.height * g.width, is_unsigned ? 0 : -128,
                                          is_unsigned ? 255 : 127, scale);
      Conv2d reference(g);
      Int8Conv2d int8(g, Int8(scale, is_unsigned));
      ASSERT_EQ(int8.out_shape(), reference.out_shape());
      std::vector<float> grads(p.float_.size());
      reference.Bind(p.float_.data(), grads.data());
      int8.Bind(p.int8.data(), nullptr);
      std::vector<float> want(batch * reference.out_features()), got(want.size(), 1e9f);
      reference.Forward(x.data(), batch, want.data(), Pass{false, 0});
      int8.Forward(x.data(), batch, got.data(), Pass{false, 0});
      SCOPED_TRACE(std::string(is_unsigned ? "uint8" : "int8") + (bias ? " with bias" : " without bias"));
      ExpectClose(got, want, 1e-4f);
    }
  }
}

TEST(Int8LayersTest, LinearMatchesFloatLinearOnTheGrid) {
  std::mt19937 rng(8);
  for (bool is_unsigned : {false, true}) {
    const int64_t in = 37, out = 11, batch = 6;
    const float scale = 0.05f;
    Int8Params p = MakeParams(rng, out, in, true);
    const std::vector<float> x = OnGrid(rng, batch * in, is_unsigned ? 0 : -128, is_unsigned ? 255 : 127, scale);
    Linear reference({in}, out, true);
    Int8Linear int8({in}, out, true, Int8(scale, is_unsigned));
    std::vector<float> grads(p.float_.size());
    reference.Bind(p.float_.data(), grads.data());
    int8.Bind(p.int8.data(), nullptr);
    std::vector<float> want(batch * out), got(want.size(), 1e9f);
    reference.Forward(x.data(), batch, want.data(), Pass{false, 0});
    int8.Forward(x.data(), batch, got.data(), Pass{false, 0});
    ExpectClose(got, want, 1e-4f);
  }
}

// Off the grid the input rounds to the nearest step and saturates at the
// ends of the range: a 1x1 linear layer shows each value's quantization.
TEST(Int8LayersTest, InputsRoundToTheNearestStepAndSaturate) {
  const float scale = 0.5f;
  std::vector<float> params = {1.0f, 0.0f, 1.0f};  // weight 1, bias 0, weight_scale 1
  const std::vector<float> x = {0.74f, 0.76f, -0.74f, -0.76f, 200.0f, -200.0f, 63.4f};
  const std::vector<float> want_signed = {0.5f, 1.0f, -0.5f, -1.0f, 63.5f, -64.0f, 63.5f};
  const std::vector<float> want_unsigned = {0.5f, 1.0f, 0.0f, 0.0f, 127.5f, 0.0f, 63.5f};
  for (bool is_unsigned : {false, true}) {
    Int8Linear layer({1}, 1, true, Int8(scale, is_unsigned));
    layer.Bind(params.data(), nullptr);
    std::vector<float> y(x.size());
    layer.Forward(x.data(), static_cast<int64_t>(x.size()), y.data(), Pass{false, 0});
    EXPECT_EQ(y, is_unsigned ? want_unsigned : want_signed);
  }
}

TEST(Int8LayersTest, SpecsAreChecked) {
  proto::LayerSpec spec;
  spec.mutable_linear()->set_out_features(4);
  spec.mutable_linear()->mutable_int8()->set_input_scale(0);
  auto layer = CreateLayer(spec, {8});
  ASSERT_FALSE(layer.ok());
  EXPECT_THAT(layer.status().message(), HasSubstr("input_scale must be a finite number > 0"));
  spec.mutable_linear()->mutable_int8()->set_input_scale(0.1f);
  layer = CreateLayer(spec, {8});
  ASSERT_TRUE(layer.ok()) << layer.status().message();
  std::vector<std::string> names;
  for (const ParamShape& p : (*layer)->param_shapes()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "weight_scale"}));

  // A job cannot train int8 layers.
  proto::JobSpec job;
  *job.mutable_model()->add_layer() = spec;
  Status s = ValidateJobSpec(job);
  EXPECT_THAT(s.message(), HasSubstr("int8 layer"));
}

// A whole model of int8 layers runs through Model::Infer, which fuses each
// int8 convolution with the ReLU and max pooling after it: the same logits
// as the layers run one by one, unfused.
TEST(Int8LayersTest, ModelFusesConvReluPoolAndComputesTheSame) {
  proto::ModelSpec spec;
  proto::Conv2dSpec* conv = spec.add_layer()->mutable_conv2d();
  conv->set_out_channels(8);
  conv->set_kernel_size(3);
  conv->set_padding(1);
  conv->mutable_int8()->set_input_scale(0.02f);
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_max_pool2d()->set_kernel_size(2);
  proto::Conv2dSpec* conv2 = spec.add_layer()->mutable_conv2d();
  conv2->set_out_channels(4);
  conv2->set_kernel_size(3);
  conv2->mutable_int8()->set_input_scale(0.03f);
  conv2->mutable_int8()->set_input_unsigned(true);
  spec.add_layer()->mutable_relu();  // a ReLU without pooling after it
  spec.add_layer()->mutable_flatten();
  proto::LinearSpec* fc = spec.add_layer()->mutable_linear();
  fc->set_out_features(10);
  fc->mutable_int8()->set_input_scale(0.05f);
  fc->mutable_int8()->set_input_unsigned(true);
  const Shape image = {1, 9, 10};
  auto model = Model::Create(spec, image, 10);
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> q(-127, 127);
  for (const TensorInfo& t : (*model)->tensors()) {
    for (uint64_t k = 0; k < t.size; ++k) {
      float& v = (*model)->params()[t.offset + k];
      v = t.name.ends_with(".weight") ? static_cast<float>(q(rng)) : t.name.ends_with("weight_scale") ? 0.004f : 0.1f;
    }
  }
  const int64_t batch = 3;
  const std::vector<float> x = RandomVector(rng, batch * NumElements(image));
  const float* fused = (*model)->Infer(x.data(), batch);
  ASSERT_NE(fused, nullptr);
  EXPECT_EQ((*model)->LayerOutput(0), nullptr);  // fused with the ReLU and pooling after it

  // The same layers one by one.
  std::vector<float> current = x;
  Shape shape = image;
  uint64_t offset = 0;
  for (const proto::LayerSpec& l : spec.layer()) {
    auto layer = CreateLayer(l, shape);
    ASSERT_TRUE(layer.ok()) << layer.status().message();
    (*layer)->Bind((*model)->params() + offset, nullptr);
    for (const ParamShape& p : (*layer)->param_shapes()) offset += NumElements(p.shape);
    std::vector<float> y(batch * (*layer)->out_features());
    (*layer)->Forward(current.data(), batch, y.data(), Pass{false, 0});
    current = std::move(y);
    shape = (*layer)->out_shape();
  }
  ExpectClose(std::vector<float>(fused, fused + batch * 10), current, 1e-5f);
  EXPECT_FALSE(Model::Create(spec, image, 10, Device::kCuda).ok());
}

// PrepareForInference fuses float convolutions too: the same logits as
// training's layer-by-layer forward, and TrainBatch refuses to run after it.
TEST(Int8LayersTest, PrepareForInferenceFusesFloatConvsAndComputesTheSame) {
  proto::ModelSpec spec;
  for (int c : {6, 5}) {
    proto::Conv2dSpec* conv = spec.add_layer()->mutable_conv2d();
    conv->set_out_channels(c);
    conv->set_kernel_size(3);
    conv->set_padding(1);
    conv->set_bias(c == 6);
    spec.add_layer()->mutable_relu();
    spec.add_layer()->mutable_max_pool2d()->set_kernel_size(2);
  }
  spec.add_layer()->mutable_linear()->set_out_features(10);
  const Shape image = {2, 12, 12};
  auto plain = Model::Create(spec, image, 10);
  auto fused = Model::Create(spec, image, 10);
  ASSERT_TRUE(plain.ok() && fused.ok());
  InitializeParameters((*plain)->tensors(), 5, (*plain)->params());
  std::copy((*plain)->params(), (*plain)->params() + (*plain)->num_keys(), (*fused)->params());
  (*fused)->PrepareForInference();
  std::mt19937 rng(4);
  const int64_t batch = 5;
  const std::vector<float> x = RandomVector(rng, batch * NumElements(image));
  const float* want = (*plain)->Infer(x.data(), batch);
  const std::vector<float> expected(want, want + batch * 10);
  const float* got = (*fused)->Infer(x.data(), batch);
  ASSERT_NE(got, nullptr);
  ExpectClose(std::vector<float>(got, got + batch * 10), expected, 1e-5f);
  EXPECT_EQ((*fused)->LayerOutput(0), nullptr);
  std::vector<float> labels(batch, 1);
  EXPECT_DEATH((*fused)->TrainBatch(x.data(), labels.data(), batch), "prepared for inference");
}

}  // namespace
}  // namespace tessera
