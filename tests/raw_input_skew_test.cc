// Train/serve skew (issue 15) with real processes: a small table model and a
// small image-folder model, trained on data written here, are exported
// (their manifests record the preprocessing), and the same rows go through
// `tessera predict` (a CSV file with the columns in another order and an
// extra one; a folder of class folders) and through a real `tessera serve`
// over HTTP (one KServe v2 input per column; the image files as base64
// BYTES): the probabilities are the same floats, bit for bit, and so are
// the class names. Bad inputs to predict are one line naming the file (and
// line and column) and exit 2.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "serve/base64.h"
#include "tests/image_files.h"
#include "tests/skew_test_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kTableClasses = 3;
constexpr int kRows = 24;  // the rows sent through both, one batch in each

// A feature value of row i, class c, column f as text ("" for a missing one).
std::string FeatureText(int i, int c, int f) {
  if (f == 1 && i % 7 == 3) return "";  // missing: the fill value
  char buf[32];
  const double noise = ((i * 37 + f * 11) % 100) / 100.0 - 0.5;
  const double v = f == 3 ? 5.0 : f == 0 ? c * 2.0 + noise : f == 1 ? -1.5 * c + noise * 3 : noise * 10;
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

// Training and test tables: id,f0,f1,f2,f3,label (f3 constant, f1 sometimes empty).
std::string TableCsv(int rows, int offset) {
  std::string text = "id,f0,f1,f2,f3,label\n";
  for (int r = 0; r < rows; ++r) {
    const int i = r + offset, c = i % kTableClasses;
    text += std::to_string(i);
    for (int f = 0; f < 4; ++f) text.append(",").append(FeatureText(i, c, f));
    text.append(",").append(std::to_string(c)).append("\n");
  }
  return text;
}

// The rows sent through predict and serve: the columns in another order,
// an extra one, the label included.
std::string PredictRowsCsv() {
  std::string text = "extra,f3,label,f2,f1,f0\n";
  for (int i = 0; i < kRows; ++i) {
    const int c = i % kTableClasses;
    text.append("x").append(std::to_string(i)).append(",").append(FeatureText(i, c, 3));
    text.append(",").append(std::to_string(c));
    for (int f : {2, 1, 0}) text.append(",").append(FeatureText(i, c, f));
    text.append("\n");
  }
  return text;
}

// Image `i` of class `c` (0: bright on the left, 1: on the right), 12x10 RGB.
Image ClassImage(int c, int i) {
  return testing_images::MakeImage(12, 10, 3, [&](int y, int x, int ch) {
    const bool bright = c == 0 ? x < 6 : x >= 6;
    return (bright ? 180 : 40) + (i * 13 + y * 3 + ch * 7) % 50;
  });
}

void WriteImageFolder(const std::string& dir, int per_class, int offset) {
  const char* const names[] = {"left side", "right,side"};  // a space and a comma: quoted in the CSV
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(dir + "/" + names[c]);
    for (int i = 0; i < per_class; ++i) {
      const Image image = ClassImage(c, i + offset);
      char name[32];
      std::snprintf(name, sizeof(name), "/%03d.%s", i, i % 3 == 0 ? "jpg" : "png");
      testing_images::WriteBytes(dir + "/" + names[c] + name, i % 3 == 0 ? testing_images::EncodeJpeg(image)
                                                                          : testing_images::EncodePng(image));
    }
  }
}

std::string TableSpec(const std::string& dir) {
  return R"pb(
    name: "skew-table"
    model { layer { linear { out_features: 8 } } layer { relu {} } layer { linear { out_features: 3 } } }
    data {
      format: CSV
      dir: ")pb" + dir + R"pb("
      train_files: "train.csv"
      test_files: "test.csv"
      table { label_column: "label" feature_columns: "f0" feature_columns: "f1" feature_columns: "f2"
              feature_columns: "f3" fill_value: 0.25 }
    }
    optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }
    batch_size: 16
    epochs: 3
  )pb";
}

std::string ImageSpec(const std::string& dir) {
  return R"pb(
    name: "skew-images"
    model { layer { linear { out_features: 2 } } }
    data {
      format: IMAGE_FOLDER
      dir: ")pb" + dir + R"pb("
      train_dir: "train"
      test_dir: "test"
      image { width: 8 height: 8 channels: 3 mean: 0.4 mean: 0.5 mean: 0.6 std: 0.2 std: 0.25 std: 0.3 }
    }
    optimizer { type: SGD learning_rate: 0.05 }
    batch_size: 8
    epochs: 2
  )pb";
}

class RawInputSkewTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Both the predict and the serve process compute on one thread of the
    // CPU, so the sums go the same way.
    setenv("OMP_NUM_THREADS", "1", 1);
    dir_ = new std::string(MakeTempDir("raw-input-skew"));
    WriteText(*dir_ + "/train.csv", TableCsv(300, 0));
    WriteText(*dir_ + "/test.csv", TableCsv(60, 1000));
    WriteText(*dir_ + "/rows.csv", PredictRowsCsv());
    WriteImageFolder(*dir_ + "/train", 16, 0);
    WriteImageFolder(*dir_ + "/test", 6, 100);
    table_error_ = new std::string(TrainAndExport(*dir_, TableSpec(*dir_), "table"));
    image_error_ = new std::string(TrainAndExport(*dir_, ImageSpec(*dir_), "images"));
  }
  void SetUp() override {
    ASSERT_EQ(*table_error_, "");
    ASSERT_EQ(*image_error_, "");
  }

  // Expects the served outputs to equal predict's rows bit for bit.
  static void ExpectSameAsPredict(const json& response, const std::vector<std::vector<std::string>>& rows,
                                  int classes) {
    json probabilities, names;
    for (const json& o : response["outputs"]) {
      if (o["name"] == "probabilities") probabilities = o["data"];
      if (o["name"] == "class_name") names = o["data"];
    }
    ASSERT_EQ(probabilities.size(), static_cast<size_t>((rows.size() - 1) * classes)) << response.dump();
    ASSERT_EQ(names.size(), rows.size() - 1) << response.dump();
    for (size_t r = 1; r < rows.size(); ++r) {
      for (int k = 0; k < classes; ++k) {
        const float served = static_cast<float>(probabilities[(r - 1) * classes + k].get<double>());
        EXPECT_EQ(served, ParseFloat(rows[r][2 + k])) << "row " << r - 1 << " class " << k;
      }
      EXPECT_EQ(names[r - 1].get<std::string>(), rows[r][2 + classes]) << "row " << r - 1;
    }
  }

  static std::string* dir_;
  static std::string* table_error_;
  static std::string* image_error_;
};
std::string* RawInputSkewTest::dir_ = nullptr;
std::string* RawInputSkewTest::table_error_ = nullptr;
std::string* RawInputSkewTest::image_error_ = nullptr;

TEST_F(RawInputSkewTest, TheManifestsRecordThePreprocessing) {
  const json table = json::parse(FileText(*dir_ + "/repo/table/1/manifest.json"));
  EXPECT_EQ(table["task"], "classification");
  EXPECT_EQ(table["class_names"], json({"0", "1", "2"}));
  const json& p = table["preprocessing"];
  EXPECT_EQ(p["kind"], "table");
  EXPECT_EQ(p["format"], "csv");
  EXPECT_EQ(p["label_column"], "label");
  ASSERT_EQ(p["columns"].size(), 4u);
  EXPECT_EQ(p["columns"][0]["name"], "f0");
  EXPECT_EQ(p["columns"][3]["name"], "f3");
  EXPECT_EQ(p["columns"][1]["kind"], "numeric");
  EXPECT_EQ(p["columns"][1]["fill_value"], 0.25);
  EXPECT_EQ(p["columns"][3]["shift"], 5.0);  // a constant column: its mean, scaled by 1
  EXPECT_EQ(p["columns"][3]["scale"], 1.0);
  EXPECT_GT(table["test_accuracy"].get<double>(), 0.9) << table.dump();

  const json images = json::parse(FileText(*dir_ + "/repo/images/1/manifest.json"));
  EXPECT_EQ(images["class_names"], json({"left side", "right,side"}));
  const json& i = images["preprocessing"];
  EXPECT_EQ(i["kind"], "image");
  EXPECT_EQ(i["width"], 8);
  EXPECT_EQ(i["height"], 8);
  EXPECT_EQ(i["channels"], 3);
  EXPECT_EQ(i["channel_order"], "RGB");
  EXPECT_EQ(i["mean"].size(), 3u);
  EXPECT_EQ(static_cast<float>(i["std"][2].get<double>()), 0.3f);
}

