// `tessera serve` and the ONNX import it stands on: exported models read back
// into the same spec and parameters; bad models refused with a message; the
// real server process on 127.0.0.1 answering KServe v2 requests with
// Tessera's own logits, batching concurrent requests, picking up a new
// version while a client sends requests (none failing), refusing every kind
// of bad request with a 4xx and staying up; bad flags one line and exit 2.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "models/device.h"
#include "models/model.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "worker/batch_reader.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<float> InitialParams(const proto::ModelSpec& spec) {
  auto model = Model::Create(spec, {1, 28, 28}, 10);
  EXPECT_TRUE(model.ok());
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 3, params.data());
  return params;
}

// Tessera's logits for x[batch, 784] under `params`.
std::vector<float> TesseraLogits(const proto::ModelSpec& spec, const std::vector<float>& params, const std::vector<float>& x,
                                 int64_t batch) {
  return InferLogits(spec, {1, 28, 28}, params, x, batch);
}

double MaxAbsDifference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst;
}

// --- the import, without a server ---

TEST(OnnxImportTest, ExportedModelsReadBackAsTheSameSpecAndParameters) {
  for (const char* text : {kCnnModel, kMlpModel}) {
    SCOPED_TRACE(text);
    const proto::ModelSpec spec = ParseModel(text);
    const std::vector<float> params = InitialParams(spec);
    for (bool probabilities : {true, false}) {
      OnnxExportOptions options;
      options.probabilities = probabilities;
      auto onnx = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), options);
      ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
      auto imported = ImportOnnxBytes(SerializeOnnxModel(*onnx).value());
      ASSERT_TRUE(imported.ok()) << imported.status().ToString();
      EXPECT_EQ(imported->input_shape, (Shape{1, 28, 28}));
      EXPECT_EQ(imported->num_classes, 10);
      EXPECT_EQ(imported->has_probabilities, probabilities);
      EXPECT_EQ(imported->params, params);
      // The same layers (dropout back where the layer numbers skip one;
      // defaults such as dropout.p and batch norm momentum are not in ONNX).
      ASSERT_EQ(imported->spec.layer_size(), spec.layer_size());
      for (int i = 0; i < spec.layer_size(); ++i) {
        EXPECT_EQ(imported->spec.layer(i).kind_case(), spec.layer(i).kind_case()) << i;
      }
      EXPECT_EQ(imported->spec.layer(0).ShortDebugString().empty(), false);
      const std::vector<float> x(3 * 784, 0.25f);
      EXPECT_EQ(TesseraLogits(imported->spec, imported->params, x, 3), TesseraLogits(spec, params, x, 3));
    }
  }
}

// A binary model's head (logits [N, 1], Sigmoid to "probability") and a
// regression's ("value" [N, 1]) read back as their task, with the loss that
// gives the model its one output.
TEST(OnnxImportTest, BinaryAndRegressionHeadsReadBackAsTheirTask) {
  for (const proto::Loss loss : {proto::SIGMOID_BINARY_CROSS_ENTROPY, proto::MEAN_SQUARED_ERROR}) {
    SCOPED_TRACE(proto::Loss_Name(loss));
    proto::ModelSpec spec = ParseModel("layer { linear { out_features: 4 } } layer { relu {} } "
                                       "layer { linear { out_features: 1 } }");
    spec.set_loss(loss);
    auto model = Model::Create(spec, {3}, 2);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    std::vector<float> params((*model)->num_keys());
    InitializeParameters((*model)->tensors(), 3, params.data());
    auto onnx = BuildOnnxModel(spec, {3}, 2, params.data(), params.size(), OnnxExportOptions());
    ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
    ASSERT_OK(CheckOnnxModel(*onnx));
    std::vector<std::string> outputs;
    for (const onnx::ValueInfoProto& v : onnx->graph().output()) outputs.push_back(v.name());
    const bool binary = loss == proto::SIGMOID_BINARY_CROSS_ENTROPY;
    const std::vector<std::string> expected =
        binary ? std::vector<std::string>{"logits", "probability"} : std::vector<std::string>{"value"};
    EXPECT_EQ(outputs, expected);
    auto imported = ImportOnnxModel(*onnx);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    EXPECT_EQ(imported->task, binary ? Task::kBinary : Task::kRegression);
    EXPECT_EQ(imported->spec.loss(), loss);
    EXPECT_EQ(imported->num_classes, 1);
    EXPECT_EQ(imported->has_probabilities, binary);
    EXPECT_EQ(imported->params, params);
    if (binary) {
      onnx::ModelProto m = *onnx;
      m.mutable_graph()->mutable_node(m.graph().node_size() - 1)->set_output(0, "probabilities");
      m.mutable_graph()->mutable_output(1)->set_name("probabilities");
      auto r = ImportOnnxModel(m);
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.status().message().find("the Sigmoid must output 'probability'"), std::string::npos)
          << r.status().message();
    }
  }
}

