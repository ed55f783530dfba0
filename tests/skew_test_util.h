// What the train/serve skew tests share (raw_input_skew_test,
// task_export_skew_test): a spec trained and exported, predict's CSV read
// back, its decimals parsed as the floats they print, and one KServe infer
// request to a real `tessera serve`.
#ifndef TESSERA_TESTS_SKEW_TEST_UTIL_H_
#define TESSERA_TESTS_SKEW_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace tessera {

// Trains `spec` (written as DIR/NAME.pbtxt) on one CPU thread and exports
// its run into DIR/repo/NAME; "" on success, else the failing command's output.
inline std::string TrainAndExport(const std::string& dir, const std::string& spec, const std::string& name) {
  std::ofstream(dir + "/" + name + ".pbtxt") << spec;
  const std::string run = dir + "/run-" + name;
  CommandResult r = RunTessera({"train", dir + "/" + name + ".pbtxt", "--run-dir", run, "--threads", "1",
                                "--progress", "none", "--device", "cpu"});
  if (r.exit_code != 0) return r.output;
  r = RunTessera({"export", run, "--out", dir + "/repo/" + name});
  return r.exit_code == 0 ? "" : r.output;
}

// The rows of a predictions CSV: its fields, quoted ones unquoted.
inline std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(FileText(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        fields.emplace_back();
      } else {
        fields.back() += c;
      }
    }
    rows.push_back(fields);
  }
  return rows;
}

// The float a predictions field prints (its shortest decimal).
inline float ParseFloat(const std::string& text) {
  float v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

// Posts `body` to MODEL's infer endpoint; the parsed response (null, and a
// test failure, when there is none or it is not 200).
inline nlohmann::json Infer(const ServeProcess& serve, const std::string& model, const nlohmann::json& body) {
  httplib::Client client("127.0.0.1", serve.port);
  client.set_read_timeout(60, 0);
  auto res = client.Post("/v2/models/" + model + "/infer", body.dump(), "application/json");
  EXPECT_TRUE(res) << httplib::to_string(res.error());
  if (!res) return nlohmann::json();
  EXPECT_EQ(res->status, 200) << res->body;
  return nlohmann::json::parse(res->body, nullptr, false);
}

}  // namespace tessera

#endif  // TESSERA_TESTS_SKEW_TEST_UTIL_H_
