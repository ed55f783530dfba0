// `tessera export` and the ONNX builder: exported graphs pass ONNX's checker
// (C++, and Debian's python3-onnx when installed) and compute the same logits
// as Tessera's own layers, both by a small reference evaluator of the ONNX
// graph written here and by a NumPy one in Python; versions count up; bad
// input ends in one line, exit 2, and nothing left behind.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "export/pruning.h"
#include "models/layer.h"
#include "models/model.h"
#include "tests/test_util.h"
#include "tools/checkpoint_params.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"
#include "worker/batch_reader.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// Tessera's own forward in evaluation mode, layer by layer (Model gives no
// logits, only loss and accuracy).
std::vector<float> TesseraLogits(const proto::ModelSpec& spec, const Shape& input_shape, const std::vector<float>& params,
                                 const std::vector<float>& x, int64_t batch) {
  std::vector<float> grads(params.size()), current = x;
  Shape shape = input_shape;
  uint64_t offset = 0;
  for (const proto::LayerSpec& layer_spec : spec.layer()) {
    auto layer = CreateLayer(layer_spec, shape);
    EXPECT_TRUE(layer.ok());
    if (!layer.ok()) return {};
    (*layer)->Bind(params.data() + offset, grads.data() + offset);
    for (const ParamShape& p : (*layer)->param_shapes()) {
      uint64_t n = 1;
      for (int64_t d : p.shape) n *= d;
      offset += n;
    }
    std::vector<float> y(batch * (*layer)->out_features());
    (*layer)->Forward(current.data(), batch, y.data(), Pass{false, 0});
    current = std::move(y);
    shape = (*layer)->out_shape();
  }
  EXPECT_EQ(offset, params.size());
  return current;
}

// --- a reference evaluator of the ONNX ops Tessera exports, plain loops ---

struct Tensor {
  std::vector<int64_t> dims;
  std::vector<float> data;
};

int64_t Attr(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return a.i();
  }
  return fallback;
}

float FloatAttr(const onnx::NodeProto& node, const std::string& name, float fallback) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return a.f();
  }
  return fallback;
}

std::vector<int64_t> Ints(const onnx::NodeProto& node, const std::string& name, std::vector<int64_t> fallback) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  }
  return fallback;
}

// Convolution (bias optional) or max pooling of NCHW, square or not.
Tensor Window(const onnx::NodeProto& node, const Tensor& x, const Tensor* w, const Tensor* b) {
  const auto k = Ints(node, "kernel_shape", {});
  const auto s = Ints(node, "strides", {1, 1});
  const auto p = Ints(node, "pads", {0, 0, 0, 0});
  const int64_t n = x.dims[0], c = x.dims[1], h = x.dims[2], wd = x.dims[3];
  const int64_t oc = w ? w->dims[0] : c;
  const int64_t oh = (h + p[0] + p[2] - k[0]) / s[0] + 1, ow = (wd + p[1] + p[3] - k[1]) / s[1] + 1;
  Tensor y{{n, oc, oh, ow}, std::vector<float>(n * oc * oh * ow)};
  for (int64_t e = 0; e < n; ++e)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = w ? (b ? b->data[o] : 0.0) : -INFINITY;
          for (int64_t ci = w ? 0 : o; ci < (w ? c : o + 1); ++ci)
            for (int64_t u = 0; u < k[0]; ++u)
              for (int64_t v = 0; v < k[1]; ++v) {
                const int64_t r = i * s[0] + u - p[0], q = j * s[1] + v - p[1];
                if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                const float xv = x.data[((e * c + ci) * h + r) * wd + q];
                if (w) {
                  acc += double(xv) * w->data[((o * c + ci) * k[0] + u) * k[1] + v];
                } else {
                  acc = std::max<double>(acc, xv);
                }
              }
          y.data[((e * oc + o) * oh + i) * ow + j] = static_cast<float>(acc);
        }
  return y;
}

// Runs the graph on `input` and returns every value, or fails the test.
std::map<std::string, Tensor> RunOnnx(const onnx::ModelProto& model, const Tensor& input) {
  std::map<std::string, Tensor> v;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    Tensor tensor{{t.dims().begin(), t.dims().end()}, {}};
    tensor.data.resize(t.raw_data().size() / sizeof(float));
    std::memcpy(tensor.data.data(), t.raw_data().data(), t.raw_data().size());
    v[t.name()] = tensor;
  }
  v[model.graph().input(0).name()] = input;
  for (const onnx::NodeProto& node : model.graph().node()) {
    std::vector<const Tensor*> in;
    for (const std::string& name : node.input()) {
      EXPECT_TRUE(v.count(name)) << node.name() << " reads unknown " << name;
      if (!v.count(name)) return {};
      in.push_back(&v[name]);
    }
    const Tensor& x = *in[0];
    Tensor y = x;
    const std::string& op = node.op_type();
    if (op == "Conv") {
      EXPECT_EQ(Attr(node, "group", 1), 1);
      y = Window(node, x, in[1], in.size() > 2 ? in[2] : nullptr);
    } else if (op == "MaxPool") {
      EXPECT_EQ(Attr(node, "ceil_mode", 0), 0);
      y = Window(node, x, nullptr, nullptr);
    } else if (op == "Relu") {
      for (float& f : y.data) f = std::max(f, 0.0f);
    } else if (op == "Flatten") {
      EXPECT_EQ(Attr(node, "axis", 1), 1);
      y.dims = {x.dims[0], static_cast<int64_t>(x.data.size()) / x.dims[0]};
    } else if (op == "Gemm") {
      EXPECT_EQ(Attr(node, "transA", 0), 0);
      EXPECT_EQ(Attr(node, "transB", 0), 1);
      EXPECT_EQ(FloatAttr(node, "alpha", 1), 1.0f);
      EXPECT_EQ(FloatAttr(node, "beta", 1), 1.0f);
      const Tensor& w = *in[1];
      const int64_t n = x.dims[0], f = x.dims[1], o = w.dims[0];
      EXPECT_EQ(w.dims[1], f);
      y = Tensor{{n, o}, std::vector<float>(n * o)};
      for (int64_t e = 0; e < n; ++e)
        for (int64_t j = 0; j < o; ++j) {
          double acc = in.size() > 2 ? in[2]->data[j] : 0.0;
          for (int64_t i = 0; i < f; ++i) acc += double(x.data[e * f + i]) * w.data[j * f + i];
          y.data[e * o + j] = static_cast<float>(acc);
        }
    } else if (op == "BatchNormalization") {
      const float eps = FloatAttr(node, "epsilon", 1e-5f);
      const int64_t c = x.dims[1];
      const int64_t inner = static_cast<int64_t>(x.data.size()) / (x.dims[0] * c);
      for (size_t i = 0; i < y.data.size(); ++i) {
        const int64_t ch = (static_cast<int64_t>(i) / inner) % c;
        y.data[i] = static_cast<float>((x.data[i] - in[3]->data[ch]) / std::sqrt(double(in[4]->data[ch]) + eps) *
                                           in[1]->data[ch] + in[2]->data[ch]);
      }
    } else if (op == "Softmax") {
      EXPECT_EQ(Attr(node, "axis", -1), 1);
      const int64_t n = x.dims[0], k = x.dims[1];
      for (int64_t e = 0; e < n; ++e) {
        const float* row = x.data.data() + e * k;
        const float top = *std::max_element(row, row + k);
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(double(row[j]) - top);
        for (int64_t j = 0; j < k; ++j) y.data[e * k + j] = static_cast<float>(std::exp(double(row[j]) - top) / sum);
      }
    } else if (op == "Round") {
      for (float& f : y.data) f = std::nearbyint(f);  // half to even, as ONNX's Round
    } else if (op == "Cast") {
      // Only an embedding's ids (the values are whole already; kept as floats here).
      EXPECT_EQ(Attr(node, "to", -1), onnx::TensorProto::INT64);
    } else if (op == "Gather") {
      EXPECT_EQ(Attr(node, "axis", 0), 0);
      const Tensor& ids = *in[1];
      const int64_t rows = x.dims[0], dim = x.dims[1];
      y.dims = ids.dims;
      y.dims.push_back(dim);
      y.data.assign(ids.data.size() * dim, 0.0f);
      for (size_t k = 0; k < ids.data.size(); ++k) {
        const int64_t id = static_cast<int64_t>(ids.data[k]);
        EXPECT_TRUE(id >= 0 && id < rows) << id;
        if (id < 0 || id >= rows) return {};
        std::copy(x.data.begin() + id * dim, x.data.begin() + (id + 1) * dim, y.data.begin() + k * dim);
      }
    } else if (op != "Identity") {
      ADD_FAILURE() << "the reference evaluator does not know " << op;
      return {};
    }
    v[node.output(0)] = std::move(y);
  }
  return v;
}