TEST(OnnxImportTest, BadModelsAreRefusedWithAMessage) {
  const proto::ModelSpec spec = ParseModel(kCnnModel);
  const std::vector<float> params = InitialParams(spec);
  const onnx::ModelProto good = BuildOnnxModel(spec, {1, 28, 28}, 10, params.data(), params.size(), OnnxExportOptions()).value();
  const std::string bytes = SerializeOnnxModel(good).value();
  auto refused = [](const StatusOr<ImportedModel>& r, const std::string& needle) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  refused(ImportOnnxBytes(""), "not an ONNX model");
  refused(ImportOnnxBytes("garbage, not protobuf at all \xff\xff\xff"), "not an ONNX model");
  // Every truncation of the file is refused or, if it still parses, never crashes.
  for (size_t cut = 1; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 97)) {
    auto r = ImportOnnxBytes(bytes.substr(0, cut));
    EXPECT_FALSE(r.ok()) << "truncated at " << cut;
  }
  {
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node(2)->set_op_type("Tanh");  // the Relu
    refused(ImportOnnxModel(m), "op Tanh is not supported");
  }
  {
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node(2)->set_op_type("Sigmoid");  // only a binary model's head may be one
    refused(ImportOnnxModel(m), "the Sigmoid must output 'probability'");
  }
  {
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_initializer()->RemoveLast();  // the last Gemm's bias
    refused(ImportOnnxModel(m), "");
  }
  {
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_initializer(0)->mutable_raw_data()->resize(8);
    refused(ImportOnnxModel(m), "initializer 'layer0.conv2d.weight'");
  }
  {
    onnx::ModelProto m = good;
    onnx::NodeProto* conv = m.mutable_graph()->mutable_node(0);
    for (auto& a : *conv->mutable_attribute()) {
      if (a.name() == "group") a.set_i(2);
    }
    refused(ImportOnnxModel(m), "");
  }
  {
    onnx::ModelProto m = good;
    onnx::NodeProto* pool = m.mutable_graph()->mutable_node(3);
    for (auto& a : *pool->mutable_attribute()) {
      if (a.name() == "ceil_mode") a.set_i(1);
    }
    refused(ImportOnnxModel(m), "ceil_mode");
  }
  for (const char* attribute : {"strides", "dilations", "kernel_shape"}) {
    // A zero made ONNX's own shape inference divide by zero (SIGFPE).
    onnx::ModelProto m = good;
    onnx::NodeProto* conv = m.mutable_graph()->mutable_node(0);
    bool found = false;
    for (auto& a : *conv->mutable_attribute()) {
      if (a.name() != attribute) continue;
      for (int i = 0; i < a.ints_size(); ++i) a.set_ints(i, 0);
      found = true;
    }
    if (!found) {
      onnx::AttributeProto* a = conv->add_attribute();
      a->set_name(attribute);
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(0);
      a->add_ints(0);
    }
    refused(ImportOnnxModel(m), std::string(attribute) + " must be positive");
  }
}

