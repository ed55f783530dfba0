#include "core/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace tessera {
namespace {

std::string DoubleText(double value) {
  if (!std::isfinite(value)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", value);
  return buf;
}

std::string Float32Text(float value) {
  if (!std::isfinite(value)) return "null";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, end);  // 32 bytes hold any float's shortest form
}

std::string Float64Text(double value) {
  if (!std::isfinite(value)) return "null";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, end);  // 32 bytes hold any double's shortest form
}

std::string Join(const std::vector<std::string>& items, const char* separator, const char* open, const char* close) {
  std::string out = open;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out + close;
}

template <typename T, typename Format>
std::vector<std::string> Texts(const std::vector<T>& values, Format format) {
  std::vector<std::string> texts;
  texts.reserve(values.size());
  for (const T& v : values) texts.push_back(format(v));
  return texts;
}

}  // namespace

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

JsonObject& JsonObject::AddText(const std::string& key, std::string spaced, std::string compact) {
  members_.push_back({JsonQuote(key), std::move(spaced), std::move(compact)});
  return *this;
}

JsonObject& JsonObject::AddArray(const std::string& key, const std::vector<std::string>& spaced,
                                 const std::vector<std::string>& compact) {
  return AddText(key, Join(spaced, ", ", "[", "]"), Join(compact, ",", "[", "]"));
}

JsonObject& JsonObject::Add(const std::string& key, const std::string& value) {
  return AddScalar(key, JsonQuote(value));
}

JsonObject& JsonObject::Add(const std::string& key, double value) { return AddScalar(key, DoubleText(value)); }

JsonObject& JsonObject::Add(const std::string& key, int64_t value) { return AddScalar(key, std::to_string(value)); }

JsonObject& JsonObject::Add(const std::string& key, bool value) { return AddScalar(key, value ? "true" : "false"); }

JsonObject& JsonObject::AddFloat32(const std::string& key, float value) { return AddScalar(key, Float32Text(value)); }

JsonObject& JsonObject::AddFloat64(const std::string& key, double value) { return AddScalar(key, Float64Text(value)); }

JsonObject& JsonObject::AddNull(const std::string& key) { return AddScalar(key, "null"); }

JsonObject& JsonObject::Add(const std::string& key, const JsonObject& value) {
  return AddText(key, value.ToString(), value.ToCompactString());
}

JsonObject& JsonObject::Add(const std::string& key, const std::vector<int64_t>& values) {
  const std::vector<std::string> texts = Texts(values, [](int64_t v) { return std::to_string(v); });
  return AddArray(key, texts, texts);
}

JsonObject& JsonObject::Add(const std::string& key, const std::vector<double>& values) {
  const std::vector<std::string> texts = Texts(values, DoubleText);
  return AddArray(key, texts, texts);
}

JsonObject& JsonObject::Add(const std::string& key, const std::vector<std::string>& values) {
  const std::vector<std::string> texts = Texts(values, JsonQuote);
  return AddArray(key, texts, texts);
}

JsonObject& JsonObject::Add(const std::string& key, const std::vector<JsonObject>& values) {
  return AddArray(key, Texts(values, [](const JsonObject& o) { return o.ToString(); }),
                  Texts(values, [](const JsonObject& o) { return o.ToCompactString(); }));
}

JsonObject& JsonObject::Add(const std::string& key, const JsonArray& values) {
  return AddText(key, values.ToString(), values.ToCompactString());
}

JsonObject& JsonObject::AddFloat32s(const std::string& key, const std::vector<float>& values) {
  const std::vector<std::string> texts = Texts(values, Float32Text);
  return AddArray(key, texts, texts);
}

std::string JsonObject::ToString() const {
  std::vector<std::string> members;
  for (const Member& m : members_) members.push_back(m.key + ": " + m.spaced);
  return Join(members, ", ", "{", "}");
}

std::string JsonObject::ToCompactString() const {
  std::vector<std::string> members;
  for (const Member& m : members_) members.push_back(m.key + ":" + m.compact);
  return Join(members, ",", "{", "}");
}

std::string JsonObject::ToPrettyString() const {
  std::vector<std::string> lines;
  for (const Member& m : members_) lines.push_back("  " + m.key + ": " + m.spaced);
  return Join(lines, ",\n", "{\n", "\n}\n");
}

JsonArray& JsonArray::Add(const std::string& value) {
  spaced_.push_back(JsonQuote(value));
  compact_.push_back(spaced_.back());
  return *this;
}

JsonArray& JsonArray::Add(int64_t value) {
  spaced_.push_back(std::to_string(value));
  compact_.push_back(spaced_.back());
  return *this;
}

JsonArray& JsonArray::Add(const JsonObject& value) {
  spaced_.push_back(value.ToString());
  compact_.push_back(value.ToCompactString());
  return *this;
}

std::string JsonArray::ToString() const { return Join(spaced_, ", ", "[", "]"); }

std::string JsonArray::ToCompactString() const { return Join(compact_, ",", "[", "]"); }

}  // namespace tessera
