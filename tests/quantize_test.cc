// int8 quantization and fp16 export: QuantizeInt8's choices, the int8 model
// against the float one, the QDQ and fp16 ONNX forms through ONNX's checker
// and back through the importer unchanged, and malformed QDQ graphs refused.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "export/quantize.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

const Shape kImage = {1, 28, 28};

// Deterministic inputs shaped like normalized images: a smooth pattern per
// example plus noise, mostly in [-1, 2].
std::vector<float> Images(int64_t n) {
  std::vector<float> x(n * 784);
  uint64_t state = 99;
  for (int64_t e = 0; e < n; ++e) {
    for (int p = 0; p < 784; ++p) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      const float noise = static_cast<float>((state >> 40) & 0xffff) / 65536.0f - 0.5f;
      x[e * 784 + p] = std::sin(0.05f * p * (1 + e % 7)) + 0.5f * noise;
    }
  }
  return x;
}

std::vector<float> InitialParams(const proto::ModelSpec& spec) {
  auto model = Model::Create(spec, kImage, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 11, params.data());
  for (const TensorInfo& t : (*model)->tensors()) {
    if (t.name.ends_with("running_var")) std::fill_n(params.begin() + t.offset, t.size, 1.3f);
  }
  return params;
}

std::vector<float> Logits(const proto::ModelSpec& spec, const std::vector<float>& params, const std::vector<float>& x,
                          int64_t n) {
  auto model = Model::Create(spec, kImage, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  std::copy(params.begin(), params.end(), (*model)->params());
  const float* logits = (*model)->Infer(x.data(), n);
  return std::vector<float>(logits, logits + n * 10);
}

// Fraction of examples whose argmax agrees.
double SameClass(const std::vector<float>& a, const std::vector<float>& b) {
  const int64_t n = static_cast<int64_t>(a.size() / 10);
  int64_t same = 0;
  for (int64_t e = 0; e < n; ++e) {
    const auto a_row = a.begin() + e * 10, b_row = b.begin() + e * 10;
    same += std::max_element(a_row, a_row + 10) - a_row == std::max_element(b_row, b_row + 10) - b_row;
  }
  return static_cast<double>(same) / n;
}

TEST(QuantizeTest, EveryConvAndLinearBecomesInt8AndTracksTheFloatModel) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  const std::vector<float> params = InitialParams(spec);
  const std::vector<float> calibration = Images(256), test = Images(300);
  auto q = QuantizeInt8(spec, kImage, 10, params, calibration, 256);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_EQ(q->layers.size(), 4u);
  int int8_layers = 0;
  for (const proto::LayerSpec& l : q->spec.layer()) {
    int8_layers += (l.has_conv2d() && l.conv2d().has_int8()) || (l.has_linear() && l.linear().has_int8());
  }
  EXPECT_EQ(int8_layers, 4);
  // The first conv sees the signed input; the layers after a ReLU never a negative value.
  EXPECT_EQ(q->layers[0].layer, "layer0.conv2d");
  EXPECT_FALSE(q->layers[0].input_unsigned);
  EXPECT_TRUE(q->layers[1].input_unsigned);
  EXPECT_TRUE(q->layers[3].input_unsigned);
  for (const Int8LayerReport& r : q->layers) {
    EXPECT_GT(r.input_scale, 0) << r.layer;
    EXPECT_LE(r.input_scale * (r.input_unsigned ? 255 : 127), r.input_max * 1.0001f) << r.layer;
    EXPECT_LT(r.clipped_fraction, 0.001) << r.layer;
  }
  // Weights are integers in [-127, 127], every channel reaching +-127 (its own scale).
  auto int8_model = Model::Create(q->spec, kImage, 10);
  ASSERT_TRUE(int8_model.ok()) << int8_model.status().ToString();
  for (const TensorInfo& t : (*int8_model)->tensors()) {
    if (!t.name.ends_with(".weight") || t.name.find("batch_norm") != std::string::npos) continue;
    const int64_t per_channel = static_cast<int64_t>(t.size) / t.shape[0];
    for (int64_t o = 0; o < t.shape[0]; ++o) {
      float top = 0;
      for (int64_t k = 0; k < per_channel; ++k) {
        const float w = q->params[t.offset + o * per_channel + k];
        ASSERT_EQ(w, std::nearbyint(w)) << t.name;
        top = std::max(top, std::fabs(w));
      }
      EXPECT_EQ(top, 127.0f) << t.name << " channel " << o;
    }
  }
  // The int8 model computes what the float one does, to int8's precision.
  const std::vector<float> want = Logits(spec, params, test, 300);
  const std::vector<float> got = Logits(q->spec, q->params, test, 300);
  float range = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    range = std::max(range, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  EXPECT_LT(worst, 0.05f * range) << "largest logit " << range;
  EXPECT_GE(SameClass(got, want), 0.95);
}

TEST(QuantizeTest, BadInputsAreRefused) {
  const proto::ModelSpec spec = ParseModel(kMlpModel);
  const std::vector<float> params = InitialParams(spec);
  const std::vector<float> x = Images(4);
  EXPECT_THAT(QuantizeInt8(spec, kImage, 10, params, x, 0).status().message(), HasSubstr("at least one example"));
  std::vector<float> short_params(params.begin(), params.end() - 1);
  EXPECT_THAT(QuantizeInt8(spec, kImage, 10, short_params, x, 4).status().message(), HasSubstr("parameters"));
  auto q = QuantizeInt8(spec, kImage, 10, params, x, 4);
  ASSERT_TRUE(q.ok());
  EXPECT_THAT(QuantizeInt8(q->spec, kImage, 10, q->params, x, 4).status().message(), HasSubstr("int8 already"));
}

onnx::ModelProto Export(const proto::ModelSpec& spec, const std::vector<float>& params, bool fp16 = false) {
  OnnxExportOptions options;
  options.fp16_weights = fp16;
  auto model = BuildOnnxModel(spec, kImage, 10, params.data(), params.size(), options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : onnx::ModelProto();
}

size_t Bytes(const onnx::ModelProto& model) {
  auto bytes = SerializeOnnxModel(model);
  return bytes.ok() ? bytes->size() : 0;
}

TEST(QuantizeTest, Int8ModelsExportAsQdqAndImportUnchanged) {
  for (const char* text : {kCnnModel, kMlpModel}) {
    SCOPED_TRACE(text);
    const proto::ModelSpec spec = ParseModel(text);
    const std::vector<float> params = InitialParams(spec);
    auto q = QuantizeInt8(spec, kImage, 10, params, Images(64), 64);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    const onnx::ModelProto model = Export(q->spec, q->params);
    ASSERT_OK(CheckOnnxModel(model));
    int quantize = 0, dequantize = 0;
    for (const onnx::NodeProto& node : model.graph().node()) {
      quantize += node.op_type() == "QuantizeLinear";
      dequantize += node.op_type() == "DequantizeLinear";
    }
    const int layers = static_cast<int>(q->layers.size());
    EXPECT_EQ(quantize, layers);
    EXPECT_EQ(dequantize, 2 * layers);  // each input and each weight
    auto imported = ImportOnnxModel(model);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    EXPECT_EQ(imported->precision, "int8");
    EXPECT_EQ(imported->params, q->params);
    // The spec comes back with the int8 settings (dropout, not exported, is
    // re-inserted where layer numbers skip).
    ASSERT_EQ(imported->spec.layer_size(), q->spec.layer_size());
    for (int i = 0; i < q->spec.layer_size(); ++i) {
      EXPECT_EQ(imported->spec.layer(i).kind_case(), q->spec.layer(i).kind_case());
      if (!q->spec.layer(i).has_conv2d() && !q->spec.layer(i).has_linear()) continue;
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equivalent(imported->spec.layer(i), q->spec.layer(i)))
          << imported->spec.layer(i).DebugString() << "\nvs\n" << q->spec.layer(i).DebugString();
    }
  }
}

TEST(QuantizeTest, Int8FileIsUnderAThirdOfFp32AndFp16IsHalf) {
  // Large enough that the weights, not the graph, make the file.
  const proto::ModelSpec spec = ParseModel(R"(
    layer { conv2d { out_channels: 16 kernel_size: 5 padding: 2 } }
    layer { relu {} }
    layer { max_pool2d { kernel_size: 2 } }
    layer { flatten {} }
    layer { linear { out_features: 64 } }
    layer { relu {} }
    layer { linear { out_features: 10 } })");
  const std::vector<float> params = InitialParams(spec);
  auto q = QuantizeInt8(spec, kImage, 10, params, Images(32), 32);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  const size_t fp32 = Bytes(Export(spec, params));
  const size_t int8 = Bytes(Export(q->spec, q->params));
  const onnx::ModelProto half = Export(spec, params, /*fp16=*/true);
  ASSERT_OK(CheckOnnxModel(half));
  const size_t fp16 = Bytes(half);
  EXPECT_LT(int8, 0.3 * fp32) << int8 << " vs " << fp32;
  EXPECT_LT(fp16, 0.52 * fp32) << fp16 << " vs " << fp32;

  auto imported = ImportOnnxModel(half);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(imported->precision, "fp16");
  ASSERT_EQ(imported->params.size(), params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    ASSERT_EQ(imported->params[k], static_cast<float>(static_cast<_Float16>(params[k]))) << k;
  }
}

// Each edit breaks the QDQ form Tessera reads; the importer names the problem.
TEST(QuantizeTest, MalformedQdqGraphsAreRefused) {
  const proto::ModelSpec spec = ParseModel(kMlpModel);
  auto q = QuantizeInt8(spec, kImage, 10, InitialParams(spec), Images(16), 16);
  ASSERT_TRUE(q.ok());
  const onnx::ModelProto good = Export(q->spec, q->params);
  auto find_init = [](onnx::ModelProto* m, const std::string& name) {
    for (onnx::TensorProto& t : *m->mutable_graph()->mutable_initializer()) {
      if (t.name() == name) return &t;
    }
    ADD_FAILURE() << "no initializer " << name;
    return m->mutable_graph()->mutable_initializer(0);
  };
  struct Case {
    std::string what;
    std::function<void(onnx::ModelProto*)> edit;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"input zero point 3",
       [&](onnx::ModelProto* m) { find_init(m, "layer0.linear.input_zero_point")->set_raw_data(std::string(1, '\3')); },
       "zero point must be 0"},
      {"weight zero point 1",
       [&](onnx::ModelProto* m) {
         onnx::TensorProto* t = find_init(m, "layer3.linear.weight_zero_point");
         std::string raw = t->raw_data();
         raw[0] = 1;
         t->set_raw_data(raw);
       },
       "weight zero points must be 0"},
      {"negative weight scale",
       [&](onnx::ModelProto* m) {
         onnx::TensorProto* t = find_init(m, "layer0.linear.weight_scale");
         std::string raw = t->raw_data();
         const float minus = -1.0f;
         std::memcpy(raw.data(), &minus, 4);
         t->set_raw_data(raw);
       },
       "finite and > 0"},
      {"weight scales along axis 1",
       [&](onnx::ModelProto* m) {
         for (onnx::NodeProto& n : *m->mutable_graph()->mutable_node()) {
           if (n.name() == "layer0.linear.weight_dequantized") n.mutable_attribute(0)->set_i(1);
         }
       },
       ""},  // the checker or the importer: either way refused
      {"a weight of -128",
       [&](onnx::ModelProto* m) {
         onnx::TensorProto* t = find_init(m, "layer3.linear.weight");
         std::string raw = t->raw_data();
         raw[0] = static_cast<char>(-128);
         t->set_raw_data(raw);
       },
       "must be in [-127, 127]"},
      {"a scale that is a Cast of a float16 initializer (not an initializer)",
       [&](onnx::ModelProto* m) {
         // QuantizeLinear's scale read through a Cast: refused, never dereferenced as an initializer.
         onnx::TensorProto* scale = find_init(m, "layer0.linear.input_scale");
         scale->set_name("layer0.linear.input_scale_fp16");
         scale->set_data_type(onnx::TensorProto::FLOAT16);
         scale->set_raw_data(std::string("\x00\x3c", 2));  // 1.0
         onnx::NodeProto* cast = m->mutable_graph()->add_node();
         cast->set_op_type("Cast");
         cast->set_name("layer0.linear.input_scale");
         cast->add_input("layer0.linear.input_scale_fp16");
         cast->add_output("layer0.linear.input_scale");
         onnx::AttributeProto* to = cast->add_attribute();
         to->set_name("to");
         to->set_type(onnx::AttributeProto::INT);
         to->set_i(onnx::TensorProto::FLOAT);
         // Before its readers: the graph must stay topologically sorted.
         auto* nodes = m->mutable_graph()->mutable_node();
         for (int i = nodes->size() - 1; i > 0; --i) nodes->SwapElements(i, i - 1);
       },
       "must be initializers"},
      {"a dequantized int8 tensor as a bias",
       [&](onnx::ModelProto* m) {
         // layer0's bias [32] becomes DequantizeLinear(int8 [32]): valid ONNX, but
         // Tessera would read the integers as the float bias.
         auto add = [&](const std::string& name, onnx::TensorProto::DataType type, const std::string& raw) {
           onnx::TensorProto* t = m->mutable_graph()->add_initializer();
           t->set_name(name);
           t->set_data_type(type);
           t->add_dims(32);
           t->set_raw_data(raw);
         };
         const float one = 1.0f;
         std::string ones;
         for (int i = 0; i < 32; ++i) ones.append(reinterpret_cast<const char*>(&one), 4);
         add("q_bias", onnx::TensorProto::INT8, std::string(32, '\1'));
         add("q_bias_scale", onnx::TensorProto::FLOAT, ones);
         add("q_bias_zero", onnx::TensorProto::INT8, std::string(32, '\0'));
         onnx::NodeProto* dq = m->mutable_graph()->add_node();
         dq->set_op_type("DequantizeLinear");
         dq->set_name("q_bias_dq");
         dq->add_input("q_bias");
         dq->add_input("q_bias_scale");
         dq->add_input("q_bias_zero");
         dq->add_output("q_bias_dq");
         onnx::AttributeProto* axis = dq->add_attribute();
         axis->set_name("axis");
         axis->set_type(onnx::AttributeProto::INT);
         axis->set_i(0);
         auto* nodes = m->mutable_graph()->mutable_node();
         for (int i = nodes->size() - 1; i > 0; --i) nodes->SwapElements(i, i - 1);
         for (onnx::NodeProto& n : *nodes) {
           if (n.name() == "layer0.linear") n.set_input(2, "q_bias_dq");
         }
         auto* inits = m->mutable_graph()->mutable_initializer();
         for (int i = inits->size() - 1; i >= 0; --i) {
           if (inits->Get(i).name() == "layer0.linear.bias") inits->DeleteSubrange(i, 1);
         }
       },
       "can only be a Conv's or Gemm's weight"},
      {"input quantization dropped",
       [&](onnx::ModelProto* m) {
         // Gemm reads the float input directly: an int8 weight without a quantized input.
         auto* nodes = m->mutable_graph()->mutable_node();
         for (int i = 0; i < nodes->size(); ++i) {
           if (nodes->Get(i).op_type() == "Flatten") nodes->Mutable(i)->set_input(0, "input");
         }
         for (int i = nodes->size() - 1; i >= 0; --i) {
           const std::string& name = nodes->Get(i).name();
           if (name == "layer0.linear.input_quantized" || name == "layer0.linear.input_dequantized") {
             nodes->DeleteSubrange(i, 1);
           }
         }
         auto* inits = m->mutable_graph()->mutable_initializer();
         for (int i = inits->size() - 1; i >= 0; --i) {
           if (inits->Get(i).name().starts_with("layer0.linear.input_")) inits->DeleteSubrange(i, 1);
         }
       },
       "needs its input quantized"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    onnx::ModelProto bad = good;
    c.edit(&bad);
    auto imported = ImportOnnxModel(bad);
    ASSERT_FALSE(imported.ok());
    if (!c.error.empty()) {
      EXPECT_THAT(imported.status().message(), HasSubstr(c.error));
    }
  }
}

}  // namespace
}  // namespace tessera
