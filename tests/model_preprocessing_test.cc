// The preprocessing an export records (export/model_preprocessing.h), how
// predict and serve apply it (export/input_transform.h), and the decoders of
// what clients send (serve/base64.h, serve/raw_inputs.h): manifests round
// trip, old manifests still load as IDX, every bad field and every bad input
// is one line naming it, and random or truncated bytes never crash.
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "export/input_transform.h"
#include "export/model_preprocessing.h"
#include "export/model_repository_layout.h"
#include "serve/base64.h"
#include "serve/raw_inputs.h"
#include "tests/image_files.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using nlohmann::json;

TableColumn NumericColumn(const std::string& name, float fill_value, float shift, float scale) {
  TableColumn c;
  c.name = name;
  c.fill_value = fill_value;
  c.shift = shift;
  c.scale = scale;
  return c;
}

ModelPreprocessing TablePreprocessingExample() {
  ModelPreprocessing p;
  p.kind = InputKind::kTable;
  p.class_names = {"cat", "dog, big", "bird"};
  p.table.format = "tsv";
  p.table.label_column = "label";
  p.table.columns = {NumericColumn("a", 0.5f, 1.25f, 0.1f), NumericColumn("b c", -1.0f, 0.0f, 3.0f)};
  return p;
}

// The example's two numeric columns, then a hashed and a vocabulary column.
ModelPreprocessing CategoricalPreprocessingExample() {
  ModelPreprocessing p = TablePreprocessingExample();
  proto::CategoricalColumn hashed, listed;
  hashed.set_hash_buckets(8);
  for (const char* city : {"Oslo", "Lima", "Z\u00fcrich"}) listed.add_vocabulary(city);
  p.table.columns.push_back(MakeCategoricalTableColumn("code", hashed).value());
  p.table.columns.push_back(MakeCategoricalTableColumn("city", listed).value());
  return p;
}

ModelPreprocessing ImagePreprocessingExample() {
  ModelPreprocessing p;
  p.kind = InputKind::kImage;
  p.class_names = {"left", "right"};
  p.image.width = 8;
  p.image.height = 6;
  p.image.channels = 3;
  p.image.mean = {0.485f, 0.456f, 0.406f};
  p.image.std = {0.229f, 0.224f, 0.225f};
  return p;
}

std::string ManifestWith(const ModelPreprocessing& p) {
  ModelManifest m;
  m.name = "m";
  m.version = 1;
  m.preprocessing = p;
  return ManifestJson(m);
}

TEST(ModelPreprocessingTest, ATableManifestRoundTrips) {
  const ModelPreprocessing p = TablePreprocessingExample();
  auto read = ParseManifestPreprocessing(ManifestWith(p), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->kind, InputKind::kTable);
  EXPECT_EQ(read->task, Task::kMultiClass);
  EXPECT_EQ(read->class_names, p.class_names);
  EXPECT_EQ(read->table.format, "tsv");
  EXPECT_EQ(read->table.label_column, "label");
  ASSERT_EQ(read->table.columns.size(), 2u);
  for (size_t c = 0; c < 2; ++c) {
    EXPECT_EQ(read->table.columns[c].name, p.table.columns[c].name);
    EXPECT_EQ(read->table.columns[c].kind, "numeric");
    EXPECT_EQ(read->table.columns[c].fill_value, p.table.columns[c].fill_value);  // float32 bits
    EXPECT_EQ(read->table.columns[c].shift, p.table.columns[c].shift);
    EXPECT_EQ(read->table.columns[c].scale, p.table.columns[c].scale);
  }
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {2}, 3, {}, "manifest.json"));
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {3}, 3, {}, "manifest.json").ok());
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {2}, 4, {}, "manifest.json").ok());
}

