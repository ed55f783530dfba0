#include "tools/task_table.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace tessera {
namespace {

using Json = nlohmann::ordered_json;

// `key` of `object` with 4 decimals, or "undefined" when it is null or missing.
std::string Figure(const Json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number()) return "undefined";
  char text[64];
  std::snprintf(text, sizeof(text), "%.4f", object[key].get<double>());
  return text;
}

long long Count(const Json& object, const char* key) {
  return object.contains(key) && object[key].is_number_integer() ? object[key].get<long long>() : 0;
}

Json Parse(const std::string& summary_json) { return Json::parse(summary_json, nullptr, /*allow_exceptions=*/false); }

}  // namespace

std::string TaskTable(const std::string& summary_json) {
  const Json summary = Parse(summary_json);
  if (!summary.is_object()) return "";
  char line[256];
  if (summary.contains("binary") && summary["binary"].is_object()) {
    const Json& b = summary["binary"];
    std::string table;
    std::snprintf(line, sizeof(line), "test examples  %lld (%lld positive, %lld negative)\n", Count(b, "examples"),
                  Count(b, "positives"), Count(b, "negatives"));
    table += line;
    table += "AUC            " + Figure(b, "auc") + "\n";
    table += "log loss       " + Figure(b, "log_loss") + "\n";
    table += "accuracy       " + Figure(b, "accuracy") + " (p > 0.5)\n";
    return table;
  }
  if (summary.contains("regression") && summary["regression"].is_object()) {
    const Json& r = summary["regression"];
    std::snprintf(line, sizeof(line), "test examples  %lld\n", Count(r, "examples"));
    std::string table = line;
    table += "RMSE           " + Figure(r, "rmse") + "\n";
    table += "MAE            " + Figure(r, "mae") + "\n";
    table += "R²             " + Figure(r, "r2") + "\n";
    return table;
  }
  return "";
}

std::string TestFiguresText(const std::string& summary_json) {
  const Json summary = Parse(summary_json);
  if (!summary.is_object()) return "test accuracy undefined";
  if (summary.contains("binary") && summary["binary"].is_object()) {
    return "test AUC " + Figure(summary["binary"], "auc") + ", accuracy " + Figure(summary["binary"], "accuracy");
  }
  if (summary.contains("regression") && summary["regression"].is_object()) {
    return "test RMSE " + Figure(summary["regression"], "rmse") + ", R² " + Figure(summary["regression"], "r2");
  }
  return "test accuracy " + Figure(summary, "test_accuracy");
}

}  // namespace tessera
