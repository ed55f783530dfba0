// An embedding model the whole way after training: a tiny job on ids (its
// own IDX files, raw bytes fed as ids by data { mean: 0 std: 1/255 }),
// exported by the real binary as fp32, fp16 and int8 (the embedding stays
// float), pruned unstructured (the embedding left alone) and refused by
// structured pruning; imported back into the same layers and logits; served
// (a value that is not an id is a 400 and the server stays up); predicted
// (such a value is one line, exit 2, and no output file). Malformed variants
// of the Round, Cast, Gather pattern are refused with a message.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/dataset.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "export/runtime_model.h"
#include "models/model.h"
#include "tests/test_util.h"
#include "tools/child_process.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kRows = 16;      // num_embeddings
constexpr int kDim = 4;        // embedding_dim
constexpr int kFeatures = 6;   // ids per example
constexpr int kTrain = 256, kTest = 64;
const Shape kInput = {1, 1, kFeatures};

constexpr char kLayers[] = R"(
  layer { embedding { num_embeddings: 16 embedding_dim: 4 } }
  layer { linear { out_features: 12 } }
  layer { relu {} }
  layer { linear { out_features: 10 } }
)";

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// count examples of kFeatures ids in [0, kRows); the label is the first id mod 10.
void MakeIds(int count, uint32_t seed, std::vector<uint8_t>* ids, std::vector<uint8_t>* labels) {
  ids->clear();
  labels->clear();
  uint64_t state = seed;
  for (int e = 0; e < count; ++e) {
    for (int f = 0; f < kFeatures; ++f) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      ids->push_back(static_cast<uint8_t>((state >> 33) % kRows));
    }
    labels->push_back(static_cast<uint8_t>((*ids)[e * kFeatures] % 10));
  }
}

// Logits of a Model built from spec and params for x [n, kFeatures] (ids as floats).
std::vector<float> Logits(Model* model, const std::vector<float>& x, int64_t n) {
  const float* logits = model->Infer(x.data(), n);
  EXPECT_NE(logits, nullptr);
  return logits == nullptr ? std::vector<float>() : std::vector<float>(logits, logits + n * 10);
}

double MaxAbsDifference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst;
}

