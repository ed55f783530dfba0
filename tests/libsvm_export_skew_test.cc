// Train/serve skew of libsvm models with real processes: a small
// multi-class job and a small two-class one (labels -1/+1) train on libsvm
// files written here, export (the manifest records the "libsvm"
// preprocessing), and the test file's lines go through `tessera predict`
// (the same gzip'd file training evaluated) and a real `tessera serve`
// ("indices" and "values", and the model's own pairs tensor): predict's
// accuracy is the training evaluation's, and serve's outputs are predict's,
// bit for bit. Lines the model cannot take are one line and exit 2 (predict)
// or 400 (serve); int8 export is refused with one line.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "tests/skew_test_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr int kClasses = 3;
constexpr int kTestLines = 40;

// Line i's features: 1 to 6, 1-based indexes 1..30 strictly increasing
// (feature j of the line in [5j + 1, 5j + 5]), class c shifting the values
// of the features j with j % 3 == c (every 7th line another class's).
struct Line {
  int label = 0;
  std::vector<int> indexes;
  std::vector<std::string> values;  // as written
};

Line MakeLine(int i, int classes) {
  Line line;
  line.label = i % classes;
  const int looks_like = i % 7 == 0 ? (i + 1) % classes : line.label;  // some lines mislead: accuracy < 1
  const int n = 1 + (i * 7) % 6;
  for (int j = 0; j < n; ++j) {
    line.indexes.push_back(1 + 5 * j + (i + looks_like) % 5);
    char v[32];
    std::snprintf(v, sizeof(v), "%.6g", ((i * 7 + j * 13) % 17) / 8.0 - 1.0 + (j % classes == looks_like ? 0.7 : 0.0));
    line.values.push_back(v);
  }
  return line;
}

// Lines [offset, offset + count) as a libsvm file; binary labels as -1/+1.
std::string LibsvmText(int count, int offset, int classes) {
  std::string text;
  for (int i = offset; i < offset + count; ++i) {
    const Line line = MakeLine(i, classes);
    text += classes == 2 ? (line.label == 1 ? "+1" : "-1") : std::to_string(line.label);
    for (size_t j = 0; j < line.indexes.size(); ++j) {
      text += " " + std::to_string(line.indexes[j]) + ":" + line.values[j];
    }
    text += i % 5 == 0 ? "  # a comment\n" : "\n";
  }
  return text;
}

std::string Spec(const std::string& dir, const std::string& name, int classes) {
  const bool binary = classes == 2;
  return R"pb(
    name: ")pb" + name + R"pb("
    model {
      layer { sparse_linear { out_features: 8 } }
      layer { relu {} }
      layer { linear { out_features: )pb" + std::to_string(classes) + R"pb( } }
    }
    data {
      format: LIBSVM
      dir: ")pb" + dir + R"pb("
      train_files: ")pb" + name + R"pb(-train.svm"
      test_files: ")pb" + name + R"pb(-test.svm.gz"
      libsvm { )pb" + (binary ? "labels: SIGNED_BINARY" : "") + R"pb( }
    }
    optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }
    batch_size: 16
    epochs: 3
  )pb";
}

class LibsvmExportSkewTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("OMP_NUM_THREADS", "1", 1);  // predict and serve sum the same way
    dir_ = new std::string(MakeTempDir("libsvm-export-skew"));
    for (const auto& [name, classes] : {std::pair<std::string, int>{"svm", kClasses}, {"binary-svm", 2}}) {
      WriteText(*dir_ + "/" + name + "-train.svm", LibsvmText(300, 0, classes));
      WriteGzText(*dir_ + "/" + name + "-test.svm.gz", LibsvmText(kTestLines, 1000, classes));
    }
    multi_error_ = new std::string(TrainAndExport(*dir_, Spec(*dir_, "svm", kClasses), "svm"));
    binary_error_ = new std::string(TrainAndExport(*dir_, Spec(*dir_, "binary-svm", 2), "binary-svm"));
  }
  void SetUp() override {
    ASSERT_EQ(*multi_error_, "");
    ASSERT_EQ(*binary_error_, "");
  }

  // `tessera predict` of NAME over FILE (one batch, one thread): its rows.
  static std::vector<std::vector<std::string>> Predict(const std::string& name, const std::string& file,
                                                      std::string* output, int batch_size = kTestLines,
                                                      int workers = 1) {
    const std::string out = *dir_ + "/" + name + "-predictions.csv";
    CommandResult r = RunTessera({"predict", *dir_ + "/repo/" + name, file, "--out", out, "--batch-size",
                                  std::to_string(batch_size), "--threads", "1", "--progress", "none", "--device",
                                  "cpu", "--workers", std::to_string(workers)});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    *output = r.output;
    return ReadCsv(out);
  }

  // The test lines as serve's "indices" and "values" ([N, K], K the most
  // features of a line, padded with (-1, 0)).
  static json RawInputs(int classes) {
    json indices = json::array(), values = json::array();
    for (int i = 1000; i < 1000 + kTestLines; ++i) {
      const Line line = MakeLine(i, classes);
      json row_i = json::array(), row_v = json::array();
      for (size_t j = 0; j < 6; ++j) {
        row_i.push_back(j < line.indexes.size() ? line.indexes[j] : -1);
        row_v.push_back(j < line.values.size() ? json::parse(line.values[j]) : json(0));
      }
      indices.push_back(row_i);
      values.push_back(row_v);
    }
    return json::array({{{"name", "indices"}, {"datatype", "INT64"}, {"shape", {kTestLines, 6}}, {"data", indices}},
                        {{"name", "values"}, {"datatype", "FP32"}, {"shape", {kTestLines, 6}}, {"data", values}}});
  }

  static json Output(const json& response, const std::string& name) {
    for (const json& o : response["outputs"]) {
      if (o["name"] == name) return o;
    }
    ADD_FAILURE() << "no output " << name << " in " << response.dump().substr(0, 400);
    return json::object();
  }

  static std::string* dir_;
  static std::string* multi_error_;
  static std::string* binary_error_;
};
std::string* LibsvmExportSkewTest::dir_ = nullptr;
std::string* LibsvmExportSkewTest::multi_error_ = nullptr;
std::string* LibsvmExportSkewTest::binary_error_ = nullptr;

