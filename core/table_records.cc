#include "core/table_records.h"

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "core/byte_source.h"
#include "core/criteo_format.h"

namespace tessera {
namespace {

// The class of `field`: an integer in [0, kMaxTableClasses).
StatusOr<int> ParseClassId(std::string_view field) {
  int value = -1;
  const char* end = field.data() + field.size();
  auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end || value < 0 || value >= kMaxTableClasses) {
    return InvalidArgumentError("expected a class id, an integer in [0, " + std::to_string(kMaxTableClasses) +
                                "), got " + QuoteForMessage(field));
  }
  return value;
}

// The label of `field` by the rule `kind`: a class id, 0 or 1, or any finite
// number (an empty field is not one: a label cannot be missing).
StatusOr<float> ParseLabel(std::string_view field, proto::TableLabels::Kind kind) {
  if (kind == proto::TableLabels::CLASS_ID) {
    ASSIGN_OR_RETURN(const int id, ParseClassId(field));
    return static_cast<float>(id);  // exact: ids are below 256
  }
  const StatusOr<std::optional<float>> value = ParseFloatField(field);
  if (!value.ok() || !value->has_value()) {
    return InvalidArgumentError(std::string(kind == proto::TableLabels::BINARY ? "expected a label 0 or 1"
                                                                                : "expected a finite number") +
                                ", got " + QuoteForMessage(field));
  }
  if (kind == proto::TableLabels::BINARY && **value != 0.0f && **value != 1.0f) {
    return InvalidArgumentError("expected a label 0 or 1, got " + QuoteForMessage(field));
  }
  return **value;
}

}  // namespace

Status ParseRecord(const CsvReader& reader, const CsvRecord& record, const std::vector<int>& columns, size_t features,
                   float fill, proto::TableLabels::Kind kind, ParsedRecord* out) {
  const int label_column = columns[0];
  auto label = ParseLabel(record.fields[label_column], kind);
  if (!label.ok()) {
    return label.status().WithContext(reader.Place(record) + ": column '" + reader.Columns()[label_column] + "'");
  }
  out->label = *label;
  out->values.resize(features);
  out->present.resize(features);
  for (size_t f = 0; f < features; ++f) {
    // ParseFloatField parses as reader.ParseFloat does, without its result's
    // copy for every field; a field it refuses is parsed again by
    // reader.ParseFloat for the message that names the line and column.
    const StatusOr<std::optional<float>> v = ParseFloatField(record.fields[columns[f + 1]]);
    if (!v.ok()) return reader.ParseFloat(record, columns[f + 1]).status();
    out->present[f] = v->has_value();
    out->values[f] = v->value_or(fill);
  }
  return OkStatus();
}

StatusOr<bool> GoodRecords::Next(CsvRecord* record, ParsedRecord* parsed) {
  while (true) {
    StatusOr<bool> more = reader_->Next(record);
    Status checked = more.ok() && *more ? Check(*record, parsed) : more.status();
    if (checked.ok()) return more;
    if (!data_.table().skip_bad_records() || reader_->failed()) return checked;
    ++bad_->count;
    if (bad_->first.size() < BadRecords::kNamed) bad_->first.push_back(checked.message());
  }
}

namespace {

// A Criteo line by its own rules (ParseCriteoRecord: the label 0 or 1, each
// integer field an integer or empty), its features made CriteoNumeric's.
Status ParseCriteoTableRecord(const CsvReader& reader, const CsvRecord& record, ParsedRecord* out) {
  CriteoExample example;
  RETURN_IF_ERROR(ParseCriteoRecord(reader, record, &example));
  out->label = static_cast<float>(example.label);
  out->values.resize(kCriteoIntegerFields);
  out->present.resize(kCriteoIntegerFields);
  for (int i = 0; i < kCriteoIntegerFields; ++i) {
    out->present[i] = example.integers[i].has_value();
    out->values[i] = CriteoNumeric(example.integers[i]);
  }
  return OkStatus();
}

}  // namespace

Status GoodRecords::Check(const CsvRecord& record, ParsedRecord* parsed) {
  if (data_.format() == proto::DataSpec::CRITEO) return ParseCriteoTableRecord(*reader_, record, parsed);
  RETURN_IF_ERROR(ParseRecord(*reader_, record, columns_, numeric_, data_.table().fill_value(), kind_, parsed));
  const int num_classes = data_.table().num_classes();
  if (kind_ == proto::TableLabels::CLASS_ID && num_classes > 0 && parsed->label >= num_classes) {
    return InvalidArgumentError(reader_->Place(record) + ": column '" + reader_->Columns()[columns_[0]] +
                                "': expected a class id below data.table.num_classes " + std::to_string(num_classes) +
                                ", got " + std::to_string(static_cast<int>(parsed->label)));
  }
  return OkStatus();
}

}  // namespace tessera