// --- the server ---

std::string ReadLog(const std::string& path) {
  auto text = ReadFileToString(path);
  return text.ok() ? *text : std::string();
}

using Server = ServeProcess;

// Starts `tessera serve --port 0 ARGS...` and waits for "serving on 127.0.0.1:PORT".
Server StartServer(const std::vector<std::string>& args) { return StartServe(args); }

std::unique_ptr<httplib::Client> Client(const Server& server) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", server.port);
  client->set_read_timeout(60, 0);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  return client;
}

std::string InferBody(const std::vector<float>& x, int64_t batch, bool nested = false, const std::string& id = "") {
  json input = {{"name", "input"}, {"shape", {batch, 1, 28, 28}}, {"datatype", "FP32"}};
  if (nested) {
    json data = json::array();
    for (int64_t e = 0; e < batch; ++e) {
      json channel = json::array();
      json rows = json::array();
      for (int r = 0; r < 28; ++r) {
        rows.push_back(std::vector<float>(x.begin() + e * 784 + r * 28, x.begin() + e * 784 + (r + 1) * 28));
      }
      channel.push_back(rows);
      data.push_back(channel);
    }
    input["data"] = data;
  } else {
    input["data"] = x;
  }
  json body = {{"inputs", json::array({input})}};
  if (!id.empty()) body["id"] = id;
  return body.dump();
}

std::vector<float> Output(const json& response, const std::string& name) {
  for (const json& o : response["outputs"]) {
    if (o["name"] == name) return o["data"].get<std::vector<float>>();
  }
  ADD_FAILURE() << "no output " << name << " in " << response.dump().substr(0, 300);
  return {};
}

// Writes a copy of version `from` of model_dir as `to` with the last Gemm's
// bias shifted by `shift` (so its logits differ by exactly that), with a
// manifest that matches, first under a temporary name when `atomic`.
void WriteShiftedVersion(const std::string& model_dir, int from, const std::string& to_dir, float shift) {
  const std::string src = model_dir + "/" + std::to_string(from);
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(ReadFileToString(src + "/model.onnx").value()));
  onnx::TensorProto* bias = model.mutable_graph()->mutable_initializer(model.graph().initializer_size() - 1);
  ASSERT_EQ(bias->dims_size(), 1);
  std::string* raw = bias->mutable_raw_data();
  for (size_t i = 0; i < raw->size(); i += 4) {
    float v;
    std::memcpy(&v, raw->data() + i, 4);
    v += shift;
    std::memcpy(raw->data() + i, &v, 4);
  }
  const std::string bytes = SerializeOnnxModel(model).value();
  json manifest = json::parse(ReadFileToString(src + "/manifest.json").value());
  manifest["sha256"] = Sha256Hex(bytes.data(), bytes.size());
  manifest["file_bytes"] = bytes.size();
  ASSERT_OK(MakeDirs(to_dir));
  std::ofstream(to_dir + "/model.onnx", std::ios::binary) << bytes;
  std::ofstream(to_dir + "/manifest.json") << manifest.dump(2);
}