std::vector<float> InitialParams(const proto::ModelSpec& spec) {
  auto model = Model::Create(spec, kInput, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  std::vector<float> params((*model)->num_keys());
  InitializeParameters((*model)->tensors(), 11, params.data());
  return params;
}

// --- the ONNX pattern, without processes ---

TEST(EmbeddingOnnxTest, ExportImportRoundTripGivesIdenticalLogits) {
  const proto::ModelSpec spec = ParseModel(kLayers);
  const std::vector<float> params = InitialParams(spec);
  // Ties (half to even), values near the ends, -0.4 (id 0) and 15.4 (id 15).
  const std::vector<float> x = {0, 15, 2.5f, 3.5f, 0.49f, 14.6f, 7.5f, 8.5f, 1.5f, 0.5f, 12.4999f, 9,
                                -0.4f, 15.4f, 4, 5, 6, 11.5f};
  for (bool fp16 : {false, true}) {
    SCOPED_TRACE(fp16 ? "fp16" : "fp32");
    OnnxExportOptions options;
    options.fp16_weights = fp16;
    auto onnx = BuildOnnxModel(spec, kInput, 10, params.data(), params.size(), options);
    ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
    auto imported = ImportOnnxBytes(SerializeOnnxModel(*onnx).value());
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    EXPECT_EQ(imported->input_shape, kInput);
    EXPECT_EQ(imported->num_classes, 10);
    EXPECT_EQ(imported->precision, fp16 ? "fp16" : "fp32");
    ASSERT_EQ(imported->spec.layer_size(), spec.layer_size());
    ASSERT_TRUE(imported->spec.layer(0).has_embedding());
    EXPECT_EQ(imported->spec.layer(0).embedding().num_embeddings(), kRows);
    EXPECT_EQ(imported->spec.layer(0).embedding().embedding_dim(), kDim);
    for (int i = 1; i < spec.layer_size(); ++i) EXPECT_EQ(imported->spec.layer(i).kind_case(), spec.layer(i).kind_case());
    std::vector<float> want = params;
    if (fp16) {
      for (float& v : want) v = static_cast<float>(static_cast<_Float16>(v));
    }
    EXPECT_EQ(imported->params, want);
    // The runtime model (what serve and predict run) gives bit for bit the
    // logits of the original layers with those parameters.
    auto runtime = BuildRuntimeModel(*imported);
    ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
    auto original = Model::Create(spec, kInput, 10);
    ASSERT_TRUE(original.ok());
    std::copy(want.begin(), want.end(), (*original)->params());
    EXPECT_EQ(Logits(runtime->get(), x, 3), Logits(original->get(), x, 3));
    // Only ids are taken.
    EXPECT_OK((*runtime)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())));
    for (float bad : {16.0f, -0.6f, 15.5f, NAN, 1e9f}) {
      const Status s = (*runtime)->ValidateInputValues(&bad, 1);
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(EmbeddingOnnxTest, MalformedEmbeddingGraphsAreRefusedWithAMessage) {
  const proto::ModelSpec spec = ParseModel(kLayers);
  const std::vector<float> params = InitialParams(spec);
  const onnx::ModelProto good = BuildOnnxModel(spec, kInput, 10, params.data(), params.size(), OnnxExportOptions()).value();
  ASSERT_EQ(good.graph().node(0).op_type(), "Round");
  ASSERT_EQ(good.graph().node(1).op_type(), "Cast");
  ASSERT_EQ(good.graph().node(2).op_type(), "Gather");
  auto refused = [](const onnx::ModelProto& m, const std::string& needle) {
    auto r = ImportOnnxModel(m);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  auto set_int = [](onnx::NodeProto* node, const std::string& name, int64_t value) {
    for (auto& a : *node->mutable_attribute()) {
      if (a.name() == name) a.set_i(value);
    }
  };
  {  // ids cast to int32: valid ONNX, not Tessera's form
    onnx::ModelProto m = good;
    set_int(m.mutable_graph()->mutable_node(1), "to", onnx::TensorProto::INT32);
    refused(m, "must be cast to int64");
  }
  {  // gathering along axis 1
    onnx::ModelProto m = good;
    set_int(m.mutable_graph()->mutable_node(2), "axis", 1);
    refused(m, "");
  }
  {  // no Round: the Cast alone would truncate
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node(1)->set_input(0, "input");
    m.mutable_graph()->mutable_node()->DeleteSubrange(0, 1);
    refused(m, "a Cast in the chain");
  }
  {  // Round feeding something else than the Cast
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node(1)->set_op_type("Floor");
    m.mutable_graph()->mutable_node(1)->clear_attribute();
    refused(m, "Gather");  // ONNX's checker: float indices
  }
  {  // the weight and the ids swapped
    onnx::ModelProto m = good;
    onnx::NodeProto* gather = m.mutable_graph()->mutable_node(2);
    const std::string weight = gather->input(0);
    gather->set_input(0, gather->input(1));
    gather->set_input(1, weight);
    refused(m, "");
  }
  {  // a Gather without the Round and Cast: not an embedding
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node(2)->set_input(1, "input");
    m.mutable_graph()->mutable_node()->DeleteSubrange(0, 2);
    refused(m, "");
  }
  {  // a weight of the wrong rank
    onnx::ModelProto m = good;
    onnx::TensorProto* w = m.mutable_graph()->mutable_initializer(0);
    ASSERT_EQ(w->name(), "layer0.embedding.weight");
    w->clear_dims();
    w->add_dims(kRows * kDim);
    refused(m, "");
  }
  {  // the table of another width than the next layer takes
    onnx::ModelProto m = good;
    onnx::TensorProto* w = m.mutable_graph()->mutable_initializer(0);
    w->set_dims(0, kRows * 2);
    w->set_dims(1, kDim / 2);
    refused(m, "");
  }
}

// --- the commands, on a real (tiny) training run ---

class EmbeddingServingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("embedding"));
    const std::string data = *dir_ + "/data";
    ASSERT_OK(MakeDirs(data));
    std::vector<uint8_t> ids, labels;
    MakeIds(kTrain, 1, &ids, &labels);
    ASSERT_OK(WriteIdxFile(data + "/train-images", {kTrain, 1, kFeatures}, ids));
    ASSERT_OK(WriteIdxFile(data + "/train-labels", {kTrain}, labels));
    MakeIds(kTest, 2, &ids, &labels);
    ASSERT_OK(WriteIdxFile(data + "/test-images", {kTest, 1, kFeatures}, ids));
    ASSERT_OK(WriteIdxFile(data + "/test-labels", {kTest}, labels));
    test_ids_ = new std::vector<uint8_t>(ids);
    std::ofstream(*dir_ + "/spec.pbtxt") << "name: \"ids\"\nmodel {" << kLayers << "}\n"
                                          << "data { dir: \"" << data
                                          << "\" train_images: \"train-images\" train_labels: \"train-labels\" "
                                             "test_images: \"test-images\" test_labels: \"test-labels\" "
                                             "mean: 0 std: 0.003921569 }\n"
                                             "cluster { servers: 1 workers: 1 }\n"
                                             "optimizer { type: SGD learning_rate: 0.1 momentum: 0.9 }\n"
                                             "batch_size: 16\nepochs: 1\n";
    run_ = new std::string(*dir_ + "/run");
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *run_, "--threads", "1", "--progress",
                                  "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    CommandResult e = RunTessera({"export", *run_, "--out", Repo() + "/ids"});
    ASSERT_EQ(e.exit_code, 0) << e.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete run_;
    delete test_ids_;
  }

  static std::string Repo() { return *dir_ + "/repo"; }
  static std::string Version1() { return Repo() + "/ids/1"; }

  // The first n test examples as model inputs: ids as floats (mean 0, std 1/255).
  static std::vector<float> TestInputs(int64_t n) {
    return std::vector<float>(test_ids_->begin(), test_ids_->begin() + n * kFeatures);
  }

  static std::string* dir_;
  static std::string* run_;
  static std::vector<uint8_t>* test_ids_;
};

