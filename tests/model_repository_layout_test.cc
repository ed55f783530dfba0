#include "export/model_repository_layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

TEST(ModelRepositoryLayoutTest, VersionNamesAreDecimalsWithoutLeadingZero) {
  EXPECT_EQ(ParseVersion("1"), 1);
  EXPECT_EQ(ParseVersion("9"), 9);
  EXPECT_EQ(ParseVersion("42"), 42);
  EXPECT_EQ(ParseVersion("1000"), 1000);
  // 18 digits: the longest name taken, it fits an int64.
  EXPECT_EQ(ParseVersion("999999999999999999"), 999999999999999999);
}

TEST(ModelRepositoryLayoutTest, OtherNamesAreNoVersion) {
  for (const char* name : {"", "0", "00", "01", "007", "-1", "+1", "abc", "1x", "x1", "1.0", "1e3", " 1", "1 ",
                           ".export-123-abcd", "1/2",
                           // 19 digits and more: refused rather than overflowing.
                           "1000000000000000000", "9223372036854775807", "99999999999999999999999"}) {
    EXPECT_EQ(ParseVersion(name), -1) << "'" << name << "'";
  }
}

TEST(ModelRepositoryLayoutTest, ModelNames) {
  for (const std::string& name : std::vector<std::string>{"fmnist", "fmnist-mlp", "a_b.c", "A9", std::string(200, 'x')}) {
    EXPECT_TRUE(ValidModelName(name)) << name;
  }
  for (const std::string& name : std::vector<std::string>{"", ".hidden", "a/b", "a b", "é", std::string(201, 'x')}) {
    EXPECT_FALSE(ValidModelName(name)) << name;
  }
}

TEST(ModelRepositoryLayoutTest, Paths) {
  EXPECT_EQ(VersionDir("repo/mlp", 3), "repo/mlp/3");
  EXPECT_EQ(ModelFilePath("repo/mlp/3"), "repo/mlp/3/model.onnx");
  EXPECT_EQ(ManifestPath("repo/mlp/3"), "repo/mlp/3/manifest.json");
}

TEST(ModelRepositoryLayoutTest, AnEmptyOrMissingModelDirHasNoVersion) {
  const std::string dir = MakeTempDir("layout-empty");
  EXPECT_TRUE(ListVersions(dir).empty());
  EXPECT_EQ(HighestVersion(dir), 0);
  EXPECT_TRUE(ListVersions(dir + "/missing").empty());
  EXPECT_EQ(HighestVersion(dir + "/missing"), 0);
}

TEST(ModelRepositoryLayoutTest, ListVersionsTakesVersionDirectoriesOnly) {
  const std::string dir = MakeTempDir("layout-list");
  for (const char* sub : {"1", "2", "10", "01", "0", "abc", ".export-1-2"}) ASSERT_OK(MakeDirs(dir + "/" + sub));
  ASSERT_OK(WriteFileAtomic(dir + "/3", "a file, not a version"));
  const std::map<int64_t, std::string> want = {{1, dir + "/1"}, {2, dir + "/2"}, {10, dir + "/10"}};
  EXPECT_EQ(ListVersions(dir), want);
  // The highest name counts files too: a new version cannot take it.
  ASSERT_OK(WriteFileAtomic(dir + "/12", ""));
  EXPECT_EQ(HighestVersion(dir), 12);
}

TEST(ModelRepositoryLayoutTest, WriteNextVersionNumbersVersionsFromOne) {
  const std::string model_dir = MakeTempDir("layout-write") + "/repo/mlp";  // created as needed
  auto manifest = [](int64_t version) { return "{\"version\": " + std::to_string(version) + "}"; };
  auto first = WriteNextVersion(model_dir, "onnx bytes", manifest);
  ASSERT_OK(first.status());
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(FileText(model_dir + "/1/model.onnx"), "onnx bytes");
  EXPECT_EQ(FileText(model_dir + "/1/manifest.json"), "{\"version\": 1}");
  ASSERT_OK(WriteFileAtomic(model_dir + "/2", "a file holding the next name"));
  auto second = WriteNextVersion(model_dir, "more bytes", manifest);
  ASSERT_OK(second.status());
  EXPECT_EQ(*second, 3);
  EXPECT_EQ(FileText(model_dir + "/3/manifest.json"), "{\"version\": 3}");
  // No temporary directory is left behind.
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(model_dir)) entries += entry.path().filename().string()[0] != '.';
  EXPECT_EQ(entries, 3);
  EXPECT_EQ(ListVersions(model_dir).size(), 2u);
}

TEST(ModelRepositoryLayoutTest, WriteNextVersionRefusesAFileAsModelDir) {
  const std::string dir = MakeTempDir("layout-file");
  ASSERT_OK(WriteFileAtomic(dir + "/mlp", "not a directory"));
  auto version = WriteNextVersion(dir + "/mlp", "bytes", [](int64_t) { return std::string("{}"); });
  EXPECT_FALSE(version.ok());
  EXPECT_EQ(FileText(dir + "/mlp"), "not a directory");
}

constexpr char kManifest[] = R"({"format": "tessera-model", "name": "mlp", "version": 4, "file_bytes": 1234,
  "sha256": "abcd", "format_of_file": "onnx",
  "normalization": {"formula": "(pixel * scale - mean) / std", "scale": 0.003921569, "mean": 0.286, "std": 0.353}})";