TEST(ModelPreprocessingTest, AnImageManifestRoundTrips) {
  const ModelPreprocessing p = ImagePreprocessingExample();
  auto read = ParseManifestPreprocessing(ManifestWith(p), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->kind, InputKind::kImage);
  EXPECT_EQ(read->image.width, 8);
  EXPECT_EQ(read->image.height, 6);
  EXPECT_EQ(read->image.channels, 3);
  EXPECT_EQ(read->image.mean, p.image.mean);
  EXPECT_EQ(read->image.std, p.image.std);
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {3, 6, 8}, 2, {}, "manifest.json"));
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {3, 8, 6}, 2, {}, "manifest.json").ok());
}

TEST(ModelPreprocessingTest, AManifestWithoutPreprocessingIsAnIdxModels) {
  const std::string old = R"({"format": "tessera-model", "file_bytes": 10, "sha256": "ab",
                              "normalization": {"scale": 0.003921569, "mean": 0.286, "std": 0.353}})";
  auto read = ParseManifestPreprocessing(old, "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->kind, InputKind::kIdx);
  EXPECT_TRUE(read->class_names.empty());
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {1, 28, 28}, 10, {}, "manifest.json"));
}

TEST(ModelPreprocessingTest, BinaryAndRegressionTasksRoundTripAndFitOneOutput) {
  ModelPreprocessing p = TablePreprocessingExample();
  p.task = Task::kBinary;
  p.class_names = {"no", "yes"};
  auto read = ParseManifestPreprocessing(ManifestWith(p), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->task, Task::kBinary);
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {2}, 1, {}, "manifest.json"));  // one logit, two classes
  EXPECT_TRUE(NamesClasses(*read, 1));
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {2}, 2, {}, "manifest.json").ok());
  p.class_names = {"a", "b", "c"};
  read = ParseManifestPreprocessing(ManifestWith(p), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {2}, 1, {}, "manifest.json").ok());  // a binary model has two

  p.task = Task::kRegression;
  p.class_names.clear();
  read = ParseManifestPreprocessing(ManifestWith(p), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->task, Task::kRegression);
  EXPECT_OK(CheckPreprocessingFitsModel(*read, {2}, 1, {}, "manifest.json"));
  p.class_names = {"x"};  // a regression has no classes, whatever a manifest says
  EXPECT_FALSE(NamesClasses(p, 1));
}

// A categorical column's hashing or vocabulary is recorded, and read back
// maps every field to the id training's own mapping (core/categorical.h)
// gives it; the check against the model compares each column's ids with
// the rows of its table.
TEST(ModelPreprocessingTest, CategoricalColumnsRoundTripWithTrainingsIds) {
  const ModelPreprocessing p = CategoricalPreprocessingExample();
  const json written = json::parse(ManifestWith(p));
  const json& columns = written["preprocessing"]["columns"];
  EXPECT_EQ(columns[2], json::parse(R"({"name": "code", "kind": "categorical", "hash_buckets": 8})"));
  EXPECT_EQ(columns[3],
            json::parse(R"({"name": "city", "kind": "categorical", "vocabulary": ["Oslo", "Lima", "Z\u00fcrich"]})"));
  auto read = ParseManifestPreprocessing(written.dump(), "manifest.json");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->table.columns.size(), 4u);
  const TableColumn& code = read->table.columns[2];
  const TableColumn& city = read->table.columns[3];
  ASSERT_TRUE(code.is_categorical() && city.is_categorical());
  EXPECT_FALSE(read->table.columns[1].is_categorical());
  proto::CategoricalColumn hashed;
  hashed.set_hash_buckets(8);
  const CategoricalIds training(hashed);
  for (const char* field : {"", "17", "-3", "abc", "Oslo"}) {
    EXPECT_EQ(CategoricalFeature(code, field), static_cast<float>(training.Id(field))) << field;
  }
  EXPECT_EQ(CategoricalFeature(code, ""), 0.0f);
  EXPECT_EQ(CategoricalFeature(city, "Oslo"), 1.0f);
  EXPECT_EQ(CategoricalFeature(city, "Z\u00fcrich"), 3.0f);
  EXPECT_EQ(CategoricalFeature(city, "Paris"), 0.0f);  // out of the vocabulary
  EXPECT_EQ(CategoricalFeature(city, ""), 0.0f);
  EXPECT_EQ(CategoricalFeature(city, "oslo"), 0.0f);   // bytes as they are

  EXPECT_OK(CheckPreprocessingFitsModel(*read, {4}, 3, {9, 4}, "manifest.json"));
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {4}, 3, {}, "manifest.json").ok());  // no column_embedding
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {4}, 3, {9}, "manifest.json").ok());
  const Status s = CheckPreprocessingFitsModel(*read, {4}, 3, {9, 5}, "manifest.json");
  EXPECT_EQ(s.message(), "manifest.json: categorical column 'city' makes 4 ids, the model's table for it has 5 rows");
  EXPECT_FALSE(CheckPreprocessingFitsModel(*read, {5}, 3, {9, 4}, "manifest.json").ok());
}