std::string* EmbeddingServingTest::dir_ = nullptr;
std::string* EmbeddingServingTest::run_ = nullptr;
std::vector<uint8_t>* EmbeddingServingTest::test_ids_ = nullptr;

TEST_F(EmbeddingServingTest, TheExportReadsBackAsTheTrainedModel) {
  const json manifest = json::parse(FileText(Version1() + "/manifest.json"));
  const json summary = json::parse(FileText(*run_ + "/summary.json"));
  EXPECT_EQ(manifest["params_sha256"], summary["params_sha256"]);
  EXPECT_NEAR(manifest["test_accuracy"].get<double>(), summary["test_accuracy"].get<double>(), 1e-9);
  auto files = ReadModelVersion(Version1());
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_TRUE(files->model.spec.layer(0).has_embedding());
  EXPECT_EQ(files->model.input_shape, kInput);
  auto runtime = BuildRuntimeModel(files->model);
  ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
  auto spec = ParseJobSpec(FileText(*run_ + "/spec.pbtxt"), "spec");
  ASSERT_TRUE(spec.ok());
  auto original = Model::Create(spec->model(), kInput, 10);
  ASSERT_TRUE(original.ok());
  ASSERT_EQ((*original)->num_keys(), files->model.params.size());
  std::copy(files->model.params.begin(), files->model.params.end(), (*original)->params());
  EXPECT_EQ(ParamsSha256((*original)->params(), (*original)->num_keys()), summary["params_sha256"].get<std::string>());
  const std::vector<float> x = TestInputs(8);
  EXPECT_EQ(Logits(runtime->get(), x, 8), Logits(original->get(), x, 8));
}