TEST(ModelRepositoryLayoutTest, ParsesAManifest) {
  auto fields = ParseManifestFields(kManifest, "m.json");
  ASSERT_OK(fields.status());
  EXPECT_EQ(fields->file_bytes, 1234);
  EXPECT_EQ(fields->sha256, "abcd");
  EXPECT_EQ(fields->name, "mlp");
  EXPECT_EQ(fields->version, 4);
  auto norm = ParseManifestNormalization(kManifest, "m.json");
  ASSERT_OK(norm.status());
  EXPECT_DOUBLE_EQ(norm->scale, 0.003921569);
  EXPECT_DOUBLE_EQ(norm->mean, 0.286);
  EXPECT_DOUBLE_EQ(norm->std, 0.353);
}

TEST(ModelRepositoryLayoutTest, AWrittenManifestReadsBack) {
  ModelManifest m;
  m.name = "mlp";
  m.version = 7;
  m.file_bytes = 4096;
  m.sha256 = "00ff";
  m.input_shape = {1, 28, 28};
  m.num_classes = 10;
  m.scale = 1.0f / 255;
  m.mean = 0.286f;
  m.std = 0.353f;
  m.steps.Add(JsonObject().Add("step", "source").AddNull("test_accuracy"));
  const std::string json = ManifestJson(m);
  EXPECT_EQ(json.rfind("{\n  \"format\": \"tessera-model\",\n  \"format_version\": 1,\n  \"name\": \"mlp\",\n", 0), 0u)
      << json;
  EXPECT_NE(json.find("\n  \"quantization\": \"none\",\n"), std::string::npos) << json;
  EXPECT_NE(json.find("\n  \"pruning_details\": null,\n"), std::string::npos) << json;
  EXPECT_NE(json.find("\n  \"input\": {\"name\": \"input\", \"dtype\": \"float32\", \"shape\": [\"N\", 1, 28, 28]},\n"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"normalization\": {\"formula\": \"(pixel * scale - mean) / std\", \"scale\": 0.003921569, "
                      "\"mean\": 0.286, \"std\": 0.353}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\n  \"test_accuracy\": null,\n  \"test_loss\": null,\n  \"test_examples\": 0\n}\n"),
            std::string::npos)
      << json;
  auto fields = ParseManifestFields(json, "m.json");
  ASSERT_OK(fields.status());
  EXPECT_EQ(fields->name, "mlp");
  EXPECT_EQ(fields->version, 7);
  EXPECT_EQ(fields->file_bytes, 4096);
  EXPECT_EQ(fields->sha256, "00ff");
  auto norm = ParseManifestNormalization(json, "m.json");
  ASSERT_OK(norm.status());
  EXPECT_EQ(static_cast<float>(norm->scale), m.scale);
  EXPECT_EQ(static_cast<float>(norm->mean), m.mean);
  EXPECT_EQ(static_cast<float>(norm->std), m.std);
}

TEST(ModelRepositoryLayoutTest, NameAndVersionAreOptional) {
  auto fields = ParseManifestFields(R"({"format": "tessera-model", "file_bytes": 1, "sha256": "x"})", "m.json");
  ASSERT_OK(fields.status());
  EXPECT_EQ(fields->name, "");
  EXPECT_EQ(fields->version, 0);
}

TEST(ModelRepositoryLayoutTest, BadManifestsAreRefusedNamingTheFile) {
  const std::map<std::string, std::string> cases = {
      {"[1, 2]", "m.json is not a JSON object"},
      {"{\"format\": ", "m.json is not a JSON object"},
      {R"({"format": "other", "file_bytes": 1, "sha256": "x"})", "m.json: format must be \"tessera-model\""},
      {R"({"format": "tessera-model", "format_of_file": "tflite", "file_bytes": 1, "sha256": "x"})",
       "m.json: format_of_file must be \"onnx\""},
      {R"({"format": "tessera-model", "file_bytes": "1", "sha256": "x"})", "m.json: 'file_bytes' must be a number"},
      {R"({"format": "tessera-model", "file_bytes": 1, "sha256": 5})", "m.json: 'sha256' must be a string"},
      // Not strings where strings belong: refused, never thrown (it crashed serve and predict).
      {R"({"format": 7, "file_bytes": 1, "sha256": "x"})", "m.json: 'format' must be a string"},
      {R"({"format": "tessera-model", "format_of_file": ["onnx"], "file_bytes": 1, "sha256": "x"})",
       "m.json: 'format_of_file' must be a string"},
  };
  for (const auto& [json, message] : cases) {
    auto fields = ParseManifestFields(json, "m.json");
    ASSERT_FALSE(fields.ok()) << json;
    EXPECT_EQ(fields.status().code(), StatusCode::kInvalidArgument) << json;
    EXPECT_EQ(fields.status().message(), message) << json;
  }
}

TEST(ModelRepositoryLayoutTest, BadNormalizationsAreRefused) {
  const std::map<std::string, std::string> cases = {
      {R"({})", "m.json: 'normalization' must be an object"},
      {R"({"normalization": {"scale": 1, "mean": 0}})", "m.json normalization: 'std' must be a number"},
      {R"({"normalization": {"scale": 1, "mean": 0, "std": 0}})",
       "m.json: normalization needs finite numbers and std > 0"},
  };
  for (const auto& [json, message] : cases) {
    auto norm = ParseManifestNormalization(json, "m.json");
    ASSERT_FALSE(norm.ok()) << json;
    EXPECT_EQ(norm.status().message(), message) << json;
  }
}

}  // namespace
}  // namespace tessera