TEST_F(LibsvmExportSkewTest, TheManifestRecordsTheLibsvmInputAndTheTrainingEvaluation) {
  const json manifest = json::parse(FileText(*dir_ + "/repo/svm/1/manifest.json"));
  const json& p = manifest["preprocessing"];
  EXPECT_EQ(p["kind"], "libsvm");
  EXPECT_EQ(p["num_features"], 30);  // the largest index, 30, 1-based
  EXPECT_EQ(p["index_base"], 1);
  EXPECT_EQ(p["pairs"], 6);
  EXPECT_EQ(p["labels"], "class_ids");
  EXPECT_EQ(manifest["input"]["shape"], json({"N", 12})) << manifest["input"].dump();
  // The export evaluates through training's reader: the run's own figure.
  const std::string summary = FileText(*dir_ + "/run-svm/summary.json");
  EXPECT_EQ(manifest["test_accuracy"].get<double>(), JsonNumber(summary, "test_accuracy")) << summary;
  EXPECT_EQ(json::parse(FileText(*dir_ + "/repo/binary-svm/1/manifest.json"))["preprocessing"]["labels"],
            "signed_binary");
}

TEST_F(LibsvmExportSkewTest, TestLinesGiveTheTrainingAccuracyAndTheSameOutputsThroughPredictAndServe) {
  std::string output;
  const auto rows = Predict("svm", *dir_ + "/svm-test.svm.gz", &output);
  ASSERT_EQ(rows.size(), static_cast<size_t>(kTestLines + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "class", "prob_0", "prob_1", "prob_2", "class_name"}));
  // The training evaluation's accuracy, over the same lines.
  const double accuracy = JsonNumber(FileText(*dir_ + "/run-svm/summary.json"), "test_accuracy");
  const std::string correct = std::to_string(static_cast<int>(accuracy * kTestLines + 0.5));
  EXPECT_NE(output.find("(" + correct + " of " + std::to_string(kTestLines) + ")"), std::string::npos)
      << output << " (training: " << accuracy << ")";

  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json probabilities = Output(Infer(serve, "svm", {{"inputs", RawInputs(kClasses)}}), "probabilities");
  ASSERT_EQ(probabilities["data"].size(), static_cast<size_t>(kTestLines * kClasses));
  for (int r = 0; r < kTestLines; ++r) {
    for (int k = 0; k < kClasses; ++k) {
      const float served = static_cast<float>(probabilities["data"][r * kClasses + k].get<double>());
      EXPECT_EQ(served, ParseFloat(rows[r + 1][2 + k])) << "row " << r << " class " << k;
    }
  }
  // Worker processes, each reading its own lines of the file, write the same bytes as one process.
  const std::string csv = *dir_ + "/svm-predictions.csv";
  std::string workers_output;
  Predict("svm", *dir_ + "/svm-test.svm.gz", &workers_output, /*batch_size=*/8, /*workers=*/3);
  EXPECT_NE(workers_output.find("(" + correct + " of "), std::string::npos) << workers_output;
  EXPECT_NE(workers_output.find("(3 workers"), std::string::npos) << workers_output;
  const std::string by_workers = FileText(csv);
  Predict("svm", *dir_ + "/svm-test.svm.gz", &output, /*batch_size=*/8, /*workers=*/1);
  EXPECT_EQ(FileText(csv), by_workers);

  // The model's own tensor: the pairs flat, features 0-based.
  json own = json::array();
  for (int k = 0; k < 6; ++k) {
    const Line line = MakeLine(1000, kClasses);
    own.push_back(k < static_cast<int>(line.indexes.size()) ? line.indexes[k] - 1 : -1);
    own.push_back(k < static_cast<int>(line.values.size()) ? json::parse(line.values[k]) : json(0));
  }
  const json response = Infer(serve, "svm", {{"inputs", {{{"name", "input"}, {"datatype", "FP32"},
                                                            {"shape", {1, 12}}, {"data", own}}}}});
  const json first = Output(response, "probabilities");
  ASSERT_EQ(first["data"].size(), static_cast<size_t>(kClasses));
  for (int k = 0; k < kClasses; ++k) EXPECT_EQ(static_cast<float>(first["data"][k].get<double>()), ParseFloat(rows[1][2 + k]));

  httplib::Client client("127.0.0.1", serve.port);
  auto meta = client.Get("/v2/models/svm");
  ASSERT_TRUE(meta);
  const json metadata = json::parse(meta->body);
  ASSERT_EQ(metadata["inputs"].size(), 2u) << meta->body;
  EXPECT_EQ(metadata["inputs"][0]["name"], "indices");
  EXPECT_EQ(metadata["inputs"][1]["name"], "values");
  // An index beyond the model's features: 400, naming it.
  json bad = RawInputs(kClasses);
  bad[0]["data"][2][0] = 31;
  auto refused = client.Post("/v2/models/svm/infer", json({{"inputs", bad}}).dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_NE(refused->body.find("row 2: feature index 31: expected in [1, 31)"), std::string::npos) << refused->body;
}