TEST_F(RawInputSkewTest, TableRowsGiveTheSameOutputsThroughPredictAndServe) {
  const std::string out = *dir_ + "/table-predictions.csv";
  CommandResult r = RunTessera({"predict", *dir_ + "/repo/table", *dir_ + "/rows.csv", "--out", out, "--batch-size",
                                std::to_string(kRows), "--threads", "1", "--progress", "none", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos) << r.output;  // the label column was there
  const auto rows = ReadCsv(out);
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "class", "prob_0", "prob_1", "prob_2", "class_name"}));

  // One input per column, each of another datatype or shape the server accepts.
  json inputs = json::array();
  for (int f = 0; f < 4; ++f) {
    json data = json::array();
    for (int i = 0; i < kRows; ++i) {
      const std::string text = FeatureText(i, i % kTableClasses, f);
      json v = text.empty() ? json(nullptr) : json::parse(text);
      if (f == 3) v = 5;  // INT64
      data.push_back(f == 2 ? json::array({v}) : v);
    }
    const char* const names[] = {"f0", "f1", "f2", "f3"};
    json input = {{"name", names[f]}, {"datatype", f == 3 ? "INT64" : f == 0 ? "FP64" : "FP32"},
                  {"data", data}};
    input["shape"] = f == 2 ? json::array({kRows, 1}) : json::array({kRows});
    inputs.push_back(input);
  }
  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json response = Infer(serve, "table", {{"inputs", inputs}});
  ExpectSameAsPredict(response, rows, kTableClasses);

  httplib::Client client("127.0.0.1", serve.port);
  auto meta = client.Get("/v2/models/table");
  ASSERT_TRUE(meta);
  const json metadata = json::parse(meta->body);
  ASSERT_EQ(metadata["inputs"].size(), 4u) << meta->body;
  EXPECT_EQ(metadata["inputs"][2]["name"], "f2");
  EXPECT_EQ(metadata["inputs"][2]["datatype"], "FP32");
  EXPECT_NE(meta->body.find("\"class_name\""), std::string::npos) << meta->body;
  // The model's own tensor, already preprocessed, still works.
  const json own = {{"inputs", {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {1, 4}}, {"data", {0, 1, 2, 3}}}}}};
  auto preprocessed = client.Post("/v2/models/table/infer", own.dump(), "application/json");
  ASSERT_TRUE(preprocessed);
  EXPECT_EQ(preprocessed->status, 200) << preprocessed->body;
  // UINT8 pixels are an IDX model's: refused, naming what this model takes.
  const json uint8 = {{"inputs", {{{"name", "input"}, {"datatype", "UINT8"}, {"shape", {1, 4}}, {"data", {1, 2, 3, 4}}}}}};
  auto refused = client.Post("/v2/models/table/infer", uint8.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_NE(refused->body.find("one input per column"), std::string::npos) << refused->body;
  // A missing column is the client's mistake: 400, naming it.
  inputs.erase(1);
  auto bad = client.Post("/v2/models/table/infer", json({{"inputs", inputs}}).dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("missing input 'f1'"), std::string::npos) << bad->body;
}

