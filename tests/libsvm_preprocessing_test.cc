// What a libsvm model's export records of its input (the manifest's
// "libsvm" preprocessing) and how predict and serve apply it: the manifest
// round trips and every bad field is named; a line's features become the
// pairs training's reader makes (LibsvmBlock::WriteExample), and every line
// training refuses is refused; serve's "indices" and "values" inputs become
// the same pairs, and every bad input is one line naming it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/libsvm_data.h"
#include "export/input_transform.h"
#include "export/model_preprocessing.h"
#include "export/model_repository_layout.h"
#include "serve/raw_inputs.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using nlohmann::json;

ModelPreprocessing LibsvmExample() {
  ModelPreprocessing p;
  p.kind = InputKind::kLibsvm;
  p.task = Task::kBinary;
  p.class_names = {"no", "yes"};
  p.libsvm.num_features = 10;
  p.libsvm.index_base = 1;
  p.libsvm.pairs = 3;
  p.libsvm.signed_binary = true;
  return p;
}

std::string ManifestWith(const ModelPreprocessing& p) {
  ModelManifest m;
  m.name = "m";
  m.version = 1;
  m.preprocessing = p;
  return ManifestJson(m);
}

TEST(LibsvmPreprocessingTest, TheManifestRoundTripsAndFitsOnlyItsModel) {
  auto read = ParseManifestPreprocessing(ManifestWith(LibsvmExample()), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->kind, InputKind::kLibsvm);
  EXPECT_EQ(read->libsvm.num_features, 10);
  EXPECT_EQ(read->libsvm.index_base, 1);
  EXPECT_EQ(read->libsvm.pairs, 3);
  EXPECT_TRUE(read->libsvm.signed_binary);
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {6}, 1, {}, "manifest.json", /*sparse_features=*/10));
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {8}, 1, {}, "manifest.json", 10).ok());  // 4 pairs
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {6}, 1, {}, "manifest.json", 11).ok());  // 11 features
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {6}, 1, {}, "manifest.json", 0).ok());   // no sparse_linear
  ModelPreprocessing table;
  table.kind = InputKind::kTable;
  table.table.columns = {{"a", "numeric", 0, 0, 1}, {"b", "numeric", 0, 0, 1}};
  auto refused = CheckPreprocessingFitsModel(table, {2}, 3, {}, "manifest.json", 10);  // a sparse_linear model
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("not \"libsvm\""), std::string::npos) << refused.message();
}

TEST(LibsvmPreprocessingTest, EachBadFieldIsNamed) {
  const std::vector<std::pair<std::function<void(json*)>, std::string>> cases = {
      {[](json* m) { (*m)["preprocessing"]["num_features"] = 0; }, "'num_features' must be in [1, 16777216], got 0"},
      {[](json* m) { (*m)["preprocessing"]["num_features"] = 1 << 25; }, "'num_features' must be in [1, 16777216]"},
      {[](json* m) { (*m)["preprocessing"]["index_base"] = 2; }, "'index_base' must be in [0, 1], got 2"},
      {[](json* m) { (*m)["preprocessing"]["pairs"] = "3"; }, "'pairs' must be an integer"},
      {[](json* m) { (*m)["preprocessing"]["pairs"] = (1 << 20) + 1; }, "'pairs' must be in [1, 1048576]"},
      {[](json* m) { (*m)["preprocessing"]["labels"] = "ranks"; }, "'labels' must be \"class_ids\" or"},
      {[](json* m) { (*m)["preprocessing"].erase("index_base"); }, "'index_base' must be an integer"},
  };
  for (const auto& [spoil, needle] : cases) {
    json m = json::parse(ManifestWith(LibsvmExample()));
    spoil(&m);
    auto read = ParseManifestPreprocessing(m.dump(), "v/manifest.json");
    ASSERT_FALSE(read.ok()) << needle;
    EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(read.status().message().find("v/manifest.json preprocessing"), std::string::npos)
        << read.status().message();
    EXPECT_NE(read.status().message().find(needle), std::string::npos) << read.status().message();
  }
}

