// JsonObject: the one JSON writer for what Tessera writes — metrics.jsonl
// lines, summary.json, `tessera inspect --json`, the KServe responses of
// `tessera serve`. An object is built member by member (keys in the order
// added) and written in one of three layouts:
//
//   ToString()         {"a": 1, "b": [1, 2], "c": {"d": "x"}}   metrics lines, --json
//   ToCompactString()  {"a":1,"b":[1,2],"c":{"d":"x"}}          HTTP responses
//   ToPrettyString()   one top-level key per line, values as ToString,
//                      ending in a newline                      files people read
//
// Numbers: integers exactly; a double with 9 significant digits ("%.9g");
// AddFloat32's values, FP32 tensor data, with the fewest digits that read
// back as the same float, and AddFloat64's with the fewest that read back as
// the same double. JSON has no NaN or infinity: they are written as null.
// Keys are not checked for duplicates. An array whose elements differ in
// type (["N", 1, 28, 28]) is a JsonArray.
//
// A value type; thread-compatible.
#ifndef TESSERA_CORE_JSON_H_
#define TESSERA_CORE_JSON_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

class JsonArray;

class JsonObject {
 public:
  JsonObject& Add(const std::string& key, const std::string& value);
  JsonObject& Add(const std::string& key, const char* value) { return Add(key, std::string(value)); }
  JsonObject& Add(const std::string& key, double value);
  JsonObject& Add(const std::string& key, int64_t value);
  JsonObject& Add(const std::string& key, int value) { return Add(key, static_cast<int64_t>(value)); }
  JsonObject& Add(const std::string& key, bool value);
  // A nested object: "key": {...}.
  JsonObject& Add(const std::string& key, const JsonObject& value);
  // Arrays: "key": [1, 2, 3], [0.5, null], ["a", "b"], [{...}, {...}].
  JsonObject& Add(const std::string& key, const std::vector<int64_t>& values);
  JsonObject& Add(const std::string& key, const std::vector<double>& values);
  JsonObject& Add(const std::string& key, const std::vector<std::string>& values);
  JsonObject& Add(const std::string& key, const std::vector<JsonObject>& values);
  JsonObject& Add(const std::string& key, const JsonArray& values);
  // Floats as float32 (shortest round trip), not widened to double's digits;
  // by name, so that a float argument to Add stays a double as before.
  JsonObject& AddFloat32(const std::string& key, float value);
  JsonObject& AddFloat32s(const std::string& key, const std::vector<float>& values);
  // A double with the fewest digits that read back as the same double
  // (0.9254321078392698, where Add writes 0.925432108).
  JsonObject& AddFloat64(const std::string& key, double value);
  // "key": null.
  JsonObject& AddNull(const std::string& key);

  std::string ToString() const;
  std::string ToCompactString() const;
  std::string ToPrettyString() const;

 private:
  // A member's value is kept in both spacings, so that a nested object or
  // array is written in the layout of the object that holds it.
  struct Member {
    std::string key;  // quoted
    std::string spaced;
    std::string compact;
  };
  JsonObject& AddText(const std::string& key, std::string spaced, std::string compact);
  JsonObject& AddScalar(const std::string& key, const std::string& text) { return AddText(key, text, text); }
  JsonObject& AddArray(const std::string& key, const std::vector<std::string>& spaced,
                       const std::vector<std::string>& compact);

  std::vector<Member> members_;
};

// An array built element by element, of any element types; written in the
// layout of the object that holds it. A value type; thread-compatible.
class JsonArray {
 public:
  JsonArray& Add(const std::string& value);
  JsonArray& Add(const char* value) { return Add(std::string(value)); }
  JsonArray& Add(int64_t value);
  JsonArray& Add(int value) { return Add(static_cast<int64_t>(value)); }
  JsonArray& Add(const JsonObject& value);

  std::string ToString() const;         // ["N", 1, 28]
  std::string ToCompactString() const;  // ["N",1,28]

 private:
  std::vector<std::string> spaced_;   // each element as ToString writes it
  std::vector<std::string> compact_;  // and as ToCompactString does
};

// `s` as a JSON string literal, quotes included ("\u00XX" for control bytes;
// other bytes, UTF-8 included, as they are).
std::string JsonQuote(const std::string& s);

}  // namespace tessera

#endif  // TESSERA_CORE_JSON_H_