TEST(ModelPreprocessingTest, EachBadCategoricalFieldIsNamed) {
  const std::vector<std::pair<std::function<void(json*)>, std::string>> cases = {
      {[](json* c) { (*c)[2]["hash_buckets"] = 0; }, "columns[2]: 'hash_buckets' must be in [1, 16777215], got 0"},
      {[](json* c) { (*c)[2]["hash_buckets"] = "8"; }, "columns[2]: 'hash_buckets' must be an integer"},
      {[](json* c) { (*c)[2]["vocabulary"] = json::array({"a"}); },
       "columns[2]: needs exactly one of 'hash_buckets' and 'vocabulary'"},
      {[](json* c) { (*c)[3].erase("vocabulary"); },
       "columns[3]: needs exactly one of 'hash_buckets' and 'vocabulary'"},
      {[](json* c) { (*c)[3]["vocabulary"] = json::array(); },
       "columns[3]: 'vocabulary' must hold 1 to 16777215 values"},
      {[](json* c) { (*c)[3]["vocabulary"][1] = 5; }, "columns[3]: vocabulary[1] must be a string"},
      {[](json* c) { (*c)[3]["vocabulary"][1] = "Oslo"; }, "columns[3]: categorical column 'city': its vocabulary "
                                                          "holds an empty or a repeated value"},
      {[](json* c) { (*c)[3]["vocabulary"][0] = ""; }, "its vocabulary holds an empty or a repeated value"},
      {[](json* c) { c->push_back((*c)[0]); (*c)[4]["name"] = "late"; },
       "columns[4]: a numeric column after a categorical one"},
  };
  for (const auto& [spoil, needle] : cases) {
    json m = json::parse(ManifestWith(CategoricalPreprocessingExample()));
    spoil(&m["preprocessing"]["columns"]);
    auto read = ParseManifestPreprocessing(m.dump(), "v/manifest.json");
    ASSERT_FALSE(read.ok()) << needle;
    EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(read.status().message().find("v/manifest.json"), std::string::npos) << read.status().message();
    EXPECT_NE(read.status().message().find(needle), std::string::npos) << read.status().message();
  }
}