TEST(LibsvmPreprocessingTest, ALineBecomesThePairsTrainingMakes) {
  const LibsvmPreprocessing l = LibsvmExample().libsvm;
  std::vector<float> x(6, 99.0f);
  ASSERT_OK(LibsvmFeaturesToExample(l, {{2, 0.5f}, {10, -3.25f}}, "a.svm:1", x.data()));
  // As training's block: the features (index - 1) and values, then padding.
  LibsvmBlock block;
  block.starts = {0, 2};
  block.pairs = {1.0f, 0.5f, 9.0f, -3.25f};
  block.labels = {1};
  std::vector<float> training(6);
  block.WriteExample(0, 3, training.data());
  EXPECT_EQ(x, training);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 0.5f, 9.0f, -3.25f, -1.0f, 0.0f}));
  ASSERT_OK(LibsvmFeaturesToExample(l, {}, "a.svm:2", x.data()));  // a label alone: all padding
  EXPECT_EQ(x, (std::vector<float>{-1.0f, 0.0f, -1.0f, 0.0f, -1.0f, 0.0f}));
}

TEST(LibsvmPreprocessingTest, EachLineTrainingRefusesIsRefusedNamingIt) {
  const LibsvmPreprocessing l = LibsvmExample().libsvm;
  std::vector<float> x(6);
  const std::vector<std::pair<std::vector<LibsvmFeature>, std::string>> cases = {
      {{{11, 1.0f}}, "a.svm:7: feature index 11: expected in [1, 11) (the model's 10 features, index_base 1)"},
      {{{0, 1.0f}}, "a.svm:7: feature index 0: expected in [1, 11) (the model's 10 features, index_base 1)"},
      {{{1, 1.0f}, {2, 1.0f}, {3, 1.0f}, {4, 1.0f}}, "a.svm:7: 4 features: expected at most 3 (the model's pairs per example)"},
      {{{3, 1.0f}, {3, 1.0f}}, "a.svm:7: feature index 3 after 3: expected indexes that strictly increase"},
  };
  for (const auto& [features, needle] : cases) {
    Status s = LibsvmFeaturesToExample(l, features, "a.svm:7", x.data());
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_EQ(s.message(), needle);
  }
  EXPECT_EQ(*LibsvmLabelClass(l, -1.0f, 2, "a.svm:1"), 0);
  EXPECT_EQ(*LibsvmLabelClass(l, 1.0f, 2, "a.svm:1"), 1);
  EXPECT_FALSE(LibsvmLabelClass(l, 0.0f, 2, "a.svm:1").ok());  // signed_binary: -1 or +1
  LibsvmPreprocessing classes = l;
  classes.signed_binary = false;
  EXPECT_EQ(*LibsvmLabelClass(classes, 2.0f, 3, "a.svm:1"), 2);
  EXPECT_FALSE(LibsvmLabelClass(classes, 3.0f, 3, "a.svm:1").ok());
  EXPECT_FALSE(LibsvmLabelClass(classes, 1.5f, 3, "a.svm:1").ok());
}

TEST(LibsvmRawInputsTest, IndicesAndValuesBecomeThePairsPredictMakes) {
  const json inputs = json::parse(R"([
      {"name": "values", "datatype": "FP32", "shape": [2, 2], "data": [[0.5, -3.25], [7, 0]]},
      {"name": "indices", "datatype": "INT64", "shape": [2, 2], "data": [2, 10, 1, -1]}])");
  EXPECT_TRUE(UsesRawInputs(inputs, LibsvmExample(), "input"));
  std::vector<float> x;
  int64_t batch = 0;
  ASSERT_OK(ParseRawInputs(inputs, LibsvmExample(), &x, &batch));
  EXPECT_EQ(batch, 2);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 0.5f, 9.0f, -3.25f, -1.0f, 0.0f,  //
                                   0.0f, 7.0f, -1.0f, 0.0f, -1.0f, 0.0f}));
  const std::vector<JsonObject> metadata = RawInputsMetadata(LibsvmExample());
  ASSERT_EQ(metadata.size(), 2u);
  EXPECT_EQ(metadata[0].ToCompactString(), R"({"name":"indices","datatype":"INT64","shape":[-1,-1]})");
  EXPECT_EQ(metadata[1].ToCompactString(), R"({"name":"values","datatype":"FP32","shape":[-1,-1]})");
}

