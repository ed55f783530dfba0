#include "core/json.h"

#include <cmath>
#include <cstdio>

namespace tessera {

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

void JsonObject::Key(const std::string& key) {
  if (!body_.empty()) {
    body_ += ", ";
    pretty_ += ",\n";
  }
  body_ += JsonQuote(key) + ": ";
  pretty_ += "  " + JsonQuote(key) + ": ";
}

JsonObject& JsonObject::Add(const std::string& key, const std::string& value) {
  Key(key);
  body_ += JsonQuote(value);
  pretty_ += JsonQuote(value);
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, double value) {
  Key(key);
  std::string v = "null";  // JSON has no NaN or infinity
  if (std::isfinite(value)) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", value);
    v = buf;
  }
  body_ += v;
  pretty_ += v;
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, int64_t value) {
  Key(key);
  body_ += std::to_string(value);
  pretty_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  pretty_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, const std::vector<int64_t>& values) {
  Key(key);
  std::string v = "[";
  for (size_t i = 0; i < values.size(); ++i) v += (i > 0 ? ", " : "") + std::to_string(values[i]);
  v += "]";
  body_ += v;
  pretty_ += v;
  return *this;
}

std::string JsonObject::ToPrettyString() const { return "{\n" + pretty_ + "\n}\n"; }

}  // namespace tessera