// Each bad field of a manifest: InvalidArgument, one line naming it.
TEST(ModelPreprocessingTest, EachBadFieldIsNamed) {
  struct Case {
    std::function<void(json*)> spoil;
    std::string needle;
  };
  const std::vector<Case> table_cases = {
      {[](json* m) { (*m)["task"] = "ranking"; }, "task \"ranking\" is not supported"},
      {[](json* m) { (*m)["preprocessing"]["kind"] = "audio"; },
       "kind must be \"idx\", \"table\", \"image\", \"libsvm\" or \"criteo\""},
      {[](json* m) { (*m)["preprocessing"]["format"] = "xlsx"; }, "'format' must be \"csv\" or \"tsv\""},
      {[](json* m) { (*m)["preprocessing"]["columns"] = json::array(); }, "'columns' must hold 1 to"},
      {[](json* m) { (*m)["preprocessing"]["columns"][0]["name"] = ""; }, "columns[0]: 'name' must not be empty"},
      {[](json* m) { (*m)["preprocessing"]["columns"][1]["name"] = "a"; }, "column 'a' is named twice"},
      {[](json* m) { (*m)["preprocessing"]["columns"][0]["kind"] = "ordinal"; },
       "kind \"ordinal\" is not supported by this version of Tessera (numeric or categorical)"},
      {[](json* m) { (*m)["preprocessing"]["columns"][0]["scale"] = "1"; }, "columns[0]: 'scale' must be a number"},
      {[](json* m) { (*m)["preprocessing"]["columns"][1]["shift"] = 1e300; },
       "columns[1]: 'shift' must be a finite float32"},
      {[](json* m) { (*m)["class_names"] = json::array({1, 2}); }, "'class_names' must hold strings"},
      {[](json* m) { (*m)["preprocessing"] = 3; }, "preprocessing must be an object"},
  };
  for (const Case& c : table_cases) {
    json m = json::parse(ManifestWith(TablePreprocessingExample()));
    c.spoil(&m);
    auto read = ParseManifestPreprocessing(m.dump(), "v/manifest.json");
    ASSERT_FALSE(read.ok()) << c.needle;
    EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(read.status().message().find("v/manifest.json"), std::string::npos) << read.status().message();
    EXPECT_NE(read.status().message().find(c.needle), std::string::npos) << read.status().message();
  }
  const std::vector<Case> image_cases = {
      {[](json* m) { (*m)["preprocessing"]["width"] = 0; }, "'width' must be in [1, 4096], got 0"},
      {[](json* m) { (*m)["preprocessing"]["channels"] = 2; }, "'channels' must be 1 or 3, got 2"},
      {[](json* m) { (*m)["preprocessing"]["mean"] = json::array({0.5}); }, "one value per channel (3)"},
      {[](json* m) { (*m)["preprocessing"]["std"][1] = 0; }, "every 'std' must be > 0"},
      {[](json* m) { (*m)["preprocessing"]["height"] = 2.5; }, "'height' must be an integer"},
  };
  for (const Case& c : image_cases) {
    json m = json::parse(ManifestWith(ImagePreprocessingExample()));
    c.spoil(&m);
    auto read = ParseManifestPreprocessing(m.dump(), "v/manifest.json");
    ASSERT_FALSE(read.ok()) << c.needle;
    EXPECT_NE(read.status().message().find(c.needle), std::string::npos) << read.status().message();
  }
}

// ------------------------------------------------------------ applying it

TEST(InputTransformTest, TableFeaturesAreFilledThenScaledInFloat) {
  const TableColumn c = NumericColumn("a", 0.5f, 1.25f, 0.1f);
  EXPECT_EQ(TableFeature(c, 3.0f), (3.0f - 1.25f) * 0.1f);
  EXPECT_EQ(TableFeature(c, std::nullopt), (0.5f - 1.25f) * 0.1f);
}

TEST(InputTransformTest, AMissingColumnIsNamedWithTheHeader) {
  const TablePreprocessing t = TablePreprocessingExample().table;
  auto map = MapTableHeader(t, {"x", "a", "label"}, "in.csv");
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().message(), "in.csv: no column 'b c' (feature 1 of the model's 2); the header has x, a, label");
  map = MapTableHeader(t, {"b c", "x", "a"}, "in.csv");
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->features, (std::vector<int>{2, 0}));
  EXPECT_EQ(map->label, -1);
}

// ------------------------------------------------------------ base64

