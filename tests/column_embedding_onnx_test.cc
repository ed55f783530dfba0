// A column_embedding model (categorical columns) through ONNX, without
// processes: exported as Slices, Round, Cast, an Add of each column's row
// offset, Gather, Flatten and Concat, which ONNX's checker passes; imported
// back into the same layers, tables and parameters, whose runtime model
// (what serve and predict run) gives the original's logits bit for bit, with
// and without numeric features, fp32 and fp16 weights; and malformed
// variants of the pattern (a wrong offset initializer, a missing node, ...)
// refused in one message naming the node.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/spec.h"
#include "export/onnx_export.h"
#include "export/onnx_import.h"
#include "export/runtime_model.h"
#include "models/model.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

const std::vector<int64_t> kRows = {5, 8, 3};  // each categorical column's ids
constexpr int kDim = 3;
constexpr int kClasses = 4;

constexpr char kLayers[] = R"(
  layer { column_embedding { embedding_dim: 3 } }
  layer { linear { out_features: 6 } }
  layer { relu {} }
  layer { linear { out_features: 4 } }
)";

Shape InputShape(int numeric) { return {numeric + static_cast<int64_t>(kRows.size())}; }

std::unique_ptr<Model> OriginalModel(int numeric) {
  auto model = Model::Create(ParseModel(kLayers), InputShape(numeric), kClasses, Device::kCpu, kRows);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

std::vector<float> InitialParams(int numeric) {
  std::unique_ptr<Model> model = OriginalModel(numeric);
  std::vector<float> params(model->num_keys());
  InitializeParameters(model->tensors(), 5, params.data());
  return params;
}

// n examples: numeric features in [-2, 2), then one valid id per column
// (every id of every column appears over the batch).
std::vector<float> Examples(int numeric, int n) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> value(-2, 2);
  std::vector<float> x;
  for (int e = 0; e < n; ++e) {
    for (int f = 0; f < numeric; ++f) x.push_back(value(rng));
    for (int64_t rows : kRows) x.push_back(static_cast<float>(e % rows));
  }
  return x;
}

std::vector<float> Logits(Model* model, const std::vector<float>& x, int64_t n) {
  const float* logits = model->Infer(x.data(), n);
  EXPECT_NE(logits, nullptr);
  return logits == nullptr ? std::vector<float>() : std::vector<float>(logits, logits + n * kClasses);
}

