#include "core/criteo_format.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include "core/byte_source.h"
#include "core/categorical.h"

namespace tessera {
namespace {

std::vector<std::string> MakeColumnNames() {
  std::vector<std::string> names = {"label"};
  for (int i = 1; i <= kCriteoIntegerFields; ++i) names.push_back("I" + std::to_string(i));
  for (int c = 1; c <= kCriteoCategoricalFields; ++c) names.push_back("C" + std::to_string(c));
  return names;
}

// "FILE:LINE: column \"I3\": expected ..., got \"x\"".
Status FieldError(const CsvReader& reader, const CsvRecord& record, int column, const std::string& expected) {
  return InvalidArgumentError(reader.Place(record) + ": column " + QuoteForMessage(CriteoColumnNames()[column]) +
                              ": expected " + expected + ", got " + QuoteForMessage(record.fields[column]));
}

// A decimal integer with an optional '-' (Criteo's I2 goes below 0).
std::optional<int64_t> ParseInteger(std::string_view field) {
  int64_t value = 0;
  const char* end = field.data() + field.size();
  const auto [stop, error] = std::from_chars(field.data(), end, value);
  if (error != std::errc() || stop != end) return std::nullopt;
  return value;
}

// Criteo's categorical values are hashes written as hex digits; anything
// else means the file is not in the layout (a shifted column, a header).
bool IsHexValue(std::string_view field) {
  if (field.size() > kCriteoMaxHexDigits) return false;
  for (const char c : field) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

const std::vector<std::string>& CriteoColumnNames() {
  static const std::vector<std::string>* const names = new std::vector<std::string>(MakeColumnNames());
  return *names;
}

CsvOptions CriteoCsvOptions() {
  CsvOptions options;
  options.delimiter = '\t';
  options.column_names = CriteoColumnNames();
  options.quoting = false;
  return options;
}

Status ParseCriteoRecord(const CsvReader& reader, const CsvRecord& record, CriteoExample* example) {
  if (record.fields.size() != kCriteoFields) {  // the reader's options were not CriteoCsvOptions
    return InvalidArgumentError(reader.Place(record) + ": " + std::to_string(record.fields.size()) +
                                " fields, expected " + std::to_string(kCriteoFields) +
                                " (a label, 13 integer and 26 categorical fields)");
  }
  const std::string_view label = record.fields[0];
  if (label != "0" && label != "1") return FieldError(reader, record, 0, "0 or 1");
  example->label = label[0] - '0';
  for (int i = 0; i < kCriteoIntegerFields; ++i) {
    const std::string_view field = record.fields[1 + i];
    if (field.empty()) {
      example->integers[i].reset();
      continue;
    }
    example->integers[i] = ParseInteger(field);
    if (!example->integers[i].has_value()) {
      return FieldError(reader, record, 1 + i, "an integer (or nothing, for a missing value)");
    }
  }
  for (int c = 0; c < kCriteoCategoricalFields; ++c) {
    const int column = 1 + kCriteoIntegerFields + c;
    if (!IsHexValue(record.fields[column])) {
      return FieldError(reader, record, column,
                        "up to " + std::to_string(kCriteoMaxHexDigits) + " hex digits (or nothing, for a missing value)");
    }
    example->categorical[c] = record.fields[column];
  }
  return OkStatus();
}

float CriteoNumeric(std::optional<int64_t> x) {
  if (!x.has_value() || *x <= 0) return 0.0f;
  return static_cast<float>(std::log1p(static_cast<double>(*x)));
}

uint64_t CriteoId(int number, std::string_view value) { return SparseColumnId(number, value); }

}  // namespace tessera
