// A sparse_linear model (libsvm data) as ONNX: the exported graph passes
// ONNX's checker, imports back as the same layers and parameters, and the
// runtime built from it computes the training layers' logits bit for bit;
// onnxruntime (onnxruntime-node, when installed) computes them within the
// rounding bound of the sum; graphs that differ from the exported pattern
// in any node are refused naming that node.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "export/runtime_model.h"
#include "models/model.h"
#include "models/sparse_linear.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

constexpr int64_t kPairs = 300;     // K: pairs per example
constexpr int64_t kFeatures = 1000;  // the weight's rows
constexpr int kOutputs = 4;

// A batch of examples: example b has (b * 37) % (kPairs + 1) features, in
// increasing order, then padding (-1, 0); example 3's last padding pair has
// value 5 (serve's own tensor may send that: the value of padding is ignored).
std::vector<float> Pairs(int64_t batch) {
  std::vector<float> x(batch * 2 * kPairs);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = (b * 37) % (kPairs + 1);
    for (int64_t k = 0; k < kPairs; ++k) {
      float* pair = x.data() + (b * kPairs + k) * 2;
      pair[0] = k < n ? static_cast<float>((k * 3 + b) % kFeatures) : -1.0f;
      pair[1] = k < n ? static_cast<float>(((k * 7919 + b * 104729) % 2001) - 1000) / 97.0f : 0.0f;
    }
    // indexes must increase: k * 3 + b grows with k while below kFeatures (k < 300, b < 100)
  }
  if (batch > 3) x[(3 * kPairs + kPairs - 1) * 2 + 1] = 5.0f;
  return x;
}

struct Fixture {
  proto::ModelSpec spec;
  std::vector<float> params;
};

Fixture MakeModel(const std::string& layers) {
  Fixture f;
  f.spec = ParseModel(layers);
  auto model = Model::Create(f.spec, {kPairs, 2}, kOutputs, Device::kCpu, {}, kFeatures);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return f;
  f.params.resize((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 11, f.params.data());
  return f;
}

onnx::ModelProto Export(const Fixture& f, bool fp16 = false) {
  OnnxExportOptions options;
  options.sparse_features = kFeatures;
  options.fp16_weights = fp16;
  auto built = BuildOnnxModel(f.spec, {kPairs, 2}, kOutputs, f.params.data(), f.params.size(), options);
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  return built.ok() ? *built : onnx::ModelProto();
}

// The logits of the training layers: Model::Create as a worker builds it.
std::vector<float> TrainingLogits(const Fixture& f, const std::vector<float>& x, int64_t batch) {
  auto model = Model::Create(f.spec, {kPairs, 2}, kOutputs, Device::kCpu, {}, kFeatures);
  EXPECT_TRUE(model.ok());
  std::copy(f.params.begin(), f.params.end(), (*model)->params());
  const float* logits = (*model)->Infer(x.data(), batch);
  return std::vector<float>(logits, logits + batch * kOutputs);
}

TEST(SparseLinearOnnxTest, ExportImportsBackAsTheSameLayersAndParameters) {
  const Fixture f = MakeModel("layer { sparse_linear { out_features: 6 } } layer { relu {} } "
                              "layer { linear { out_features: 4 } }");
  const onnx::ModelProto model = Export(f);
  ASSERT_TRUE(CheckOnnxModel(model).ok());
  const auto& dims = model.graph().input(0).type().tensor_type().shape().dim();
  ASSERT_EQ(dims.size(), 2);
  EXPECT_EQ(dims[1].dim_value(), 2 * kPairs);  // the pairs flat, as a batch holds them
  auto imported = ImportOnnxModel(model);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(imported->spec.layer_size(), 3);
  EXPECT_EQ(imported->spec.layer(0).sparse_linear().out_features(), 6);
  EXPECT_EQ(imported->sparse_features, kFeatures);
  EXPECT_EQ(imported->input_shape, Shape{2 * kPairs});
  EXPECT_EQ(imported->params, f.params);
  EXPECT_EQ(imported->precision, "fp32");

  auto fp16 = ImportOnnxModel(Export(f, /*fp16=*/true));
  ASSERT_TRUE(fp16.ok()) << fp16.status().ToString();
  EXPECT_EQ(fp16->precision, "fp16");
  ASSERT_EQ(fp16->params.size(), f.params.size());
  for (size_t i = 0; i < f.params.size(); ++i) {
    ASSERT_EQ(fp16->params[i], static_cast<float>(static_cast<_Float16>(f.params[i]))) << i;
  }
}

TEST(SparseLinearOnnxTest, TheRuntimeComputesTheTrainingLogitsBitwise) {
  const Fixture f = MakeModel("layer { sparse_linear { out_features: 6 } } layer { relu {} } "
                              "layer { linear { out_features: 4 } }");
  auto imported = ImportOnnxModel(Export(f));
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(RuntimeDevice(*imported, Device::kCuda), Device::kCpu);  // sparse_linear has no CUDA twin
  auto runtime = BuildRuntimeModel(*imported, Device::kCpu);
  ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
  const int64_t batch = 9;
  const std::vector<float> x = Pairs(batch);
  ASSERT_TRUE((*runtime)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())).ok());
  const float* logits = (*runtime)->Infer(x.data(), batch);
  EXPECT_EQ(std::vector<float>(logits, logits + batch * kOutputs), TrainingLogits(f, x, batch));
}