onnx::ModelProto Exported(int numeric, const std::vector<float>& params, bool fp16 = false) {
  OnnxExportOptions options;
  options.fp16_weights = fp16;
  options.categorical_rows = kRows;
  auto model =
      BuildOnnxModel(ParseModel(kLayers), InputShape(numeric), kClasses, params.data(), params.size(), options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : onnx::ModelProto();
}

std::vector<std::string> Ops(const onnx::ModelProto& model) {
  std::vector<std::string> ops;
  for (const onnx::NodeProto& node : model.graph().node()) {
    if (node.op_type() != "Cast" || !node.input(0).ends_with("_fp16")) ops.push_back(node.op_type());
  }
  return ops;
}

TEST(ColumnEmbeddingOnnxTest, ExportImportRoundTripGivesIdenticalLogits) {
  constexpr int kBatch = 9;
  for (int numeric : {2, 0}) {
    for (bool fp16 : {false, true}) {
      SCOPED_TRACE(std::to_string(numeric) + " numeric features, " + (fp16 ? "fp16" : "fp32"));
      const std::vector<float> params = InitialParams(numeric);
      const onnx::ModelProto onnx = Exported(numeric, params, fp16);
      ASSERT_OK(CheckOnnxModel(onnx));
      const std::vector<std::string> head = {"Slice", "Round", "Cast", "Add", "Gather", "Flatten"};
      std::vector<std::string> want = numeric > 0 ? std::vector<std::string>{"Slice"} : std::vector<std::string>{};
      want.insert(want.end(), head.begin(), head.end());
      if (numeric > 0) want.push_back("Concat");
      for (const char* op : {"Gemm", "Relu", "Gemm", "Softmax"}) want.push_back(op);
      EXPECT_EQ(Ops(onnx), want);

      auto imported = ImportOnnxBytes(SerializeOnnxModel(onnx).value());
      ASSERT_TRUE(imported.ok()) << imported.status().ToString();
      EXPECT_EQ(imported->input_shape, InputShape(numeric));
      EXPECT_EQ(imported->categorical_rows, kRows);
      EXPECT_EQ(imported->num_classes, kClasses);
      ASSERT_EQ(imported->spec.layer_size(), 4);
      ASSERT_TRUE(imported->spec.layer(0).has_column_embedding());
      EXPECT_EQ(imported->spec.layer(0).column_embedding().embedding_dim(), kDim);
      std::vector<float> expected_params = params;
      if (fp16) {
        for (float& v : expected_params) v = static_cast<float>(static_cast<_Float16>(v));
      }
      EXPECT_EQ(imported->params, expected_params);

      auto runtime = BuildRuntimeModel(*imported);
      ASSERT_TRUE(runtime.ok()) << runtime.status().ToString();
      std::unique_ptr<Model> original = OriginalModel(numeric);
      std::copy(expected_params.begin(), expected_params.end(), original->params());
      const std::vector<float> x = Examples(numeric, kBatch);
      EXPECT_EQ(Logits(runtime->get(), x, kBatch), Logits(original.get(), x, kBatch));
      // Only each column's ids are taken in the ids' places.
      EXPECT_OK((*runtime)->ValidateInputValues(x.data(), static_cast<int64_t>(x.size())));
      std::vector<float> bad = Examples(numeric, 1);
      bad[numeric + 2] = 3;  // the third column has ids 0..2
      EXPECT_EQ((*runtime)->ValidateInputValues(bad.data(), static_cast<int64_t>(bad.size())).code(),
                StatusCode::kInvalidArgument);
    }
  }
}

onnx::NodeProto* NodeNamed(onnx::ModelProto* m, const std::string& name) {
  for (onnx::NodeProto& node : *m->mutable_graph()->mutable_node()) {
    if (node.name() == name) return &node;
  }
  ADD_FAILURE() << "no node " << name;
  return nullptr;
}

int NodeIndex(const onnx::ModelProto& m, const std::string& name) {
  for (int i = 0; i < m.graph().node_size(); ++i) {
    if (m.graph().node(i).name() == name) return i;
  }
  return -1;
}

void SetInt64s(onnx::ModelProto* m, const std::string& initializer, const std::vector<int64_t>& values) {
  for (onnx::TensorProto& t : *m->mutable_graph()->mutable_initializer()) {
    if (t.name() != initializer) continue;
    t.set_dims(0, static_cast<int64_t>(values.size()));
    t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
    return;
  }
  ADD_FAILURE() << "no initializer " << initializer;
}

// The nodes `first` .. `first + count - 1` left out, the node after them reading `reads` as its input `input`.
void DropNodes(onnx::ModelProto* m, int first, int count, int input, const std::string& reads) {
  m->mutable_graph()->mutable_node(first + count)->set_input(input, reads);
  m->mutable_graph()->mutable_node()->DeleteSubrange(first, count);
}

TEST(ColumnEmbeddingOnnxTest, MalformedPatternsAreRefusedNamingTheNode) {
  const std::vector<float> params = InitialParams(2);
  const onnx::ModelProto good = Exported(2, params);
  ASSERT_TRUE(ImportOnnxModel(good).ok());
  const std::string name = "layer0.column_embedding";
  auto refused = [](const onnx::ModelProto& m, const std::string& needle) {
    auto r = ImportOnnxModel(m);
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  };
  const std::string add_where =
      "node " + std::to_string(NodeIndex(good, name + ".rows")) + " (Add '" + name + ".rows')";
  {  // the second column's table starts inside the first's
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".row_offsets", {0, 4, 13});
    auto r = ImportOnnxModel(m);  // rows 4, 9, 3: a layout, but not the spec's: the manifest's check catches it
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->categorical_rows, (std::vector<int64_t>{4, 9, 3}));
  }
  {  // the first offset is not 0
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".row_offsets", {1, 5, 13});
    refused(m, add_where + ": the first column's row offset must be 0");
  }
  {  // offsets that fall
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".row_offsets", {0, 13, 5});
    refused(m, add_where + ": column 1's table, rows [13, 5) of the weight's 16, must hold 1 to 2^24 rows");
  }
  {  // an offset far below: no overflow, refused
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".row_offsets", {0, 5, std::numeric_limits<int64_t>::min()});
    refused(m, add_where + ": column 1's table, rows [5, -9223372036854775808)");
  }
  {  // an offset past the weight's rows
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".row_offsets", {0, 5, 16});
    refused(m, add_where + ": column 2's table, rows [16, 16) of the weight's 16");
  }
  {  // the offsets as floats: Add would then mix types (the checker), or be no offset at all
    onnx::ModelProto m = good;
    for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.name() == name + ".row_offsets") t.set_data_type(onnx::TensorProto::INT32);
    }
    refused(m, "");
  }
  {  // a missing Round: the Cast would truncate
    onnx::ModelProto m = good;
    const int round = NodeIndex(m, name + ".round");
    DropNodes(&m, round, 1, 0, m.graph().node(round - 1).output(0));
    refused(m, "a column_embedding's Round must follow node 1 (Slice '" + name + ".id_values')");
  }
  {  // a missing Add: ids of every column read from the first table
    onnx::ModelProto m = good;
    const int add = NodeIndex(m, name + ".rows");
    DropNodes(&m, add, 1, 1, m.graph().node(add - 1).output(0));
    refused(m, "a column_embedding's Add must follow");
  }
  {  // a missing numeric Slice: the Concat would read nothing
    onnx::ModelProto m = good;
    m.mutable_graph()->mutable_node()->DeleteSubrange(0, 1);
    refused(m, "");
  }
  {  // slicing the batch axis
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".id_values.axes", {0});
    refused(m, "");
  }
  {  // the ids' Slice leaving out the first id column
    onnx::ModelProto m = good;
    SetInt64s(&m, name + ".numeric.ends", {3});
    refused(m, "");
  }
  {  // a Concat in the other order
    onnx::ModelProto m = good;
    onnx::NodeProto* concat = NodeNamed(&m, name);
    const std::string first = concat->input(0);
    concat->set_input(0, concat->input(1));
    concat->set_input(1, first);
    refused(m, "");
  }
  {  // a weight of another width than the Linear after it takes
    onnx::ModelProto m = good;
    for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.name() != name + ".weight") continue;
      t.set_dims(0, 24);
      t.set_dims(1, 2);
    }
    refused(m, "");
  }
}

// The importer is a decoder of untrusted bytes: a truncated model or one
// with bytes changed at random is refused (or, when it still reads as this
// very pattern, imported), never a crash.
TEST(ColumnEmbeddingOnnxTest, RandomAndTruncatedBytesNeverCrash) {
  const std::string bytes = SerializeOnnxModel(Exported(2, InitialParams(2))).value();
  for (size_t cut = 0; cut < bytes.size(); cut += 7) (void)ImportOnnxBytes(bytes.substr(0, cut));
  std::mt19937 rng(17);
  int refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string spoiled = bytes;
    for (int k = 0; k < 3; ++k) spoiled[rng() % spoiled.size()] = static_cast<char>(rng());
    refused += !ImportOnnxBytes(spoiled).ok();
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace tessera