TEST_F(RawInputSkewTest, ImagesGiveTheSameOutputsThroughPredictAndServe) {
  const std::string out = *dir_ + "/image-predictions.csv";
  CommandResult r = RunTessera({"predict", *dir_ + "/repo/images", *dir_ + "/test", "--out", out, "--batch-size",
                                "12", "--threads", "1", "--progress", "none", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos) << r.output;  // class folders give the labels
  const auto rows = ReadCsv(out);
  ASSERT_EQ(rows.size(), 13u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "class", "prob_0", "prob_1", "class_name", "file"}));
  EXPECT_EQ(rows[7][5], "right,side/000.jpg");

  json data = json::array();
  for (size_t r = 1; r < rows.size(); ++r) {
    data.push_back(EncodeBase64(FileText(*dir_ + "/test/" + rows[r][5])));
  }
  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json body = {{"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {12}}, {"data", data}}}}};
  ExpectSameAsPredict(Infer(serve, "images", body), rows, 2);

  // With --workers the children split the images and write the same file.
  const std::string parts = *dir_ + "/image-predictions-2.csv";
  r = RunTessera({"predict", *dir_ + "/repo/images", *dir_ + "/test", "--out", parts, "--batch-size", "4",
                  "--workers", "2", "--threads", "1", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ReadCsv(parts).size(), rows.size());
}

// int8 calibration reads the table's training records through training's
// reader; the quantized model predicts the raw rows as well.
TEST_F(RawInputSkewTest, AnInt8TableModelIsCalibratedOnTheTable) {
  CommandResult r = RunTessera({"export", *dir_ + "/run-table", "--out", *dir_ + "/repo/table-int8", "--quantize",
                                "int8", "--calibration-batches", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("calibrated on 64 training examples"), std::string::npos) << r.output;
  const json manifest = json::parse(FileText(*dir_ + "/repo/table-int8/1/manifest.json"));
  EXPECT_EQ(manifest["precision"], "int8");
  EXPECT_EQ(manifest["preprocessing"]["kind"], "table");
  EXPECT_GT(manifest["test_accuracy"].get<double>(), 0.9) << manifest.dump();
  r = RunTessera({"predict", *dir_ + "/repo/table-int8", *dir_ + "/rows.csv", "--out", *dir_ + "/int8.csv",
                  "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ReadCsv(*dir_ + "/int8.csv").size(), static_cast<size_t>(kRows + 1));
}

// The checkpoint does not hold the scaling: the export reads it again from
// the training files, and refuses files that changed since training.
TEST_F(RawInputSkewTest, TheExportRefusesTrainingFilesThatChangedSinceTraining) {
  const std::string changed = *dir_ + "/changed";
  fs::create_directories(changed);
  WriteText(changed + "/train.csv", TableCsv(301, 0));
  WriteText(changed + "/test.csv", TableCsv(60, 1000));
  CommandResult r = RunTessera({"export", *dir_ + "/run-table", "--out", *dir_ + "/repo/changed", "--data-dir",
                                changed});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("the training data holds 301 training examples now, and the checkpoint's job trained on "
                          "300: it changed since"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(*dir_ + "/repo/changed"));
}

TEST_F(RawInputSkewTest, ASingleImageFileIsPredicted) {
  const std::string out = *dir_ + "/one.csv";
  CommandResult r = RunTessera({"predict", *dir_ + "/repo/images", *dir_ + "/test/left side/001.png", "--out", out,
                                "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = ReadCsv(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1][4], "left side");
}

// ------------------------------------------------------------ bad inputs

class RawInputErrorTest : public RawInputSkewTest {
 protected:
  // Runs predict on `input` of `model`: exit 2, one line containing `needle`, no file.
  void ExpectRefused(const std::string& model, const std::string& input, const std::string& needle) {
    const std::string out = *dir_ + "/refused.csv";
    CommandResult r = RunTessera({"predict", *dir_ + "/repo/" + model, input, "--out", out, "--progress", "none"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(FileExists(out));
  }
  using RawInputSkewTest::dir_;
};

TEST_F(RawInputErrorTest, AMissingColumnIsNamed) {
  WriteText(*dir_ + "/no-f2.csv", "f0,f1,f3\n1,2,3\n");
  ExpectRefused("table", *dir_ + "/no-f2.csv", *dir_ + "/no-f2.csv: no column 'f2' (feature 2 of the model's 4)");
}

TEST_F(RawInputErrorTest, AFieldThatIsNotANumberNamesLineAndColumn) {
  WriteText(*dir_ + "/bad-number.csv", "f0,f1,f2,f3\n1,2,3,4\n1,2,abc,4\n");
  ExpectRefused("table", *dir_ + "/bad-number.csv",
                *dir_ + "/bad-number.csv:3: column \"f2\": expected a finite number, got \"abc\"");
}

TEST_F(RawInputErrorTest, ALabelThatIsNotAClassIsNamed) {
  WriteText(*dir_ + "/bad-label.csv", "f0,f1,f2,f3,label\n1,2,3,4,7\n");
  ExpectRefused("table", *dir_ + "/bad-label.csv",
                *dir_ + "/bad-label.csv:2: column \"label\" (the label): expected a class id, an integer in [0, 3), "
                        "got \"7\"");
}

TEST_F(RawInputErrorTest, ACorruptImageIsNamed) {
  const std::string dir = *dir_ + "/corrupt";
  fs::create_directories(dir);
  testing_images::WriteBytes(dir + "/a.png", testing_images::EncodePng(ClassImage(0, 1)));
  testing_images::WriteBytes(dir + "/b.png", "GIF89a not a png");
  ExpectRefused("images", dir, dir + "/b.png: not a PNG or JPEG file");
}

TEST_F(RawInputErrorTest, AFileNameWithALineEndIsRefused) {
  const std::string dir = *dir_ + "/line-end";
  fs::create_directories(dir);
  testing_images::WriteBytes(dir + "/a\nb.png", testing_images::EncodePng(ClassImage(0, 1)));
  ExpectRefused("images", dir, "holds a control character");
}

TEST_F(RawInputErrorTest, AnUnknownClassFolderIsNamed) {
  const std::string dir = *dir_ + "/unknown-class";
  fs::create_directories(dir + "/middle");
  testing_images::WriteBytes(dir + "/middle/a.png", testing_images::EncodePng(ClassImage(0, 1)));
  ExpectRefused("images", dir, "class folder 'middle' is not one of the 2 classes given");
}

}  // namespace
}  // namespace tessera