// The onnxruntime-node package (`npm install onnxruntime-node`), found in
// $TESSERA_ONNXRUNTIME_NODE or /tmp/node_modules; "" when there is none.
std::string OnnxRuntimeNode() {
  const char* env = std::getenv("TESSERA_ONNXRUNTIME_NODE");
  const std::string path = env != nullptr ? env : "/tmp/node_modules/onnxruntime-node";
  return FileExists(path + "/package.json") && FileExists("/usr/bin/node") ? path : "";
}

// Runs MODEL on X ([batch, width] float32) with onnxruntime and writes its logits to OUT.
constexpr char kOrtScript[] = R"JS(
const [ortPath, model, xPath, batch, width, outPath] = process.argv.slice(2);
const ort = require(ortPath);
const fs = require('fs');
(async () => {
  const session = await ort.InferenceSession.create(model);
  const bytes = fs.readFileSync(xPath);
  const x = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const out = await session.run({input: new ort.Tensor('float32', x, [Number(batch), Number(width)])});
  const logits = out.logits.data;
  fs.writeFileSync(outPath, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
})().catch((e) => { console.error(String(e)); process.exit(1); });
)JS";

// Tessera adds each pair's value * weight to the bias in pair order; ONNX's
// ReduceSum adds the K terms in an order of its own, then the bias. Each
// order's float32 result is within (K + 1) * u * S of the exact sum (u =
// 2^-24, S = |bias| + sum |value * weight|; the standard bound for a sum of
// K + 1 terms plus the products' roundings), so the two differ by at most
// twice that: the tolerance, per output.
TEST(SparseLinearOnnxTest, OnnxRuntimeComputesTheLogitsWithinTheSumsRoundingBound) {
  const std::string ort = OnnxRuntimeNode();
  if (ort.empty()) GTEST_SKIP() << "onnxruntime-node not installed (npm install onnxruntime-node)";
  const Fixture f = MakeModel("layer { sparse_linear { out_features: 4 } }");
  const std::string dir = MakeTempDir("sparse-linear-ort");
  ASSERT_TRUE(SerializeOnnxModel(Export(f)).ok());
  WriteText(dir + "/model.onnx", *SerializeOnnxModel(Export(f)));
  const int64_t batch = 64;
  const std::vector<float> x = Pairs(batch);
  WriteText(dir + "/x.bin", std::string(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
  WriteText(dir + "/run.cjs", kOrtScript);
  const std::string command = "/usr/bin/node " + dir + "/run.cjs " + ort + " " + dir + "/model.onnx " + dir +
                              "/x.bin " + std::to_string(batch) + " " + std::to_string(2 * kPairs) + " " + dir +
                              "/out.bin 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
  const std::string out = FileText(dir + "/out.bin");
  ASSERT_EQ(out.size(), batch * kOutputs * sizeof(float));
  std::vector<float> onnx(batch * kOutputs);
  std::memcpy(onnx.data(), out.data(), out.size());
  const std::vector<float> tessera = TrainingLogits(f, x, batch);
  const float* weight = f.params.data();
  const float* bias = weight + kFeatures * kOutputs;
  int differing = 0;
  double worst_ratio = 0;
  for (int64_t b = 0; b < batch; ++b) {
    for (int o = 0; o < kOutputs; ++o) {
      double magnitude = std::fabs(bias[o]);
      for (int64_t k = 0; k < kPairs; ++k) {
        const float* pair = x.data() + (b * kPairs + k) * 2;
        if (pair[0] >= 0) magnitude += std::fabs(double(pair[1]) * weight[int64_t(pair[0]) * kOutputs + o]);
      }
      const double bound = 2.0 * (kPairs + 2) * std::ldexp(1.0, -24) * magnitude;
      const double diff = std::fabs(double(onnx[b * kOutputs + o]) - tessera[b * kOutputs + o]);
      EXPECT_LE(diff, bound) << "example " << b << " output " << o;
      differing += diff != 0;
      worst_ratio = std::max(worst_ratio, bound > 0 ? diff / bound : 0);
    }
  }
  std::printf("onnxruntime vs Tessera: %d of %lld logits differ; the worst difference is %.3g of its bound\n",
              differing, static_cast<long long>(batch * kOutputs), worst_ratio);
}

// --- graphs that are not exactly the exported pattern ---

onnx::NodeProto* FindNode(onnx::ModelProto* model, const std::string& name) {
  for (onnx::NodeProto& n : *model->mutable_graph()->mutable_node()) {
    if (n.name() == name) return &n;
  }
  ADD_FAILURE() << "no node " << name;
  return model->mutable_graph()->add_node();
}

onnx::TensorProto* FindInitializer(onnx::ModelProto* model, const std::string& name) {
  for (onnx::TensorProto& t : *model->mutable_graph()->mutable_initializer()) {
    if (t.name() == name) return &t;
  }
  ADD_FAILURE() << "no initializer " << name;
  return model->mutable_graph()->add_initializer();
}

void SetInt64s(onnx::TensorProto* t, const std::vector<int64_t>& values) {
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
}

TEST(SparseLinearOnnxTest, AGraphOtherThanTheExportedPatternIsRefusedNamingTheNode) {
  const Fixture f = MakeModel("layer { sparse_linear { out_features: 4 } }");
  const onnx::ModelProto good = Export(f);
  ASSERT_TRUE(ImportOnnxModel(good).ok());
  const std::string p = "layer0.sparse_linear";
  struct Case {
    std::string what, expected;
    std::function<void(onnx::ModelProto*)> change;
  };
  const std::vector<Case> cases = {
      {"another reshape", "'" + p + ".pairs'",
       [&](onnx::ModelProto* m) { SetInt64s(FindInitializer(m, p + ".pairs_shape"), {-1, kPairs, 2}); }},
      {"axis -1 for 2", "'" + p + ".index'",
       [&](onnx::ModelProto* m) { FindNode(m, p + ".index")->mutable_attribute(0)->set_i(-1); }},
      {"the values read as indexes", "'" + p + ".index'",
       [&](onnx::ModelProto* m) { SetInt64s(FindInitializer(m, p + ".index_slot"), {1}); }},
      {"Greater for Less", "'" + p + ".is_padding'",
       [&](onnx::ModelProto* m) { FindNode(m, p + ".is_padding")->set_op_type("Greater"); }},
      {"padding worth 1", "'" + p + ".pair_values'",
       [&](onnx::ModelProto* m) {
         const float one = 1.0f;
         FindInitializer(m, p + ".padding_value")->set_raw_data(std::string(reinterpret_cast<const char*>(&one), 4));
       }},
      {"the indexes as values", "'" + p + ".pair_values'",
       [&](onnx::ModelProto* m) { FindNode(m, p + ".pair_values")->set_input(2, p + ".index"); }},
      {"Mul's inputs swapped", "'" + p + ".terms'",
       [&](onnx::ModelProto* m) {
         onnx::NodeProto* mul = FindNode(m, p + ".terms");
         const std::string first = mul->input(0);
         mul->set_input(0, mul->input(1));
         mul->set_input(1, first);
       }},
  };
  for (const Case& c : cases) {
    onnx::ModelProto bad = good;
    c.change(&bad);
    auto imported = ImportOnnxModel(bad);
    ASSERT_FALSE(imported.ok()) << c.what;
    EXPECT_EQ(imported.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(imported.status().message().find(c.expected), std::string::npos)
        << c.what << ": " << imported.status().message();
  }
}

// Every truncation of the file is refused, and so are constants with the
// wrong type or byte count; nothing crashes.
TEST(SparseLinearOnnxTest, TruncatedFilesAndBadConstantsAreRefused) {
  const Fixture f = MakeModel("layer { sparse_linear { out_features: 4 } }");
  const onnx::ModelProto good = Export(f);
  const std::string bytes = *SerializeOnnxModel(good);
  for (size_t cut = 1; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 211)) {
    EXPECT_FALSE(ImportOnnxBytes(bytes.substr(0, cut)).ok()) << "truncated at " << cut;
  }
  const std::string p = "layer0.sparse_linear";
  for (const std::string& name : {p + ".pairs_shape", p + ".value_axes", p + ".first_row", p + ".padding_value"}) {
    onnx::ModelProto short_bytes = good;
    FindInitializer(&short_bytes, name)->mutable_raw_data()->resize(3);
    auto r = ImportOnnxModel(short_bytes);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find("initializer '" + name + "' holds 3 bytes"), std::string::npos)
        << r.status().message();
    onnx::ModelProto as_int64_data = good;  // the same values, another encoding: still read
    onnx::TensorProto* t = FindInitializer(&as_int64_data, name);
    if (t->data_type() != onnx::TensorProto::INT64) continue;
    std::vector<int64_t> values(t->raw_data().size() / 8);
    std::memcpy(values.data(), t->raw_data().data(), t->raw_data().size());
    t->clear_raw_data();
    for (int64_t v : values) t->add_int64_data(v);
    EXPECT_TRUE(ImportOnnxModel(as_int64_data).ok()) << name;
  }
}

}  // namespace
}  // namespace tessera
