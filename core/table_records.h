// The records of a CSV/TSV data set as training reads them (core/table_data.h
// owns the rest): one record's label and numeric features parsed and checked
// by the spec's rules, and a file's good records one at a time, the bad ones
// counted and passed over when data.table.skip_bad_records says so.
// GoodRecords borrows its reader, columns and counter; not thread-safe.
#ifndef TESSERA_CORE_TABLE_RECORDS_H_
#define TESSERA_CORE_TABLE_RECORDS_H_

#include <cstddef>
#include <vector>

#include "core/csv_reader.h"
#include "core/status.h"
#include "core/table_data.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

// One record's label and raw feature values (empty fields filled).
struct ParsedRecord {
  float label = 0;  // a class id (exact), 0 or 1, or any finite number: by the rule read with
  std::vector<float> values;
  std::vector<bool> present;
};

// Parses the label (by the rule `kind`: a class id, 0 or 1, or any finite
// number; never empty) and the `features` numeric features after it in
// `columns`; the categorical columns after them are any bytes. The label's
// or the feature's error, naming the line and column.
Status ParseRecord(const CsvReader& reader, const CsvRecord& record, const std::vector<int>& columns, size_t features,
                   float fill, proto::TableLabels::Kind kind, ParsedRecord* out);

// A file's records one at a time, each checked by the spec's rules: a bad
// one is an error, or with data.table.skip_bad_records is counted in *bad
// and passed over. `columns` are the header indexes of the label, the
// numeric features and then the categorical columns; *reader, columns and
// *bad must outlive this.
class GoodRecords {
 public:
  GoodRecords(const proto::DataSpec& data, CsvReader* reader, const std::vector<int>& columns,
              proto::TableLabels::Kind kind, BadRecords* bad)
      : data_(data),
        reader_(reader),
        columns_(columns),
        numeric_(columns.size() - 1 - data.table().categorical_columns_size()),
        kind_(kind),
        bad_(bad) {}

  // The next good record into *record and *parsed; false at the end.
  StatusOr<bool> Next(CsvRecord* record, ParsedRecord* parsed);

 private:
  Status Check(const CsvRecord& record, ParsedRecord* parsed);

  const proto::DataSpec& data_;
  CsvReader* reader_;
  const std::vector<int>& columns_;
  const size_t numeric_;  // numeric features; the categorical columns follow them in columns_
  const proto::TableLabels::Kind kind_;
  BadRecords* bad_;
};

}  // namespace tessera

#endif  // TESSERA_CORE_TABLE_RECORDS_H_