TEST(Base64Test, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 70; ++n) {
    std::string bytes(n, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    auto back = DecodeBase64(EncodeBase64(bytes));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_EQ(EncodeBase64("Man"), "TWFu");
  EXPECT_EQ(EncodeBase64("Ma"), "TWE=");
  EXPECT_EQ(EncodeBase64("M"), "TQ==");
}

TEST(Base64Test, BadTextIsOneLineNamingTheOffset) {
  EXPECT_EQ(DecodeBase64("TWF").status().message(),
            "base64 of 3 characters: expected a multiple of 4 (with '=' padding)");
  EXPECT_EQ(DecodeBase64("TW-u").status().message(),
            "base64: expected a character of A-Z a-z 0-9 + / at offset 2, found byte 45");
  EXPECT_FALSE(DecodeBase64("TQ==TWFu").ok());  // padding inside
  EXPECT_FALSE(DecodeBase64("TR==").ok());      // non-zero padding bits
  EXPECT_FALSE(DecodeBase64("T===").ok());
  EXPECT_FALSE(DecodeBase64("TW E").ok());
}

TEST(Base64Test, RandomAndTruncatedTextNeverCrashes) {
  std::mt19937 rng(11);
  const std::string valid = EncodeBase64("some bytes of an image file");
  for (size_t cut = 0; cut <= valid.size(); ++cut) (void)DecodeBase64(valid.substr(0, cut));
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    (void)DecodeBase64(text);
  }
}

// ------------------------------------------------------------ serve's raw inputs

Status ParseTable(const json& inputs, std::vector<float>* x = nullptr, int64_t* batch = nullptr) {
  std::vector<float> ignored_x;
  int64_t ignored_batch = 0;
  return ParseRawInputs(inputs, TablePreprocessingExample(), x ? x : &ignored_x, batch ? batch : &ignored_batch);
}

TEST(RawInputsTest, TableColumnsBecomeRowsAsPredictMakesThem) {
  const json inputs = json::parse(R"([
      {"name": "b c", "datatype": "INT32", "shape": [2, 1], "data": [[4], [5]]},
      {"name": "a", "datatype": "FP32", "shape": [2], "data": [3.0, null]}])");
  std::vector<float> x;
  int64_t batch = 0;
  ASSERT_OK(ParseTable(inputs, &x, &batch));
  EXPECT_EQ(batch, 2);
  const TablePreprocessing t = TablePreprocessingExample().table;
  EXPECT_EQ(x, (std::vector<float>{TableFeature(t.columns[0], 3.0f), TableFeature(t.columns[1], 4.0f),
                                   TableFeature(t.columns[0], std::nullopt), TableFeature(t.columns[1], 5.0f)}));
  EXPECT_TRUE(UsesRawInputs(inputs, TablePreprocessingExample(), "input"));
  EXPECT_FALSE(UsesRawInputs(json::parse(R"([{"name": "input"}])"), TablePreprocessingExample(), "input"));
  EXPECT_FALSE(UsesRawInputs(inputs, ModelPreprocessing(), "input"));  // IDX
}

TEST(RawInputsTest, EachBadTableInputIsNamed) {
  const std::string a = R"({"name": "a", "datatype": "FP32", "shape": [1], "data": [1]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[" + a + "]", "missing input 'b c' (column 1 of the model's 2)"},
      {"[" + a + "," + a + "]", "input 'a' is given twice"},
      {R"([{"name": "z", "datatype": "FP32", "shape": [1], "data": [1]}])", "unknown input 'z'"},
      {"[" + a + R"(, {"name": "b c", "datatype": "BYTES", "shape": [1], "data": ["1"]}])",
       "input 'b c': expected datatype FP32, FP64, INT32 or INT64, found BYTES"},
      {"[" + a + R"(, {"name": "b c", "datatype": "FP32", "shape": [2], "data": [1, 2]}])",
       "input 'b c' has 2 rows, input 'a' 1"},
      {"[" + a + R"(, {"name": "b c", "datatype": "FP32", "shape": [1, 2], "data": [1]}])",
       "input 'b c': expected shape [N] or [N,1] with N >= 1, found [1,2]"},
      {"[" + a + R"(, {"name": "b c", "datatype": "FP32", "shape": [1], "data": ["x"]}])",
       "input 'b c' element 0: expected a number (FP32) or null, found \"x\""},
      {"[" + a + R"(, {"name": "b c", "datatype": "INT64", "shape": [1], "data": [1.5]}])",
       "input 'b c' element 0: expected an integer (INT64) or null, found 1.5"},
      {"[" + a + R"(, {"name": "b c", "datatype": "FP64", "shape": [1], "data": [1e300]}])",
       "input 'b c' element 0: 1e+300 is not within float32's range"},
      {"[" + a + R"(, {"name": "b c", "datatype": "FP32", "shape": [2], "data": [1]}])",
       "input 'b c': data holds 1 elements, the shape says 2"},
  };
  for (const auto& [text, needle] : cases) {
    const Status s = ParseTable(json::parse(text));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  }
}

