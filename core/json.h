// A minimal JSON object writer for metrics lines and summary.json.
// Thread-compatible value type.
#ifndef TESSERA_CORE_JSON_H_
#define TESSERA_CORE_JSON_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

class JsonObject {
 public:
  JsonObject& Add(const std::string& key, const std::string& value);
  JsonObject& Add(const std::string& key, const char* value) { return Add(key, std::string(value)); }
  JsonObject& Add(const std::string& key, double value);
  JsonObject& Add(const std::string& key, int64_t value);
  JsonObject& Add(const std::string& key, int value) { return Add(key, static_cast<int64_t>(value)); }
  JsonObject& Add(const std::string& key, bool value);
  // An array of integers: "key": [1, 2, 3].
  JsonObject& Add(const std::string& key, const std::vector<int64_t>& values);

  // One line: {"a": 1, "b": "x"}.
  std::string ToString() const { return "{" + body_ + "}"; }
  // Indented, one key per line, for files people read.
  std::string ToPrettyString() const;

 private:
  void Key(const std::string& key);
  std::string body_;
  std::string pretty_;
};

std::string JsonQuote(const std::string& s);

}  // namespace tessera

#endif  // TESSERA_CORE_JSON_H_
