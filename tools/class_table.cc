#include "tools/class_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace tessera {

std::string ClassTable(const std::string& summary_json) {
  // ordered_json keeps the keys in file order: the classes in class order.
  const nlohmann::ordered_json summary = nlohmann::ordered_json::parse(summary_json, nullptr, /*allow_exceptions=*/false);
  if (!summary.is_object() || !summary.contains("classification")) return "";
  const nlohmann::ordered_json& c = summary["classification"];
  if (!c.is_object() || !c.contains("per_class") || !c["per_class"].is_object() || !c.contains("macro_f1") ||
      !c["macro_f1"].is_number()) {
    return "";
  }
  const nlohmann::ordered_json& per_class = c["per_class"];
  size_t width = 5;  // "class"
  for (const auto& [name, figures] : per_class.items()) width = std::max(width, name.size());
  std::string table;
  char line[256];
  std::snprintf(line, sizeof(line), "%-*s  precision  recall  f1      support\n", static_cast<int>(width), "class");
  table += line;
  for (const auto& [name, figures] : per_class.items()) {
    if (!figures.is_object()) return "";
    const auto number = [&](const char* key) { return figures.value(key, 0.0); };
    std::snprintf(line, sizeof(line), "%-*s  %-9.4f  %-6.4f  %-6.4f  %lld\n", static_cast<int>(width), name.c_str(),
                  number("precision"), number("recall"), number("f1"),
                  static_cast<long long>(figures.value("support", int64_t{0})));
    table += line;
  }
  std::snprintf(line, sizeof(line), "macro F1 %.4f\n", c["macro_f1"].get<double>());
  return table + line;
}

}  // namespace tessera