// A categorical column's input: BYTES strings as they are, INT32/INT64
// integers as the decimal text a training file holds, null a missing value.
TEST(RawInputsTest, CategoricalColumnsTakeStringsOrIntegersAsTrainingReadThem) {
  const ModelPreprocessing p = CategoricalPreprocessingExample();
  const json inputs = json::parse(R"([
      {"name": "a", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
      {"name": "b c", "datatype": "FP32", "shape": [3], "data": [4, 5, 6]},
      {"name": "code", "datatype": "INT64", "shape": [3, 1], "data": [[17], [-3], [null]]},
      {"name": "city", "datatype": "BYTES", "shape": [3], "data": ["Lima", "Paris", null]}])");
  std::vector<float> x;
  int64_t batch = 0;
  ASSERT_OK(ParseRawInputs(inputs, p, &x, &batch));
  ASSERT_EQ(batch, 3);
  ASSERT_EQ(x.size(), 12u);
  const TableColumn& code = p.table.columns[2];
  const TableColumn& city = p.table.columns[3];
  EXPECT_EQ(x[2], CategoricalFeature(code, "17"));
  EXPECT_EQ(x[3], 2.0f);  // Lima
  EXPECT_EQ(x[6], CategoricalFeature(code, "-3"));
  EXPECT_EQ(x[7], 0.0f);  // Paris: out of the vocabulary
  EXPECT_EQ(x[10], 0.0f);  // null: missing
  EXPECT_EQ(x[11], CategoricalFeature(city, ""));
  // The same codes as strings give the same ids.
  json as_bytes = inputs;
  as_bytes[2] = json::parse(R"({"name": "code", "datatype": "BYTES", "shape": [3], "data": ["17", "-3", ""]})");
  std::vector<float> y;
  ASSERT_OK(ParseRawInputs(as_bytes, p, &y, &batch));
  EXPECT_EQ(x, y);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"name": "city", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]})",
       "input 'city': expected datatype BYTES, INT32 or INT64 (a categorical column), found FP32"},
      {R"({"name": "city", "datatype": "BYTES", "shape": [3], "data": ["a", 5, "b"]})",
       "input 'city' element 1: expected a string (BYTES) or null, found 5"},
      {R"({"name": "city", "datatype": "INT32", "shape": [3], "data": [1, 3000000000, 2]})",
       "input 'city' element 1: 3000000000 is not an INT32"},
      {R"({"name": "city", "datatype": "INT64", "shape": [3], "data": [1, "2", 2]})",
       "input 'city' element 1: expected an integer (INT64) or null, found \"2\""},
  };
  for (const auto& [city_input, needle] : cases) {
    json bad = inputs;
    bad[3] = json::parse(city_input);
    const Status s = ParseRawInputs(bad, p, &x, &batch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << city_input;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  }
  const std::vector<JsonObject> metadata = RawInputsMetadata(p);
  ASSERT_EQ(metadata.size(), 4u);
  EXPECT_EQ(metadata[3].ToCompactString(), R"({"name":"city","datatype":"BYTES","shape":[-1]})");
}