class ServeTest : public ::testing::Test {
 protected:
  // A tiny training run, exported as version 1 of repo/fmnist.
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("serve"));
    const std::string run = *dir_ + "/run";
    std::ofstream(*dir_ + "/spec.pbtxt") << "name: \"serve-cnn\"\nmodel {" << kCnnModel
                                          << "}\ncluster { servers: 1 workers: 1 }\n"
                                             "optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }\n"
                                             "batch_size: 32\nepochs: 1\n";
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", run, "--max-train-examples", "320",
                                  "--max-test-examples", "64", "--threads", "1", "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    CommandResult e = RunTessera({"export", run, "--out", *dir_ + "/exported/fmnist", "--noevaluate"});
    ASSERT_EQ(e.exit_code, 0) << e.output;
    auto spec = ParseJobSpec(ReadFileToString(run + "/spec.pbtxt").value(), "spec");
    ASSERT_TRUE(spec.ok());
    spec_ = new proto::JobSpec(*spec);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete spec_;
  }

  // A fresh repository holding version 1.
  static std::string NewRepo() {
    const std::string repo = MakeTempDir("serve-repo");
    fs::copy(*dir_ + "/exported", repo, fs::copy_options::recursive);
    return repo;
  }

  // n test images: normalized floats, raw pixels, and Tessera's logits for them (version 1).
  static void TestImages(int64_t n, std::vector<float>* x, std::vector<uint8_t>* pixels, std::vector<float>* logits) {
    auto test = LoadImageDataset(DataPath(spec_->data(), spec_->data().test_images()),
                                 DataPath(spec_->data(), spec_->data().test_labels()), n);
    ASSERT_TRUE(test.ok());
    std::vector<float> labels;
    BatchReader(&*test, spec_->data().mean(), spec_->data().std()).Read({}, 0, n, x, &labels);
    if (pixels != nullptr) pixels->assign(test->pixels.begin(), test->pixels.begin() + n * 784);
    auto files = ReadModelVersion(*dir_ + "/exported/fmnist/1");
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    *logits = TesseraLogits(spec_->model(), files->model.params, *x, n);
  }

  static std::string* dir_;
  static proto::JobSpec* spec_;
};

std::string* ServeTest::dir_ = nullptr;
proto::JobSpec* ServeTest::spec_ = nullptr;