// libsvm labels are classes: -1/+1 lines (SIGNED_BINARY) train two classes.
TEST_F(LibsvmExportSkewTest, SignedBinaryLinesGiveTheSameProbabilitiesThroughPredictAndServe) {
  std::string output;
  const auto rows = Predict("binary-svm", *dir_ + "/binary-svm-test.svm.gz", &output);
  const double accuracy = JsonNumber(FileText(*dir_ + "/run-binary-svm/summary.json"), "test_accuracy");
  const std::string correct = std::to_string(static_cast<int>(accuracy * kTestLines + 0.5));
  EXPECT_NE(output.find("(" + correct + " of " + std::to_string(kTestLines) + ")"), std::string::npos)
      << output << " (training: " << accuracy << ")";  // the labels, -1/+1, were read as training read them
  ASSERT_EQ(rows.size(), static_cast<size_t>(kTestLines + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "class", "prob_0", "prob_1", "class_name"}));
  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json probabilities = Output(Infer(serve, "binary-svm", {{"inputs", RawInputs(2)}}), "probabilities");
  ASSERT_EQ(probabilities["data"].size(), static_cast<size_t>(2 * kTestLines));
  for (int r = 0; r < kTestLines; ++r) {
    for (int k = 0; k < 2; ++k) {
      EXPECT_EQ(static_cast<float>(probabilities["data"][2 * r + k].get<double>()), ParseFloat(rows[r + 1][2 + k]))
          << "row " << r;
    }
  }
}

TEST_F(LibsvmExportSkewTest, LinesTheModelCannotTakeAreOneLineAndExit2) {
  const std::string model = *dir_ + "/repo/svm";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"0 1:1 31:2\n", "bad-index.svm:1: feature index 31: expected in [1, 31) (the model's 30 features"},
      {"1 1:1\n2 1:1 2:1 3:1 4:1 5:1 6:1 7:1\n", "bad-pairs.svm:2: 7 features: expected at most 6"},
      {"1 1:1\n\n7 2:1\n", "bad-label.svm:3: label 7.000000: expected a class id, an integer in [0, 3)"},
      {"1 2:1 1:1\n", "bad-order.svm:1: feature"},
  };
  const char* const names[] = {"bad-index.svm", "bad-pairs.svm", "bad-label.svm", "bad-order.svm"};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = *dir_ + "/" + names[i];
    WriteText(path, cases[i].first);
    CommandResult r = RunTessera({"predict", model, path, "--out", *dir_ + "/bad.csv", "--progress", "none"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(cases[i].second), std::string::npos) << r.output;
    EXPECT_FALSE(FileExists(*dir_ + "/bad.csv"));
  }
}

TEST_F(LibsvmExportSkewTest, Int8ExportIsRefusedWithOneLineAndFp16Predicts) {
  CommandResult r = RunTessera({"export", *dir_ + "/run-svm", "--out", *dir_ + "/repo/svm-int8", "--quantize", "int8"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--quantize int8: this model's first layer is a sparse_linear"), std::string::npos)
      << r.output;
  EXPECT_FALSE(FileExists(*dir_ + "/repo/svm-int8/1/model.onnx"));

  r = RunTessera({"export", *dir_ + "/run-svm", "--out", *dir_ + "/repo/svm-fp16", "--quantize", "fp16"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string output;
  const auto rows = Predict("svm-fp16", *dir_ + "/svm-test.svm.gz", &output);
  EXPECT_EQ(rows.size(), static_cast<size_t>(kTestLines + 1));
  const json manifest = json::parse(FileText(*dir_ + "/repo/svm-fp16/1/manifest.json"));
  EXPECT_EQ(manifest["precision"], "fp16");
}

}  // namespace
}  // namespace tessera