TEST(LibsvmRawInputsTest, EachBadInputIsNamed) {
  auto input = [](const std::string& name, const std::string& type, const std::string& shape,
                  const std::string& data) {
    return R"({"name": ")" + name + R"(", "datatype": ")" + type + R"(", "shape": )" + shape + R"(, "data": )" +
           data + "}";
  };
  const std::string values = input("values", "FP32", "[1, 2]", "[1, 2]");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[" + values + "]", "missing input 'indices'"},
      {"[" + values + "," + input("idx", "INT64", "[1, 2]", "[1, 2]") + "]", "unknown input 'idx'"},
      {"[" + values + "," + input("indices", "FP32", "[1, 2]", "[1, 2]") + "]",
       "input 'indices': expected datatype INT64, found FP32"},
      {"[" + values + "," + input("indices", "INT64", "[1, 3]", "[1, 2, 3]") + "]", "must have the same shape"},
      {"[" + input("values", "FP32", "[1, 4]", "[1, 1, 1, 1]") + "," +
           input("indices", "INT64", "[1, 4]", "[1, 2, 3, 4]") + "]",
       "4 pairs per row, the model takes at most 3"},
      {"[" + values + "," + input("indices", "INT64", "[1, 2]", "[1, 11]") + "]",
       "row 0: feature index 11: expected in [1, 11)"},
      {"[" + values + "," + input("indices", "INT64", "[1, 2]", "[2, 1]") + "]", "expected indexes that strictly increase"},
      {"[" + values + "," + input("indices", "INT64", "[1, 2]", "[-1, 1]") + "]",
       "a padding pair (-1, 0) may only be followed by padding pairs"},
      {"[" + values + "," + input("indices", "INT64", "[1, 2]", "[1.5, 2]") + "]",
       "input 'indices' row 0 element 0: expected a feature index (INT64) or -1"},
      {"[" + input("values", "FP32", "[1, 2]", "[1, \"x\"]") + "," + input("indices", "INT64", "[1, 2]", "[1, 2]") +
           "]",
       "input 'values' row 0 element 1: expected a finite FP32 number"},
      {"[" + values + "," + input("indices", "INT64", "[1, 2]", "[1]") + "]", "data holds 1 elements"},
      {"[" + values + "," + input("indices", "INT64", "[2]", "[1, 2]") + "]", "expected shape [N, K]"},
      {"[" + values + "," + values + "]", "input 'values' is given twice"},
  };
  for (const auto& [text, needle] : cases) {
    std::vector<float> x;
    int64_t batch = 0;
    Status s = ParseRawInputs(json::parse(text), LibsvmExample(), &x, &batch);
    ASSERT_FALSE(s.ok()) << needle;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  }
  // Few pairs sent can make many padded ones: the input limit is on what they make.
  const json many = json::parse("[" + input("values", "FP32", "[100, 1]", json(std::vector<int>(100, 1)).dump()) +
                                "," + input("indices", "INT64", "[100, 1]", json(std::vector<int>(100, 1)).dump()) +
                                "]");
  std::vector<float> x;
  int64_t batch = 0;
  Status s = ParseRawInputs(many, LibsvmExample(), &x, &batch, /*max_image_input_bytes=*/24 * 50);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("send at most 50 per request"), std::string::npos) << s.message();
}

// Every truncation of a request's inputs and random changes to it are
// refused or parsed, never a crash.
TEST(LibsvmRawInputsTest, RandomAndTruncatedInputsNeverCrash) {
  const std::string valid = R"([{"name": "indices", "datatype": "INT64", "shape": [2, 3], "data": [[1, 4, -1], [2, 3, 10]]},
      {"name": "values", "datatype": "FP32", "shape": [2, 3], "data": [0.5, 1e3, 0, -2, 3.25, 7]}])";
  std::vector<float> x;
  int64_t batch = 0;
  ASSERT_OK(ParseRawInputs(json::parse(valid), LibsvmExample(), &x, &batch));
  int parsed = 0;
  for (size_t cut = 0; cut < valid.size(); ++cut) {
    const json j = json::parse(valid.substr(0, cut), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    ++parsed;
    (void)ParseRawInputs(j, LibsvmExample(), &x, &batch);
  }
  std::mt19937 rng(3);
  const std::string alphabet = "0123456789-.e,[]{}\" :abxnul";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text = valid;
    for (int k = 0; k < 3; ++k) text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    ++parsed;
    (void)ParseRawInputs(j, LibsvmExample(), &x, &batch);
  }
  EXPECT_GT(parsed, 100);  // the changes reached the parser, not only the JSON reader
}

}  // namespace
}  // namespace tessera