// Largest |a - b| / max(1, |b|).
double MaxRelativeDifference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
  }
  return worst;
}

// Random but plausible parameters: the model's initialization, then running
// variances in [0.5, 1.5] and means in [-0.5, 0.5], scales and shifts off 1 and 0.
std::vector<float> RandomParams(const proto::ModelSpec& spec, const Shape& input_shape) {
  auto model = Model::Create(spec, input_shape, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 7, params.data());
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>((state >> 40) & 0xffff) / 65536.0f;  // [0, 1)
  };
  for (const TensorInfo& t : (*model)->tensors()) {
    const bool bn = t.name.find("batch_norm") != std::string::npos;
    if (!bn) continue;
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
      params[k] = t.name.ends_with("running_var") ? 0.5f + next() : t.name.ends_with("weight") ? 0.5f + next()
                                                                                               : next() - 0.5f;
    }
  }
  return params;
}

std::vector<float> RandomImages(int64_t batch, int64_t features) {
  std::vector<float> x(batch * features);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  return x;
}

TEST(OnnxExportTest, GraphsPassTheCheckerAndComputeTesseraLogits) {
  const Shape image = {1, 28, 28};
  for (const char* text : {kCnnModel, kMlpModel}) {
    SCOPED_TRACE(text);
    const proto::ModelSpec spec = ParseModel(text);
    const std::vector<float> params = RandomParams(spec, image);
    auto model = BuildOnnxModel(spec, image, 10, params.data(), params.size(), OnnxExportOptions());
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    ASSERT_OK(CheckOnnxModel(*model));
    EXPECT_EQ(model->opset_import(0).version(), kOnnxOpset);
    EXPECT_EQ(model->graph().input(0).name(), "input");
    ASSERT_EQ(model->graph().output_size(), 2);
    EXPECT_EQ(model->graph().output(0).name(), "logits");
    EXPECT_EQ(model->graph().output(1).name(), "probabilities");
    EXPECT_EQ(model->graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "N");
    // Initializers are the model's tensors, by name and shape.
    auto built = Model::Create(spec, image, 10);
    ASSERT_TRUE(built.ok());
    ASSERT_EQ(model->graph().initializer_size(), static_cast<int>((*built)->tensors().size()));
    for (size_t t = 0; t < (*built)->tensors().size(); ++t) {
      const onnx::TensorProto& init = model->graph().initializer(static_cast<int>(t));
      EXPECT_EQ(init.name(), (*built)->tensors()[t].name);
      EXPECT_EQ(std::vector<int64_t>(init.dims().begin(), init.dims().end()), (*built)->tensors()[t].shape);
    }
    for (const onnx::NodeProto& node : model->graph().node()) EXPECT_NE(node.op_type(), "Dropout");

    constexpr int64_t kBatch = 5;
    const std::vector<float> x = RandomImages(kBatch, 784);
    const std::vector<float> expected = TesseraLogits(spec, image, params, x, kBatch);
    auto values = RunOnnx(*model, Tensor{{kBatch, 1, 28, 28}, x});
    ASSERT_TRUE(values.count("logits"));
    EXPECT_EQ(values["logits"].dims, (std::vector<int64_t>{kBatch, 10}));
    EXPECT_LT(MaxRelativeDifference(values["logits"].data, expected), 1e-4);
    // Probabilities: rows of the softmax sum to 1.
    for (int64_t e = 0; e < kBatch; ++e) {
      double sum = 0;
      for (int j = 0; j < 10; ++j) sum += values["probabilities"].data[e * 10 + j];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(OnnxExportTest, MlpOnImagesFlattensBeforeGemm) {
  const proto::ModelSpec spec = ParseModel(kMlpModel);
  const std::vector<float> params = RandomParams(spec, {1, 28, 28});
  OnnxExportOptions options;
  options.probabilities = false;
  auto model = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::vector<std::string> ops;
  for (const onnx::NodeProto& node : model->graph().node()) ops.push_back(node.op_type());
  EXPECT_EQ(ops, (std::vector<std::string>{"Flatten", "Gemm", "Relu", "Gemm"}));
  EXPECT_EQ(model->graph().output_size(), 1);
  EXPECT_EQ(model->graph().node(3).output(0), "logits");
  ASSERT_OK(CheckOnnxModel(*model));
}

TEST(OnnxExportTest, WrongParameterCountIsRefused) {
  const proto::ModelSpec spec = ParseModel(kMlpModel);
  std::vector<float> params = RandomParams(spec, {1, 28, 28});
  params.push_back(0);
  auto model = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), OnnxExportOptions());
  EXPECT_FALSE(model.ok());
  auto wrong_classes = BuildOnnxModel(spec, {1, 28, 28}, 7, params.data(), params.size() - 1, OnnxExportOptions());
  EXPECT_FALSE(wrong_classes.ok());
}

TEST(OnnxExportTest, SerializationIsDeterministic) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  const std::vector<float> params = RandomParams(spec, {1, 28, 28});
  OnnxExportOptions options;
  options.metadata = {{"a", "1"}, {"b", "2"}};
  auto a = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), options);
  auto b = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(SerializeOnnxModel(*a).value(), SerializeOnnxModel(*b).value());
}