TEST_F(ServeTest, InferGivesTesseraLogitsAndMetadataDescribesTheModel) {
  const std::string repo = NewRepo();
  Server server = StartServer({"--model-repo", repo});
  ASSERT_GT(server.port, 0);
  auto client = Client(server);

  auto live = client->Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto ready = client->Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(json::parse(ready->body)["ready"], true);

  auto meta = client->Get("/v2/models/fmnist");
  ASSERT_TRUE(meta);
  ASSERT_EQ(meta->status, 200) << meta->body;
  const json m = json::parse(meta->body);
  EXPECT_EQ(m["name"], "fmnist");
  EXPECT_EQ(m["platform"], "onnx");
  EXPECT_EQ(m["versions"], json::array({"1"}));
  EXPECT_EQ(m["inputs"][0]["name"], "input");
  EXPECT_EQ(m["inputs"][0]["datatype"], "FP32");
  EXPECT_EQ(m["inputs"][0]["shape"], json::array({-1, 1, 28, 28}));
  EXPECT_EQ(m["outputs"][0]["name"], "logits");
  EXPECT_EQ(m["outputs"][0]["shape"], json::array({-1, 10}));
  EXPECT_EQ(m["outputs"][1]["name"], "probabilities");
  auto meta_v1 = client->Get("/v2/models/fmnist/versions/1");
  ASSERT_TRUE(meta_v1);
  EXPECT_EQ(meta_v1->status, 200);

  constexpr int64_t kN = 8;
  std::vector<float> x, expected;
  std::vector<uint8_t> pixels;
  TestImages(kN, &x, &pixels, &expected);
  for (bool nested : {false, true}) {
    for (const std::string path : {"/v2/models/fmnist/infer", "/v2/models/fmnist/versions/1/infer"}) {
      auto res = client->Post(path, InferBody(x, kN, nested, "req-7"), "application/json");
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const json r = json::parse(res->body);
      EXPECT_EQ(r["model_name"], "fmnist");
      EXPECT_EQ(r["model_version"], "1");
      EXPECT_EQ(r["id"], "req-7");
      EXPECT_EQ(r["outputs"][0]["shape"], json::array({kN, 10}));
      EXPECT_EQ(r["outputs"][0]["datatype"], "FP32");
      EXPECT_LT(MaxAbsDifference(Output(r, "logits"), expected), 1e-4);
      const std::vector<float> p = Output(r, "probabilities");
      ASSERT_EQ(p.size(), static_cast<size_t>(kN * 10));
      for (int64_t e = 0; e < kN; ++e) {
        double sum = 0;
        for (int j = 0; j < 10; ++j) sum += p[e * 10 + j];
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
  // Raw pixels (UINT8), normalized by the server with the manifest's mean and std;
  // only the logits asked for.
  json body = {{"inputs", {{{"name", "input"}, {"shape", {kN, 1, 28, 28}}, {"datatype", "UINT8"}, {"data", pixels}}}},
               {"outputs", {{{"name", "logits"}}}}};
  auto res = client->Post("/v2/models/fmnist/infer", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  EXPECT_EQ(r["outputs"].size(), 1u);
  EXPECT_FALSE(r.contains("id"));
  EXPECT_LT(MaxAbsDifference(Output(r, "logits"), expected), 1e-4);

  auto metrics = client->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("tessera_serve_requests_total 5"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("tessera_serve_request_errors_total 0"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("tessera_serve_request_latency_seconds_count 5"), std::string::npos);
  EXPECT_NE(metrics->body.find("tessera_serve_examples_total 40"), std::string::npos);
  EXPECT_NE(metrics->body.find("tessera_serve_model_version{model=\"fmnist\"} 1"), std::string::npos);

  server.process->Stop(5000);
  EXPECT_EQ(server.process->Poll(), 130);
}

TEST_F(ServeTest, BadRequestsGet4xxAndTheServerStaysUp) {
  const std::string repo = NewRepo();
  Server server = StartServer({"--model-repo", repo});
  ASSERT_GT(server.port, 0);
  auto client = Client(server);
  std::vector<float> x, expected;
  TestImages(1, &x, nullptr, &expected);
  const std::string good = InferBody(x, 1);
  json wrong_name = json::parse(good);
  wrong_name["inputs"][0]["name"] = "pixels";
  json wrong_type = json::parse(good);
  wrong_type["inputs"][0]["datatype"] = "INT64";
  json wrong_shape = json::parse(good);
  wrong_shape["inputs"][0]["shape"] = {1, 784};
  json wrong_count = json::parse(good);
  wrong_count["inputs"][0]["shape"] = {2, 1, 28, 28};
  json strings = json::parse(good);
  strings["inputs"][0]["data"][5] = "x";
  json bad_pixels = json::parse(good);
  bad_pixels["inputs"][0]["datatype"] = "UINT8";  // floats are no pixels
  json bad_nesting = json::parse(InferBody(x, 1, true));
  bad_nesting["inputs"][0]["data"][0][0].erase(0);
  json bad_output = json::parse(good);
  bad_output["outputs"] = {{{"name", "embeddings"}}};
  json bad_id = json::parse(good);
  bad_id["id"] = 5;
  json huge_batch = json::parse(good);
  huge_batch["inputs"][0]["shape"] = {100000000, 1, 28, 28};
  json absurd_batch = json::parse(good);
  absurd_batch["inputs"][0]["shape"] = {int64_t{1} << 50, 1, 28, 28};
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"/v2/models/fmnist/infer", "{\"inputs\": [", 400, "malformed JSON"},
      {"/v2/models/fmnist/infer", "", 400, "malformed JSON"},
      {"/v2/models/fmnist/infer", "[1, 2]", 400, "JSON object"},
      {"/v2/models/fmnist/infer", std::string(100, '[') + std::string(100, ']'), 400, "nested"},
      {"/v2/models/fmnist/infer", "{}", 400, "'inputs'"},
      {"/v2/models/fmnist/infer", wrong_name.dump(), 400, "unknown input 'pixels'"},
      {"/v2/models/fmnist/infer", wrong_type.dump(), 400, "datatype INT64"},
      {"/v2/models/fmnist/infer", wrong_shape.dump(), 400, "shape [1,784]"},
      {"/v2/models/fmnist/infer", wrong_count.dump(), 400, "needs 1568"},
      {"/v2/models/fmnist/infer", strings.dump(), 400, "FP32 data must be numbers"},
      {"/v2/models/fmnist/infer", bad_pixels.dump(), 400, "UINT8"},
      {"/v2/models/fmnist/infer", bad_nesting.dump(), 400, "the shape says 28"},
      {"/v2/models/fmnist/infer", bad_output.dump(), 400, "unknown output"},
      {"/v2/models/fmnist/infer", bad_id.dump(), 400, "'id'"},
      {"/v2/models/fmnist/infer", huge_batch.dump(), 400, "needs 78400000000"},
      {"/v2/models/fmnist/infer", absurd_batch.dump(), 400, "too large"},
      {"/v2/models/nosuch/infer", good, 404, "unknown model 'nosuch'"},
      {"/v2/models/fmnist/versions/9/infer", good, 404, "no version 9"},
      {"/v2/models/fmnist/versions/abc/infer", good, 404, "no version 'abc'"},
      {"/v2/models/fmnist/versions/0/infer", good, 404, "no version"},
      {"/v2/models/fmnist/predict", good, 404, "no such endpoint"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + " " + c.body.substr(0, 80));
    auto res = client->Post(c.path, c.body, "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, c.status) << res->body;
    EXPECT_EQ(std::count(res->body.begin(), res->body.end(), '\n'), 0) << res->body;
    const json error = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << res->body;
    ASSERT_TRUE(error.contains("error")) << res->body;
    EXPECT_NE(error["error"].get<std::string>().find(c.needle), std::string::npos) << res->body;
  }
  for (const std::string path : {"/v2/models/nosuch", "/v2/models/fmnist/versions/3", "/nowhere"}) {
    auto res = client->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_TRUE(json::parse(res->body, nullptr, false).contains("error")) << res->body;
  }
  // A body over 64 MiB (--max-request-bytes' default): 413, and the client,
  // which sends all of it before reading, still reads the answer.
  {
    auto res = client->Post("/v2/models/fmnist/infer", std::string((size_t{64} << 20) + 1, ' '), "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 413);
    EXPECT_NE(res->body.find("larger than"), std::string::npos) << res->body;
  }
  // The binary tensor extension: 400.
  {
    httplib::Headers headers = {{"Inference-Header-Content-Length", "10"}};
    auto res = client->Post("/v2/models/fmnist/infer", headers, good, "application/octet-stream");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
  }
  // Still up, still right.
  auto fresh = Client(server);
  auto res = fresh->Post("/v2/models/fmnist/infer", good, "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_LT(MaxAbsDifference(Output(json::parse(res->body), "logits"), expected), 1e-4);
  auto metrics = fresh->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("tessera_serve_request_errors_total " + std::to_string(cases.size() - 1 + 1 + 1)),
            std::string::npos)
      << metrics->body;
  EXPECT_FALSE(server.process->Poll().has_value());
}

TEST_F(ServeTest, ANewVersionIsPickedUpWithoutAFailedRequest) {
  const std::string repo = NewRepo();
  const std::string staging = MakeTempDir("serve-v2") + "/2";
  WriteShiftedVersion(*dir_ + "/exported/fmnist", 1, staging, 1.0f);
  Server server = StartServer({"--model-repo", repo, "--poll-interval-ms", "100"});
  ASSERT_GT(server.port, 0);
  std::vector<float> x, expected;
  TestImages(2, &x, nullptr, &expected);
  const std::string body = InferBody(x, 2);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, on_v2{0}, wrong{0}, backwards{0};
  std::string first_failure;
  auto client_loop = [&] {
    auto client = Client(server);
    int last_version = 1;
    while (!stop) {
      auto res = client->Post("/v2/models/fmnist/infer", body, "application/json");
      if (!res || res->status != 200) {
        if (failed++ == 0) first_failure = res ? res->body : httplib::to_string(res.error());
        continue;
      }
      ++ok;
      const json r = json::parse(res->body);
      const int version = std::stoi(r["model_version"].get<std::string>());
      if (version < last_version) ++backwards;
      last_version = version;
      std::vector<float> want = expected;
      if (version == 2) {
        ++on_v2;
        for (float& v : want) v += 1.0f;
      }
      if (MaxAbsDifference(Output(r, "logits"), want) > 1e-4) ++wrong;
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) clients.emplace_back(client_loop);
  const bool served = WaitUntil([&] { return ok >= 20; });
  // Copied in file by file, as cp -r would (the directory first, then its files).
  if (served) fs::copy(staging, repo + "/fmnist/2", fs::copy_options::recursive);
  WaitUntil([&] { return on_v2 >= 20 || !served; });
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(served) << failed << " requests failed, the first: " << first_failure;
  EXPECT_EQ(failed, 0) << first_failure;
  EXPECT_GE(on_v2, 20);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(backwards, 0);
  auto client = Client(server);
  auto meta = client->Get("/v2/models/fmnist");
  ASSERT_TRUE(meta);
  EXPECT_EQ(json::parse(meta->body)["versions"], json::array({"1", "2"}));
  // Version 1 stays reachable by number; removing it leaves 2.
  auto v1 = client->Post("/v2/models/fmnist/versions/1/infer", body, "application/json");
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->status, 200);
  fs::remove_all(repo + "/fmnist/1");
  WaitUntil([&] {
    auto gone = client->Post("/v2/models/fmnist/versions/1/infer", body, "application/json");
    return !gone || gone->status == 404;
  });
  auto after = client->Post("/v2/models/fmnist/versions/1/infer", body, "application/json");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404);
  EXPECT_NE(ReadLog(server.log).find("loaded fmnist/2"), std::string::npos);
}

TEST_F(ServeTest, ConcurrentRequestsAreBatchedAndAllRight) {
  const std::string repo = NewRepo();
  // A pass waits for a full batch (one request from each client) or 10 s: the
  // clients' requests meet in a batch however slowly the machine runs them.
  Server server = StartServer({"--model-repo", repo, "--max-batch-delay-ms", "10000", "--max-batch-size", "16"});
  ASSERT_GT(server.port, 0);
  constexpr int kThreads = 16, kRequests = 10, kImages = 32;
  std::vector<float> x, expected;
  TestImages(kImages, &x, nullptr, &expected);
  std::atomic<int> failed{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto client = Client(server);
      for (int i = 0; i < kRequests; ++i) {
        const int image = (t * kRequests + i) % kImages;
        const std::vector<float> one(x.begin() + image * 784, x.begin() + (image + 1) * 784);
        auto res = client->Post("/v2/models/fmnist/infer", InferBody(one, 1), "application/json");
        if (!res || res->status != 200) {
          ++failed;
          continue;
        }
        const std::vector<float> want(expected.begin() + image * 10, expected.begin() + (image + 1) * 10);
        if (MaxAbsDifference(Output(json::parse(res->body), "logits"), want) > 1e-4) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(wrong, 0);
  auto metrics = Client(server)->Get("/metrics");
  ASSERT_TRUE(metrics);
  // Passes of one example are the le="1" bucket; fewer passes than requests
  // means some ran several requests together.
  auto value = [&](const std::string& key) {
    const size_t at = metrics->body.find("\n" + key + " ");
    return at == std::string::npos ? -1.0 : std::atof(metrics->body.c_str() + at + key.size() + 2);
  };
  const double passes = value("tessera_serve_batch_size_count"), single = value("tessera_serve_batch_size_bucket{le=\"1\"}");
  EXPECT_EQ(value("tessera_serve_examples_total"), kThreads * kRequests);
  EXPECT_LT(passes, kThreads * kRequests) << metrics->body;
  EXPECT_LT(single, passes) << "no pass ran more than one example:\n" << metrics->body;
  EXPECT_EQ(value("tessera_serve_batch_size_bucket{le=\"16\"}"), passes) << "a pass above --max-batch-size";
}

// A port another server holds is refused (httplib's SO_REUSEPORT let a
// second server share it behind the first one's back), and the listening
// socket's backlog is widened from httplib's 5, which a burst of new
// connections overflowed (ConcurrentRequestsAreBatchedAndAllRight lost some).
TEST_F(ServeTest, ATakenPortIsRefusedAndTheBacklogIsWide) {
  const std::string repo = NewRepo();
  Server server = StartServer({"--model-repo", repo});
  ASSERT_GT(server.port, 0);
  CommandResult second = RunTessera({"serve", "--model-repo", repo, "--port", std::to_string(server.port)}, 60);
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_NE(second.output.find("cannot listen on 127.0.0.1:" + std::to_string(server.port)), std::string::npos)
      << second.output;

  // /proc/net/tcp has no backlog; ss (iproute2) shows it as a listener's Send-Q.
  if (std::system("command -v ss > /dev/null 2>&1") != 0) GTEST_SKIP() << "ss (iproute2) is not installed";
  const std::string out = MakeTempDir("serve-ss") + "/ss.txt";
  ASSERT_EQ(std::system(("ss -ltnH 'sport = :" + std::to_string(server.port) + "' > " + out).c_str()), 0);
  std::istringstream line(ReadFileToString(out).value());
  std::string state, recv_q, send_q;
  line >> state >> recv_q >> send_q;
  EXPECT_EQ(state, "LISTEN");
  EXPECT_GE(std::atoi(send_q.c_str()), 128) << ReadFileToString(out).value();
}

TEST(ServeCommandTest, BadFlagsAndRepositoriesAreOneLineAndExit2) {
  const std::string empty = MakeTempDir("serve-empty");
  const std::string broken = MakeTempDir("serve-broken");
  ASSERT_OK(MakeDirs(broken + "/m/1"));
  std::ofstream(broken + "/m/1/model.onnx") << "not a model";
  std::ofstream(broken + "/m/1/manifest.json") << "{\"format\": \"tessera-model\"}";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"serve"}, "--model-repo DIR is required"},
      {{"serve", "--model-repo", empty + "/nowhere"}, "is not a directory"},
      {{"serve", "--model-repo", empty}, "no model in"},
      {{"serve", "--model-repo", broken}, "no model loads from"},
      {{"serve", "--model-repo", empty, "--max-batch-size", "0"}, "--max-batch-size must be >= 1"},
      {{"serve", "--model-repo", empty, "--max-batch-delay-ms", "-1"}, "--max-batch-delay-ms"},
      {{"serve", "--model-repo", empty, "--port", "70000"}, "--port must be in"},
      {{"serve", "--model-repo", empty, "--bogus"}, "unknown flag --bogus"},
      {{"serve", "--model-repo", empty, "extra"}, "unexpected argument"},
      {{"serve", "--model-repo", empty, "--device", "tpu"}, "--device must be auto, cpu or cuda"},
      {{"serve", "--model-repo", empty, "--max-request-bytes", "0"}, "--max-request-bytes must be >= 1"},
      {{"serve", "--model-repo", empty, "--max-request-bytes", "100", "--max-inflight-bytes", "99"},
       "--max-inflight-bytes must be >= --max-request-bytes (100), got 99"},
      {{"serve", "--model-repo", empty, "--header-timeout-ms", "0"}, "--header-timeout-ms must be >= 1"},
  };
  std::vector<std::pair<std::vector<std::string>, std::string>> all = cases;
  if (!CudaAvailable()) all.push_back({{"serve", "--model-repo", empty, "--device", "cuda"}, "--device=cuda: "});
  for (const auto& [args, needle] : all) {
    CommandResult r = RunTessera(args, 60);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find("tessera serve: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
  }
  CommandResult help = RunTessera({"serve", "--help"}, 60);
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--model-repo", "--port", "--host", "--max-batch-size", "--max-batch-delay-ms",
                           "--poll-interval-ms", "--http-threads", "--max-request-bytes", "--max-inflight-bytes",
                           "--header-timeout-ms", "--body-timeout-ms", "--device"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace tessera