TEST_F(EmbeddingServingTest, QuantizationKeepsTheEmbeddingFloat) {
  const std::string model_dir = MakeTempDir("embedding-quantized") + "/ids";
  CommandResult int8 = RunTessera({"export", *run_, "--out", model_dir, "--quantize", "int8", "--calibration-batches", "2"});
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  EXPECT_NE(int8.output.find("quantized 2 layers to int8"), std::string::npos) << int8.output;
  CommandResult fp16 = RunTessera({"export", *run_, "--out", model_dir, "--quantize", "fp16"});
  ASSERT_EQ(fp16.exit_code, 0) << fp16.output;

  auto float_files = ReadModelVersion(Version1());
  ASSERT_TRUE(float_files.ok());
  auto float_model = BuildRuntimeModel(float_files->model);
  ASSERT_TRUE(float_model.ok());
  const std::vector<float> x = TestInputs(16);
  const std::vector<float> float_logits = Logits(float_model->get(), x, 16);
  for (const auto& [version, precision] : {std::pair<std::string, std::string>{"1", "int8"}, {"2", "fp16"}}) {
    SCOPED_TRACE(precision);
    auto files = ReadModelVersion(model_dir + "/" + version);
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    EXPECT_EQ(files->model.precision, precision);
    const proto::ModelSpec& spec = files->model.spec;
    ASSERT_EQ(spec.layer_size(), 4);
    ASSERT_TRUE(spec.layer(0).has_embedding());
    EXPECT_EQ(spec.layer(1).linear().has_int8(), precision == "int8");
    EXPECT_EQ(spec.layer(3).linear().has_int8(), precision == "int8");
    // The table: the float one (fp16: rounded to float16).
    for (int64_t k = 0; k < kRows * kDim; ++k) {
      const float want = float_files->model.params[k];
      EXPECT_EQ(files->model.params[k], precision == "fp16" ? static_cast<float>(static_cast<_Float16>(want)) : want);
    }
    auto model = BuildRuntimeModel(files->model);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    EXPECT_LT(MaxAbsDifference(Logits(model->get(), x, 16), float_logits), precision == "int8" ? 0.1 : 0.01);
  }
}

TEST_F(EmbeddingServingTest, StructuredPruningRefusesAndUnstructuredLeavesTheEmbedding) {
  const std::string repo = MakeTempDir("embedding-pruned");
  CommandResult structured = RunTessera({"export", *run_, "--out", repo + "/s", "--prune-sparsity", "0.5",
                                         "--prune-mode", "structured"});
  EXPECT_EQ(structured.exit_code, 2) << structured.output;
  EXPECT_EQ(Lines(structured.output), 1) << structured.output;
  EXPECT_NE(structured.output.find("structured pruning does not support embedding models"), std::string::npos)
      << structured.output;
  EXPECT_FALSE(fs::exists(repo + "/s/1"));

  CommandResult unstructured = RunTessera({"export", *run_, "--out", repo + "/u", "--prune-sparsity", "0.5"});
  ASSERT_EQ(unstructured.exit_code, 0) << unstructured.output;
  auto before = ReadModelVersion(Version1());
  auto after = ReadModelVersion(repo + "/u/1");
  ASSERT_TRUE(before.ok() && after.ok());
  ASSERT_EQ(before->model.params.size(), after->model.params.size());
  // The table is unchanged; half of the Linear weights (12*24 + 10*12) are 0.
  const int64_t table = kRows * kDim;
  EXPECT_TRUE(std::equal(after->model.params.begin(), after->model.params.begin() + table, before->model.params.begin()));
  const json manifest = json::parse(FileText(repo + "/u/1/manifest.json"));
  EXPECT_EQ(manifest["pruning_details"]["weights_before"].get<int64_t>(), 12 * kFeatures * kDim + 10 * 12);
  EXPECT_EQ(manifest["pruning_details"]["requested_sparsity"].get<double>(), 0.5);
  EXPECT_EQ(manifest["pruning"], "unstructured");
}