// --- the command, on a checkpoint of a real (tiny) training run ---

struct Shell {
  int exit_code = -1;
  std::string output;
};

Shell RunShell(const std::string& command) {
  Shell r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool PythonOnnxAvailable() {
  static const bool available = RunShell("/usr/bin/python3 -c 'import onnx, numpy'").exit_code == 0;
  return available;
}

// Checks a model with python3-onnx (checker, full check; strict shape
// inference), validates manifest.json as JSON, and evaluates the graph with
// NumPy (and onnxruntime when installed) on x, writing the logits to out.
constexpr char kPythonCheck[] = R"PY(
import json, sys
import numpy as np
import onnx
from onnx import helper, numpy_helper
model_path, manifest_path, x_path, batch, out_path = sys.argv[1:6]
m = onnx.load(model_path)
onnx.checker.check_model(m, full_check=True)
onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
manifest = json.load(open(manifest_path))
meta = {p.key: p.value for p in m.metadata_props}
assert float(meta["tessera.input_mean"]) == manifest["normalization"]["mean"], (meta, manifest)
assert float(meta["tessera.input_std"]) == manifest["normalization"]["std"], (meta, manifest)
dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][1:]
x = np.fromfile(x_path, dtype=np.float32).reshape([int(batch)] + dims)
v = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
v[m.graph.input[0].name] = x
def attr(n, name, default=None):
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default
def windows(n, x, pad_value):
    k, s, p = attr(n, "kernel_shape"), attr(n, "strides", [1, 1]), attr(n, "pads", [0, 0, 0, 0])
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])), constant_values=pad_value)
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
for n in m.graph.node:
    i = [v[name] for name in n.input]
    op = n.op_type
    if op == "Conv":
        y = np.einsum("nchwij,ocij->nohw", windows(n, i[0], 0.0).astype(np.float64), i[1].astype(np.float64))
        if len(i) > 2:
            y = y + i[2][None, :, None, None]
    elif op == "MaxPool":
        y = windows(n, i[0], -np.inf).max(axis=(4, 5))
    elif op == "Relu":
        y = np.maximum(i[0], 0)
    elif op == "Flatten":
        y = i[0].reshape(i[0].shape[0], -1)
    elif op == "Gemm":
        assert attr(n, "transB") == 1
        y = i[0].astype(np.float64) @ i[1].T.astype(np.float64) + (i[2] if len(i) > 2 else 0)
    elif op == "BatchNormalization":
        shape = (1, -1) + (1,) * (i[0].ndim - 2)
        scale, bias, mean, var = (t.reshape(shape).astype(np.float64) for t in i[1:5])
        y = (i[0] - mean) / np.sqrt(var + attr(n, "epsilon", 1e-5)) * scale + bias
    elif op == "Softmax":
        e = np.exp(i[0] - i[0].max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
    elif op == "Identity":
        y = i[0]
    elif op == "Cast":
        to = attr(n, "to")
        assert to in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64), to
        y = i[0].astype(np.float32 if to == onnx.TensorProto.FLOAT else np.int64)
    elif op == "Round":
        y = np.round(i[0])  # half to even, as ONNX's Round
    elif op == "Gather":
        assert attr(n, "axis", 0) == 0
        assert i[1].dtype == np.int64 and ((i[1] >= 0) & (i[1] < i[0].shape[0])).all()
        y = np.take(i[0], i[1], axis=0)
    elif op == "QuantizeLinear":
        lo, hi = (0, 255) if i[2].dtype == np.uint8 else (-128, 127)
        y = np.clip(np.rint(i[0] / i[1]) + i[2].astype(np.float64), lo, hi).astype(i[2].dtype)
    elif op == "DequantizeLinear":
        shape = (-1,) + (1,) * (i[0].ndim - 1) if i[1].ndim == 1 else ()
        zero = i[2].astype(np.float32).reshape(shape) if len(i) > 2 else 0
        y = (i[0].astype(np.float32) - zero) * i[1].reshape(shape)
    else:
        sys.exit("unknown op " + op)
    v[n.output[0]] = y if op == "QuantizeLinear" or y.dtype == np.int64 else y.astype(np.float32)
v["logits"].astype(np.float32).tofile(out_path)
try:
    import onnxruntime
except ImportError:
    print("onnxruntime: not installed")
else:
    ort = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.allclose(ort, v["logits"], rtol=1e-4, atol=1e-4), np.abs(ort - v["logits"]).max()
    print("onnxruntime: same logits")
print("python3-onnx: ok")
)PY";