TEST(RawInputsTest, ImagesAreDecodedAsPredictDecodesThem) {
  const ModelPreprocessing p = ImagePreprocessingExample();
  const Image image = testing_images::MakeImage(10, 9, 3, [](int y, int x, int c) { return y * 20 + x * 3 + c; });
  const std::string png = testing_images::EncodePng(image);
  const json inputs = {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {EncodeBase64(png)}}}};
  std::vector<float> x, expected(ImageExampleValues(p.image));
  int64_t batch = 0;
  ASSERT_OK(ParseRawInputs(inputs, p, &x, &batch));
  ASSERT_OK(ImageBytesToExample(p.image, "file.png", png, expected.data()));
  EXPECT_EQ(batch, 1);
  EXPECT_EQ(x, expected);

  const std::vector<std::pair<json, std::string>> cases = {
      {{{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"@@@@"}}}},
       "input 'image' element 0: base64: expected a character"},
      {{{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {EncodeBase64("GIF89a")}}}},
       "input 'image' element 0: not a PNG or JPEG file"},
      {{{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {EncodeBase64(png.substr(0, 60))}}}},
       "input 'image' element 0: "},
      {{{{"name", "image"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {1}}}},
       "input 'image': expected datatype BYTES, found FP32"},
      {{{{"name", "picture"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"TQ=="}}}}, "unknown input 'picture'"},
      {{{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {7}}}},
       "input 'image' element 0: expected a base64 string, found 7"},
  };
  for (const auto& [bad, needle] : cases) {
    const Status s = ParseRawInputs(bad, p, &x, &batch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad.dump();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  }
}

// A small file whose header claims more pixels than serve decodes is refused
// from the header, before a pixel buffer is allocated.
TEST(RawInputsTest, AnImageOverServesPixelLimitIsRefusedFromItsHeader) {
  std::string png = testing_images::EncodePng(testing_images::MakeImage(10, 10, 1, [](int, int, int) { return 7; }));
  ASSERT_GT(png.size(), 33u);
  for (int i = 0; i < 4; ++i) png[16 + i] = png[20 + i] = static_cast<char>(i == 2 ? 0x10 : i == 3 ? 0x01 : 0);
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);  // IHDR type and data
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 0xff);
  const json inputs = {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {EncodeBase64(png)}}}};
  std::vector<float> x;
  int64_t batch = 0;
  const Status s = ParseRawInputs(inputs, ImagePreprocessingExample(), &x, &batch);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("image of 4097x4097 pixels, more than 16777216"), std::string::npos) << s.message();
}

// Tiny files decode to whole examples: the images of a request are bounded
// by the model input they make, before any is decoded.
TEST(RawInputsTest, TooManyImagesForTheInputLimitAreRefusedBeforeDecoding) {
  const ModelPreprocessing p = ImagePreprocessingExample();  // 3 x 6 x 8 floats: 576 bytes an image
  const json inputs = {
      {{"name", "image"}, {"datatype", "BYTES"}, {"shape", {3}}, {"data", {"not", "even", "base64"}}}};
  std::vector<float> x;
  int64_t batch = 0;
  const Status s = ParseRawInputs(inputs, p, &x, &batch, /*max_image_input_bytes=*/1000);
  EXPECT_EQ(s.message(), "input 'image': 3 images make 3 x 576 bytes of model input, more than the 1000 a request may: send at most 1 "
            "per request");
}

TEST(RawInputsTest, TheMetadataListsTheRawInputs) {
  const std::vector<JsonObject> table = RawInputsMetadata(TablePreprocessingExample());
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[1].ToCompactString(), R"({"name":"b c","datatype":"FP32","shape":[-1]})");
  const std::vector<JsonObject> image = RawInputsMetadata(ImagePreprocessingExample());
  ASSERT_EQ(image.size(), 1u);
  EXPECT_EQ(image[0].ToCompactString(), R"({"name":"image","datatype":"BYTES","shape":[-1]})");
}

}  // namespace
}  // namespace tessera