TEST_F(EmbeddingServingTest, ServeRefusesAValueThatIsNotAnIdAndStaysUp) {
  ServeProcess serve = StartServe({"--model-repo", Repo()});
  ASSERT_GT(serve.port, 0);
  const int port = serve.port;
  std::unique_ptr<ChildProcess>& server = serve.process;
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);

  auto files = ReadModelVersion(Version1());
  ASSERT_TRUE(files.ok());
  auto runtime = BuildRuntimeModel(files->model);
  ASSERT_TRUE(runtime.ok());
  constexpr int64_t kN = 3;
  const std::vector<float> x = TestInputs(kN);
  const std::vector<float> expected = Logits(runtime->get(), x, kN);
  auto body = [&](const json& data, const std::string& datatype) {
    const json request = {
        {"inputs", {{{"name", "input"}, {"shape", {kN, 1, 1, kFeatures}}, {"datatype", datatype}, {"data", data}}}}};
    return request.dump();
  };
  auto logits_of = [](const std::string& response) {
    const json parsed = json::parse(response);
    for (const json& o : parsed["outputs"]) {
      if (o["name"] == "logits") return o["data"].get<std::vector<float>>();
    }
    return std::vector<float>();
  };
  std::vector<uint8_t> bytes(test_ids_->begin(), test_ids_->begin() + kN * kFeatures);
  auto good = client.Post("/v2/models/ids/infer", body(x, "FP32"), "application/json");
  ASSERT_TRUE(good);
  ASSERT_EQ(good->status, 200) << good->body;
  EXPECT_LT(MaxAbsDifference(logits_of(good->body), expected), 1e-5);
  auto pixels = client.Post("/v2/models/ids/infer", body(bytes, "UINT8"), "application/json");
  ASSERT_TRUE(pixels);
  ASSERT_EQ(pixels->status, 200) << pixels->body;
  EXPECT_LT(MaxAbsDifference(logits_of(pixels->body), expected), 1e-5);

  for (const auto& [value, datatype] : std::vector<std::pair<json, std::string>>{
           {16, "FP32"}, {-1, "FP32"}, {15.7, "FP32"}, {1e9, "FP32"}, {200, "UINT8"}}) {
    SCOPED_TRACE(value.dump() + " " + datatype);
    json data = datatype == "FP32" ? json(x) : json(bytes);
    data[7] = value;
    auto res = client.Post("/v2/models/ids/infer", body(data, datatype), "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 400) << res->body;
    EXPECT_EQ(Lines(res->body), 0) << res->body;
    const json error = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(error.is_object() && error.contains("error")) << res->body;
    EXPECT_NE(error["error"].get<std::string>().find("is not an id in [0, 16)"), std::string::npos) << res->body;
  }
  // Still up, still right.
  auto again = client.Post("/v2/models/ids/infer", body(x, "FP32"), "application/json");
  ASSERT_TRUE(again);
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_LT(MaxAbsDifference(logits_of(again->body), expected), 1e-5);
  EXPECT_FALSE(server->Poll().has_value());
  kill(server->pid(), SIGTERM);
  server->Wait(10000);
}

TEST_F(EmbeddingServingTest, PredictRefusesAValueThatIsNotAnIdWithNothingWritten) {
  const std::string dir = MakeTempDir("embedding-predict");
  std::vector<uint8_t> ids(test_ids_->begin(), test_ids_->begin() + 8 * kFeatures);
  ASSERT_OK(WriteIdxFile(dir + "/good-idx3-ubyte", {8, 1, kFeatures}, ids));
  ids[3 * kFeatures + 2] = 20;  // image 3
  ASSERT_OK(WriteIdxFile(dir + "/bad-idx3-ubyte", {8, 1, kFeatures}, ids));
  const std::string out = dir + "/out/predictions.csv";
  ASSERT_OK(MakeDirs(dir + "/out"));

  for (const char* workers : {"1", "2"}) {
    SCOPED_TRACE(workers);
    CommandResult bad = RunTessera({"predict", Repo() + "/ids", dir + "/bad-idx3-ubyte", "--out", out, "--workers",
                                    workers, "--batch-size", "2"});
    EXPECT_EQ(bad.exit_code, 2) << bad.output;
    EXPECT_EQ(Lines(bad.output), 1) << bad.output;
    EXPECT_NE(bad.output.find("image 3 holds the value 20"), std::string::npos) << bad.output;
    EXPECT_NE(bad.output.find("is not an id in [0, 16)"), std::string::npos) << bad.output;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::is_empty(dir + "/out")) << "nothing may be left behind";
  }

  CommandResult good = RunTessera({"predict", Repo() + "/ids", dir + "/good-idx3-ubyte", "--out", out});
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_EQ(Lines(FileText(out)), 1 + 8);
}

}  // namespace
}  // namespace tessera