// An embedding first layer: Round, Cast to int64, Gather (axis 0), then the
// Linear after its [1, 1, F, dim] output flattens it. ONNX's checkers (C++
// and python3-onnx) pass the graph, and the reference evaluator and NumPy
// compute Tessera's logits; ties round half to even everywhere (2.5 -> 2,
// 3.5 -> 4), as Tessera's std::nearbyint does.
TEST(OnnxExportTest, EmbeddingIsRoundCastGatherAndComputesTesseraLogits) {
  const Shape input = {1, 1, 6};
  const proto::ModelSpec spec = ParseModel(R"(
    layer { embedding { num_embeddings: 16 embedding_dim: 4 } }
    layer { dropout {} }
    layer { linear { out_features: 12 } }
    layer { relu {} }
    layer { linear { out_features: 10 } }
  )");
  constexpr int64_t kBatch = 4;
  const std::vector<float> x = {0, 15, 2.5f, 3.5f, 0.49f, 14.6f, 7.5f, 8.5f, 1.5f, 0.5f, 12.4999f, 9,
                                -0.4f, 15.4f, 4, 5, 6, 11.5f, 10.5f, 13, 1, 2, 3, 3};
  for (bool fp16 : {false, true}) {
    SCOPED_TRACE(fp16 ? "fp16" : "fp32");
    std::vector<float> params = RandomParams(spec, input);
    OnnxExportOptions options;
    options.fp16_weights = fp16;
    options.metadata = {{"tessera.input_mean", "0"}, {"tessera.input_std", "0.003921569"}};
    auto model = BuildOnnxModel(spec, input, 10, params.data(), params.size(), options);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    ASSERT_OK(CheckOnnxModel(*model));
    if (fp16) {
      for (float& v : params) v = static_cast<float>(static_cast<_Float16>(v));  // what the file holds
    }
    std::vector<std::string> ops;
    for (const onnx::NodeProto& node : model->graph().node()) {
      if (node.op_type() != "Cast" || !node.input(0).ends_with("_fp16")) ops.push_back(node.op_type());
    }
    EXPECT_EQ(ops, (std::vector<std::string>{"Round", "Cast", "Gather", "Flatten", "Gemm", "Relu", "Gemm", "Softmax"}));
    const std::vector<float> expected = TesseraLogits(spec, input, params, x, kBatch);
    if (!fp16) {
      auto values = RunOnnx(*model, Tensor{{kBatch, 1, 1, 6}, x});
      ASSERT_TRUE(values.count("layer0.embedding"));
      const Tensor& rows = values["layer0.embedding"];
      EXPECT_EQ(rows.dims, (std::vector<int64_t>{kBatch, 1, 1, 6, 4}));
      // Row nearbyint(x) of the weight (the first tensor), exactly.
      std::vector<float> want;
      for (float v : x) {
        const int64_t id = static_cast<int64_t>(std::nearbyint(v));
        want.insert(want.end(), params.begin() + id * 4, params.begin() + (id + 1) * 4);
      }
      EXPECT_EQ(rows.data, want);
      EXPECT_LT(MaxRelativeDifference(values["logits"].data, expected), 1e-5);
    }
    if (!PythonOnnxAvailable()) {
      std::cout << "python3-onnx or numpy is not installed: the Python check is skipped\n";
      continue;
    }
    const std::string dir = MakeTempDir("export-embedding");
    std::ofstream(dir + "/model.onnx", std::ios::binary) << SerializeOnnxModel(*model).value();
    std::ofstream(dir + "/manifest.json") << R"({"normalization": {"mean": 0, "std": 0.003921569}})";
    std::ofstream(dir + "/check.py") << kPythonCheck;
    std::ofstream(dir + "/x.bin", std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    Shell py = RunShell("/usr/bin/python3 " + dir + "/check.py " + dir + "/model.onnx " + dir + "/manifest.json " + dir +
                        "/x.bin " + std::to_string(kBatch) + " " + dir + "/logits.bin");
    ASSERT_EQ(py.exit_code, 0) << py.output;
    EXPECT_NE(py.output.find("python3-onnx: ok"), std::string::npos) << py.output;
    const std::string bytes = ReadFileToString(dir + "/logits.bin").value();
    ASSERT_EQ(bytes.size(), expected.size() * sizeof(float));
    std::vector<float> numpy_logits(expected.size());
    std::memcpy(numpy_logits.data(), bytes.data(), bytes.size());
    EXPECT_LT(MaxRelativeDifference(numpy_logits, expected), 1e-5);
  }
}

class ExportCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("export"));
    run_ = new std::string(*dir_ + "/run");
    std::ofstream(*dir_ + "/spec.pbtxt") << "name: \"export-cnn\"\nmodel {" << kCnnModel
                                          << "}\ncluster { servers: 2 workers: 1 }\n"
                                             "optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }\n"
                                             "batch_size: 32\nepochs: 1\n";
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *run_, "--max-train-examples", "640",
                                  "--max-test-examples", "300", "--threads", "1", "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete run_;
  }

  static std::string Checkpoint() {
    auto name = ReadFileToString(*run_ + "/checkpoints/latest");
    return *run_ + "/checkpoints/" + (name.ok() ? name->substr(0, name->size() - 1) : "");
  }

  static std::vector<std::string> Listing(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(dir, ec)) names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  // Exit 2, one line containing `needle`, and `repo` unchanged.
  static void ExpectRefused(const std::vector<std::string>& args, const std::string& needle, const std::string& repo) {
    const std::vector<std::string> before = Listing(repo);
    CommandResult r = RunTessera(args, 120);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(Lines(r.output), 1) << r.output;
    EXPECT_NE(r.output.find("tessera export: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
    EXPECT_EQ(Listing(repo), before) << "a refused export must leave nothing behind";
  }

  static std::string* dir_;
  static std::string* run_;
};

std::string* ExportCommandTest::dir_ = nullptr;
std::string* ExportCommandTest::run_ = nullptr;

TEST_F(ExportCommandTest, WritesVersionedModelsThatComputeTesseraLogits) {
  const std::string repo = *dir_ + "/repo-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  const std::string model_dir = repo + "/fmnist";
  CommandResult r = RunTessera({"export", *run_, "--out", model_dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("exported " + model_dir + "/1: model.onnx"), std::string::npos) << r.output;
  const std::string v1 = model_dir + "/1";
  ASSERT_TRUE(FileExists(v1 + "/model.onnx"));
  ASSERT_TRUE(FileExists(v1 + "/manifest.json"));

  // The manifest.
  const std::string manifest = ReadFileToString(v1 + "/manifest.json").value();
  uint64_t size = 0;
  const std::string sha = Sha256OfFile(v1 + "/model.onnx", &size).value();
  EXPECT_EQ(JsonString(manifest, "sha256"), sha);
  EXPECT_EQ(JsonNumber(manifest, "file_bytes"), static_cast<double>(size));
  EXPECT_EQ(JsonNumber(manifest, "version"), 1);
  EXPECT_EQ(JsonString(manifest, "name"), "fmnist");
  EXPECT_EQ(JsonString(manifest, "precision"), "fp32");
  auto checkpoint_manifest = ReadManifest(Checkpoint());
  ASSERT_TRUE(checkpoint_manifest.ok());
  EXPECT_EQ(JsonNumber(manifest, "step"), static_cast<double>(checkpoint_manifest->step()));
  EXPECT_EQ(JsonNumber(manifest, "num_parameters"), static_cast<double>(checkpoint_manifest->num_keys()));
  EXPECT_NE(manifest.find(fs::absolute(Checkpoint()).lexically_normal().string()), std::string::npos) << manifest;
  EXPECT_EQ(JsonNumber(manifest, "test_examples"), 300);
  // The final checkpoint holds the parameters the job's final evaluation used.
  const std::string summary = ReadFileToString(*run_ + "/summary.json").value();
  EXPECT_NEAR(JsonNumber(manifest, "test_accuracy", -1), JsonNumber(summary, "test_accuracy", -2), 1.5 / 300);
  EXPECT_EQ(JsonString(manifest, "params_sha256"), JsonString(summary, "params_sha256"));

  // The model: ONNX's checker, metadata, and the same logits as Tessera's layers
  // on a few test images normalized as the workers do.
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(ReadFileToString(v1 + "/model.onnx").value()));
  ASSERT_OK(CheckOnnxModel(model));
  std::map<std::string, std::string> meta;
  for (const auto& p : model.metadata_props()) meta[p.key()] = p.value();
  EXPECT_EQ(meta["tessera.input_mean"], "0.286");
  EXPECT_EQ(meta["tessera.input_std"], "0.353");
  EXPECT_EQ(meta["tessera.params_sha256"], JsonString(summary, "params_sha256"));

  const proto::JobSpec& spec = checkpoint_manifest->spec();
  auto test = LoadImageDataset(DataPath(spec.data(), spec.data().test_images()),
                               DataPath(spec.data(), spec.data().test_labels()), 8);
  ASSERT_TRUE(test.ok());
  std::vector<float> x;
  std::vector<float> labels;
  BatchReader(&*test, spec.data().mean(), spec.data().std()).Read({}, 0, 8, &x, &labels);
  std::vector<float> params;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    const float* f = reinterpret_cast<const float*>(t.raw_data().data());
    params.insert(params.end(), f, f + t.raw_data().size() / sizeof(float));
  }
  ASSERT_EQ(params.size(), checkpoint_manifest->num_keys());
  const std::vector<float> expected = TesseraLogits(spec.model(), {1, 28, 28}, params, x, 8);
  auto values = RunOnnx(model, Tensor{{8, 1, 28, 28}, x});
  EXPECT_LT(MaxRelativeDifference(values["logits"].data, expected), 1e-4);

  if (PythonOnnxAvailable()) {
    const std::string script = *dir_ + "/check_onnx.py", x_path = *dir_ + "/x.bin", out = *dir_ + "/logits.bin";
    std::ofstream(script) << kPythonCheck;
    std::ofstream(x_path, std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    Shell py = RunShell("/usr/bin/python3 " + script + " " + v1 + "/model.onnx " + v1 + "/manifest.json " + x_path +
                        " 8 " + out);
    ASSERT_EQ(py.exit_code, 0) << py.output;
    EXPECT_NE(py.output.find("python3-onnx: ok"), std::string::npos) << py.output;
    const std::string bytes = ReadFileToString(out).value();
    ASSERT_EQ(bytes.size(), expected.size() * sizeof(float));
    std::vector<float> numpy_logits(expected.size());
    std::memcpy(numpy_logits.data(), bytes.data(), bytes.size());
    EXPECT_LT(MaxRelativeDifference(numpy_logits, expected), 1e-4);
  } else {
    std::cout << "python3-onnx or numpy is not installed: the Python check is skipped\n";
  }

  // Again: version 2, the same bytes. Then without evaluation or probabilities: 3.
  CommandResult again = RunTessera({"export", Checkpoint(), "--out", model_dir + "/"});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(Sha256OfFile(model_dir + "/2/model.onnx", nullptr).value(), sha);
  EXPECT_EQ(JsonNumber(ReadFileToString(model_dir + "/2/manifest.json").value(), "version"), 2);
  CommandResult third = RunTessera({"export", *run_, "--out", model_dir, "--noevaluate", "--noprobabilities"});
  ASSERT_EQ(third.exit_code, 0) << third.output;
  const std::string manifest3 = ReadFileToString(model_dir + "/3/manifest.json").value();
  EXPECT_NE(manifest3.find("\"test_accuracy\": null"), std::string::npos) << manifest3;
  EXPECT_EQ(manifest3.find("probabilities"), std::string::npos) << manifest3;
  // Nothing but the versions in the model's directory.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(model_dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"1", "2", "3"}));
}

// --quantize int8 and fp16: the manifest says what was done and what the
// test accuracy became; the files import as int8 and fp16 models, and
// Tessera's runtime computes what a NumPy evaluation of the ONNX graph
// (QuantizeLinear rounding half to even and saturating, as ONNX defines it)
// computes from the same file.
TEST_F(ExportCommandTest, QuantizedExportsComputeWhatTheOnnxGraphSays) {
  const std::string model_dir = *dir_ + "/repo-quantized-" +
                                std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "/fmnist";
  CommandResult int8 = RunTessera({"export", *run_, "--out", model_dir, "--quantize", "int8", "--calibration-batches", "4"});
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  EXPECT_NE(int8.output.find("quantized 4 layers to int8 (2 batch norms folded in), calibrated on 128 training examples"),
            std::string::npos)
      << int8.output;
  CommandResult fp16 = RunTessera({"export", *run_, "--out", model_dir, "--quantize", "fp16"});
  ASSERT_EQ(fp16.exit_code, 0) << fp16.output;

  auto checkpoint_manifest = ReadManifest(Checkpoint());
  ASSERT_TRUE(checkpoint_manifest.ok());
  const proto::JobSpec& spec = checkpoint_manifest->spec();
  auto test = LoadImageDataset(DataPath(spec.data(), spec.data().test_images()),
                               DataPath(spec.data(), spec.data().test_labels()), 16);
  ASSERT_TRUE(test.ok());
  std::vector<float> x;
  std::vector<float> labels;
  BatchReader(&*test, spec.data().mean(), spec.data().std()).Read({}, 0, 16, &x, &labels);

  for (const auto& [version, precision] : {std::pair<std::string, std::string>{"1", "int8"}, {"2", "fp16"}}) {
    SCOPED_TRACE(precision);
    const std::string dir = model_dir + "/" + version;
    const std::string manifest = ReadFileToString(dir + "/manifest.json").value();
    EXPECT_EQ(JsonString(manifest, "precision"), precision);
    EXPECT_NE(manifest.find("{\"step\": \"quantize\", \"test_accuracy\": "), std::string::npos) << manifest;
    EXPECT_NE(manifest.find(precision == "int8" ? "\"method\": \"int8 QDQ\"" : "\"method\": \"fp16 weights\""),
              std::string::npos) << manifest;
    // The quantized model's accuracy is the manifest's, and near the float one's on this small test set.
    const double accuracy = JsonNumber(manifest, "test_accuracy", -1);
    const std::string summary = ReadFileToString(*run_ + "/summary.json").value();
    EXPECT_NEAR(accuracy, JsonNumber(summary, "test_accuracy", -2), 0.05);

    auto files = ReadModelVersion(dir);
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    EXPECT_EQ(files->model.precision, precision);
    EXPECT_EQ(files->model.metadata["tessera.precision"], precision);
    // int8 folds the batch norms into the layers before them; fp16 keeps the graph as trained.
    const auto norms = std::count_if(files->model.spec.layer().begin(), files->model.spec.layer().end(),
                                     [](const proto::LayerSpec& l) { return l.has_batch_norm(); });
    EXPECT_EQ(norms, precision == "int8" ? 0 : 2);
    auto model = Model::Create(files->model.spec, files->model.input_shape, files->model.num_classes);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    std::copy(files->model.params.begin(), files->model.params.end(), (*model)->params());
    (*model)->PrepareForInference();
    const float* logits = (*model)->Infer(x.data(), 16);
    ASSERT_NE(logits, nullptr);
    const std::vector<float> tessera(logits, logits + 16 * 10);

    if (!PythonOnnxAvailable()) {
      std::cout << "python3-onnx or numpy is not installed: the Python check is skipped\n";
      continue;
    }
    const std::string script = *dir_ + "/check_onnx_" + precision + ".py", x_path = *dir_ + "/x16.bin",
                      out = *dir_ + "/logits_" + precision + ".bin";
    std::ofstream(script) << kPythonCheck;
    std::ofstream(x_path, std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    Shell py = RunShell("/usr/bin/python3 " + script + " " + dir + "/model.onnx " + dir + "/manifest.json " + x_path +
                        " 16 " + out);
    ASSERT_EQ(py.exit_code, 0) << py.output;
    const std::string bytes = ReadFileToString(out).value();
    ASSERT_EQ(bytes.size(), tessera.size() * sizeof(float));
    std::vector<float> numpy_logits(tessera.size());
    std::memcpy(numpy_logits.data(), bytes.data(), bytes.size());
    // int8: the runtime multiplies by 1/scale where ONNX divides, so a value
    // on a rounding tie may land one step away; far below a logit's size.
    EXPECT_LT(MaxRelativeDifference(tessera, numpy_logits), precision == "int8" ? 2e-3 : 1e-4);
  }
}

TEST_F(ExportCommandTest, BadInputIsOneLineAndLeavesNothing) {
  const std::string repo = MakeTempDir("export-repo");
  const std::string out = repo + "/m";
  ExpectRefused({"export", *dir_ + "/no-such-run", "--out", out}, "does not exist", repo);
  ExpectRefused({"export", *run_}, "--out MODEL_REPO/NAME is required", repo);
  ExpectRefused({"export", *run_, "--out", out, "--bogus", "1"}, "unknown flag --bogus", repo);
  ExpectRefused({"export", *run_, "--out", out, "--calibration-batches", "4"}, "needs --quantize int8", repo);
  ExpectRefused({"export", *run_, "--out", out, "--quantize", "int8", "--calibration-batches", "-1"},
                "--calibration-batches must be >= 0", repo);
  ExpectRefused({"export", *run_, "--out", out, "--quantize", "int4"}, "--quantize must be none, fp16 or int8", repo);
  ExpectRefused({"export", *run_, "--out", out, "--prune-sparsity", "1"}, "--prune-sparsity must be in [0, 1)", repo);
  ExpectRefused({"export", *run_, "--out", out, "--prune-sparsity", "-0.1"}, "--prune-sparsity must be in [0, 1)",
                repo);
  ExpectRefused({"export", *run_, "--out", out, "--prune-sparsity", "0.5", "--prune-mode", "channels"},
                "--prune-mode must be unstructured or structured", repo);
  ExpectRefused({"export", *run_, "--out", out, "--prune-sparsity", "0.5", "--fine-tune-epochs", "-1"},
                "--fine-tune-epochs must be >= 0", repo);
  ExpectRefused({"export", *run_, "--out", out, "--fine-tune-epochs", "2"}, "needs --prune-sparsity > 0", repo);
  ExpectRefused({"export", *run_, "--out", out, "--prune-sparsity", "0.5", "--fine-tune-epochs", "1", "--workers", "0"},
                "workers", repo);
  ExpectRefused({"export", *run_, "--out", out, "--data-dir", repo + "/nowhere"}, "--noevaluate", repo);

  // --out where no directory can be made: under a regular file.
  std::ofstream(repo + "/file") << "x";
  ExpectRefused({"export", *run_, "--out", repo + "/file/sub/m"}, repo + "/file", repo);

  // A corrupt checkpoint (one byte of a server part flipped), into an existing
  // model directory that already holds a version: nothing changes there.
  const std::string copy = MakeTempDir("export-corrupt") + "/step";
  fs::copy(Checkpoint(), copy, fs::copy_options::recursive);
  CommandResult ok = RunTessera({"export", copy, "--out", out, "--noevaluate"});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  std::string sst;
  for (const auto& e : fs::directory_iterator(copy + "/server-0")) {
    if (e.path().extension() == ".sst") sst = e.path().string();
  }
  ASSERT_FALSE(sst.empty());
  {
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c;
    f.get(c);
    f.seekp(100);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  ExpectRefused({"export", copy, "--out", out}, "does not match its checksum", repo);
  EXPECT_TRUE(FileExists(out + "/1/model.onnx"));
  EXPECT_FALSE(FileExists(out + "/2"));
}

// --- pruning and fine-tuning (export/pruning.h, tools/fine_tune.h) ---

using json = nlohmann::json;

// The initializers of a version's model.onnx: name, dims, values.
struct Initializer {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<float> values;
};

std::vector<Initializer> Initializers(const std::string& version_dir) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(ReadFileToString(version_dir + "/model.onnx").value()));
  std::vector<Initializer> out;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    Initializer init{t.name(), {t.dims().begin(), t.dims().end()}, {}};
    init.values.resize(t.raw_data().size() / sizeof(float));
    std::memcpy(init.values.data(), t.raw_data().data(), t.raw_data().size());
    out.push_back(std::move(init));
  }
  return out;
}

json Manifest(const std::string& version_dir) { return json::parse(ReadFileToString(version_dir + "/manifest.json").value()); }

// The fine-tuning job's temporary run directories go to $TMPDIR: a fresh one
// per test, so that the test can see they are all removed.
class TempDirEnv {
 public:
  TempDirEnv() : dir_(MakeTempDir("export-tmpdir")) { setenv("TMPDIR", dir_.c_str(), 1); }
  ~TempDirEnv() { unsetenv("TMPDIR"); }
  // The fine-tuning run directories in it (MakeTempDir makes its directories there too).
  std::vector<std::string> Entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().starts_with("tessera-fine-tune-")) names.push_back(e.path().string());
    }
    return names;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

TEST_F(ExportCommandTest, UnstructuredPruningAndFineTuningKeepThePrunedWeightsExactlyZero) {
  TempDirEnv tmp;
  const std::string model_dir = MakeTempDir("export-unstructured") + "/m";
  CommandResult pruned = RunTessera({"export", *run_, "--out", model_dir, "--prune-sparsity", "0.5"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.output;
  CommandResult tuned = RunTessera({"export", *run_, "--out", model_dir, "--prune-sparsity", "0.5", "--fine-tune-epochs",
                                    "1", "--max-train-examples", "320", "--threads", "1", "--progress", "plain"});
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_NE(tuned.output.find("training export-cnn"), std::string::npos) << tuned.output;  // the launcher's view
  EXPECT_NE(tuned.output.find("done: test accuracy"), std::string::npos) << tuned.output;
  EXPECT_TRUE(tmp.Entries().empty()) << "the fine-tuning run directory must be removed";

  // The same weights are 0 in both versions, exactly half of them (rounded down).
  const std::vector<Initializer> a = Initializers(model_dir + "/1"), b = Initializers(model_dir + "/2");
  ASSERT_EQ(a.size(), b.size());
  int64_t weights = 0, zeros = 0, moved = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    ASSERT_EQ(a[t].dims, b[t].dims);
    const bool weight = a[t].dims.size() >= 2;  // no BatchNorm tensor has rank 2
    for (size_t k = 0; k < a[t].values.size(); ++k) {
      if (weight) {
        ++weights;
        zeros += a[t].values[k] == 0.0f;
        EXPECT_EQ(a[t].values[k] == 0.0f, b[t].values[k] == 0.0f) << a[t].name << "[" << k << "]";
      }
      moved += a[t].values[k] != b[t].values[k];
    }
  }
  EXPECT_EQ(zeros, PruneCount(0.5, weights));
  EXPECT_GT(moved, weights / 4) << "fine-tuning must change the weights it keeps";

  const json m = Manifest(model_dir + "/2");
  EXPECT_EQ(m["pruning"], "unstructured");
  EXPECT_EQ(m["sparsity"].get<double>(), static_cast<double>(zeros) / weights);
  const json& d = m["pruning_details"];
  EXPECT_EQ(d["mode"], "unstructured");
  EXPECT_EQ(d["requested_sparsity"].get<double>(), 0.5);
  EXPECT_EQ(d["achieved_sparsity"].get<double>(), static_cast<double>(zeros) / weights);
  EXPECT_EQ(d["weights_before"].get<int64_t>(), weights);
  EXPECT_EQ(d["parameters_before"], d["parameters_after"]);
  EXPECT_EQ(d["fine_tune_epochs"].get<int>(), 1);
  ASSERT_EQ(m["steps"].size(), 3u) << m.dump();
  EXPECT_EQ(m["steps"][0]["step"], "source");
  EXPECT_EQ(m["steps"][1]["step"], "prune");
  EXPECT_EQ(m["steps"][2]["step"], "fine_tune");
  EXPECT_EQ(m["steps"][2]["epochs"].get<int>(), 1);
  for (const json& step : m["steps"]) EXPECT_TRUE(step["test_accuracy"].is_number()) << step.dump();
  EXPECT_EQ(m["steps"][2]["test_accuracy"], m["test_accuracy"]);  // the exported model's
  const json m1 = Manifest(model_dir + "/1");
  EXPECT_EQ(m1["steps"].size(), 2u);
  EXPECT_EQ(m1["steps"][0]["test_accuracy"], m["steps"][0]["test_accuracy"]);
  EXPECT_EQ(m1["steps"][1]["test_accuracy"], m["steps"][1]["test_accuracy"]);
  EXPECT_EQ(m1["pruning_details"]["fine_tune_epochs"].get<int>(), 0);
  // The digest is the exported parameters'.
  std::vector<float> params;
  for (const Initializer& init : b) params.insert(params.end(), init.values.begin(), init.values.end());
  EXPECT_EQ(m["params_sha256"], ParamsSha256(params.data(), params.size()));
  // An unpruned export says so.
  CommandResult plain = RunTessera({"export", *run_, "--out", model_dir, "--noevaluate"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const json m3 = Manifest(model_dir + "/3");
  EXPECT_EQ(m3["pruning"], "none");
  EXPECT_TRUE(m3["pruning_details"].is_null());
  ASSERT_EQ(m3["steps"].size(), 1u);
  EXPECT_TRUE(m3["steps"][0]["test_accuracy"].is_null());
}

TEST_F(ExportCommandTest, StructuredPruningExportsASmallerModelThatLoadsAndServes) {
  TempDirEnv tmp;
  const std::string repo = MakeTempDir("export-structured");
  const std::string model_dir = repo + "/small";
  CommandResult r = RunTessera({"export", *run_, "--out", model_dir, "--prune-sparsity", "0.5", "--prune-mode",
                                "structured", "--fine-tune-epochs", "1", "--max-train-examples", "320", "--threads",
                                "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("layer0 4 -> 2, layer4 6 -> 3, layer8 16 -> 8"), std::string::npos) << r.output;
  EXPECT_TRUE(tmp.Entries().empty());

  // Loaded as `tessera serve` loads it: half the channels and neurons, the classes kept.
  auto version = ReadModelVersion(model_dir + "/1");
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  const proto::ModelSpec& spec = version->model.spec;
  ASSERT_EQ(spec.layer_size(), 12);
  EXPECT_EQ(spec.layer(0).conv2d().out_channels(), 2);
  EXPECT_EQ(spec.layer(4).conv2d().out_channels(), 3);
  EXPECT_EQ(spec.layer(8).linear().out_features(), 8);
  EXPECT_EQ(spec.layer(11).linear().out_features(), 10);
  const json m = Manifest(model_dir + "/1");
  EXPECT_EQ(m["pruning"], "structured");
  EXPECT_EQ(m["num_parameters"].get<uint64_t>(), version->model.params.size());
  EXPECT_EQ(m["pruning_details"]["parameters_after"].get<uint64_t>(), version->model.params.size());
  EXPECT_LT(m["pruning_details"]["parameters_after"].get<uint64_t>(),
            m["pruning_details"]["parameters_before"].get<uint64_t>() / 2);
  EXPECT_GT(m["pruning_details"]["achieved_sparsity"].get<double>(), 0.5);
  ASSERT_EQ(m["steps"].size(), 3u);

  // Tessera's runtime and the reference evaluator agree on the smaller graph.
  auto model = Model::Create(spec, version->model.input_shape, version->model.num_classes);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::copy(version->model.params.begin(), version->model.params.end(), (*model)->params());
  constexpr int64_t kBatch = 3;
  const std::vector<float> x = RandomImages(kBatch, 784);
  const float* logits = (*model)->Infer(x.data(), kBatch);
  const std::vector<float> ours(logits, logits + kBatch * 10);
  onnx::ModelProto onnx_model;
  ASSERT_TRUE(onnx_model.ParseFromString(ReadFileToString(model_dir + "/1/model.onnx").value()));
  auto values = RunOnnx(onnx_model, Tensor{{kBatch, 1, 28, 28}, x});
  EXPECT_LT(MaxRelativeDifference(values["logits"].data, ours), 1e-4);

  // And served: the same logits over HTTP.
  ServeProcess serve = StartServe({"--model-repo", repo});
  ASSERT_GT(serve.port, 0);
  const int port = serve.port;
  std::unique_ptr<ChildProcess>& server = serve.process;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  const json body = {{"inputs", {{{"name", "input"}, {"shape", {kBatch, 1, 28, 28}}, {"datatype", "FP32"}, {"data", x}}}}};
  auto res = client.Post("/v2/models/small/infer", body.dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  std::vector<float> served;
  for (const json& out : answer["outputs"]) {
    if (out["name"] == "logits") served = out["data"].get<std::vector<float>>();
  }
  EXPECT_LT(MaxRelativeDifference(served, ours), 1e-5);
  kill(server->pid(), SIGTERM);
  server->Wait(10000);
}

TEST_F(ExportCommandTest, InterruptedFineTuningLeavesNothingBehind) {
  TempDirEnv tmp;
  const std::string repo = MakeTempDir("export-interrupted");
  const std::string log = repo + "/export.log";
  auto exporter = ChildProcess::Start(
      "export",
      // Far more epochs than it gets to run: on a quiet machine 20 of them
      // ended before this test saw the job train.
      {TesseraBinary(), "export", *run_, "--out", repo + "/m", "--prune-sparsity", "0.5", "--fine-tune-epochs", "1000",
       "--max-train-examples", "4000", "--threads", "1", "--progress", "plain"},
      log);
  ASSERT_TRUE(exporter.ok());
  // Wait until the fine-tuning job trains.
  std::string run;
  for (int i = 0; i < 1200 && run.empty(); ++i) {
    for (const std::string& entry : tmp.Entries()) {
      auto metrics = ReadFileToString(entry + "/metrics.jsonl");
      if (metrics.ok() && (metrics->find("\"event\": \"progress\"") != std::string::npos ||
                           metrics->find("\"event\": \"epoch\"") != std::string::npos)) {
        run = entry;
      }
    }
    if ((*exporter)->Poll().has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(run.empty()) << FileText(log);
  const std::vector<int> children = ChildrenOf((*exporter)->pid());
  EXPECT_GE(children.size(), 3u);  // scheduler, servers, worker
  kill((*exporter)->pid(), SIGINT);
  EXPECT_EQ((*exporter)->Wait(90000), std::optional<int>(130)) << FileText(log);
  for (int pid : children) EXPECT_FALSE(IsRunning(pid)) << pid;
  EXPECT_TRUE(ProcessesMatching(run).empty());
  EXPECT_TRUE(tmp.Entries().empty()) << "the fine-tuning run directory must be removed";
  EXPECT_FALSE(fs::exists(repo + "/m/1"));
}

// `tessera export RUN --best` takes summary.json's best_checkpoint, or says
// in one line why the run has none.
TEST(BestCheckpointTest, TheRunsSummaryNamesItOrSaysWhyNot) {
  const std::string run = MakeTempDir("best");
  std::string note;
  StatusOr<std::string> best = BestCheckpointOfRun(run, &note);
  EXPECT_EQ(best.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(best.status().message(),
            run + "/summary.json is missing: --best exports the best checkpoint a finished run recorded");

  const auto summary = [&](const std::string& json) { std::ofstream(run + "/summary.json") << json; };
  summary(R"({"name": "job", "test_accuracy": 0.5})");
  EXPECT_EQ(BestCheckpointOfRun(run, &note).status().message(),
            run + " has no best checkpoint: its job had no validation split (data.validation_fraction or "
                  "data.validation_files)");
  summary(R"({"validation_examples": 10, "best_epoch": 3, "best_checkpoint": null})");
  EXPECT_EQ(BestCheckpointOfRun(run, &note).status().message(),
            run + " has no best checkpoint: no checkpoint was committed at the end of its best epoch, 3 "
                  "(checkpoint.every_epochs)");
  summary(R"({"validation_examples": 10, "best_epoch": null, "best_checkpoint": null})");
  EXPECT_EQ(BestCheckpointOfRun(run, &note).status().message(),
            run + " has no best checkpoint: no validation scored a metric");
  summary("{not json");
  EXPECT_EQ(BestCheckpointOfRun(run, &note).status().message(), run + "/summary.json does not parse");

  summary(R"({"validation_examples": 10, "best_epoch": 2, "best_checkpoint": "/r/checkpoints/step-000000000020"})");
  best = BestCheckpointOfRun(run, &note);
  ASSERT_OK(best.status());
  EXPECT_EQ(*best, "/r/checkpoints/step-000000000020");
  EXPECT_NE(note.find("(epoch 2)"), std::string::npos) << note;
}

TEST(ExportCliTest, HelpDocumentsEveryFlag) {
  CommandResult r = RunTessera({"export", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("usage: tessera export"), std::string::npos) << r.output;
  for (const char* flag : {"--out=", "--best", "--probabilities", "--evaluate", "--data-dir=", "--max-test-examples=",
                           "--quantize=", "--prune-sparsity=", "--prune-mode=", "--fine-tune-epochs=",
                           "--calibration-batches="}) {
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
  }
  CommandResult top = RunTessera({"--help"});
  EXPECT_NE(top.output.find("  export"), std::string::npos) << top.output;
}

}  // namespace
}  // namespace tessera
