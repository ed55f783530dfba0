// Criteo's click-log layout (the Display Advertising Challenge's train.txt,
// and what bench/make_criteo writes): no header; each line a label (0 or 1),
// 13 integer fields I1-I13 and 26 categorical fields C1-C26, tab-separated;
// an empty field is a missing value. Categorical values are hashes written
// as hex digits (8 in Criteo's files; up to 16 accepted, either case), kept
// as they are: what becomes of them (hashed ids) is the model's business.
// Files may be gzip'd.
//
// Read with a CsvReader opened with CriteoCsvOptions(), then parse each
// record:
//   ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, CriteoCsvOptions()));
//   CsvRecord record;
//   CriteoExample example;
//   while (true) {
//     ASSIGN_OR_RETURN(bool more, reader->Next(&record));
//     if (!more) break;
//     RETURN_IF_ERROR(ParseCriteoRecord(*reader, record, &example));
//     ... example.label, example.integers[i], example.categorical[c] ...
//   }
// Functions only: thread-safe.
#ifndef TESSERA_CORE_CRITEO_FORMAT_H_
#define TESSERA_CORE_CRITEO_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/csv_reader.h"
#include "core/status.h"

namespace tessera {

inline constexpr int kCriteoIntegerFields = 13;
inline constexpr int kCriteoCategoricalFields = 26;
inline constexpr int kCriteoFields = 1 + kCriteoIntegerFields + kCriteoCategoricalFields;
// The longest categorical value: a 64-bit hash in hex.
inline constexpr size_t kCriteoMaxHexDigits = 16;

// "label", "I1", ..., "I13", "C1", ..., "C26".
const std::vector<std::string>& CriteoColumnNames();

// A tab-separated file without a header (these names) or quoting; the
// defaults otherwise (a record of at most 64 MiB).
CsvOptions CriteoCsvOptions();

// One record. The categorical views point into the CsvRecord it was parsed
// from: valid until that record is read into again.
struct CriteoExample {
  int label = 0;                                                        // 0 or 1
  std::array<std::optional<int64_t>, kCriteoIntegerFields> integers;    // empty: missing
  std::array<std::string_view, kCriteoCategoricalFields> categorical;  // "": missing
};

// Parses `record` (read by `reader`, opened with CriteoCsvOptions) into
// *example. InvalidArgument in one line naming the file, the line and the
// column, what was expected and what was found: a label other than 0 or 1,
// an integer field that is neither empty nor a decimal integer of int64
// range, a categorical field that is neither empty nor 1 to 16 hex digits.
// (A wrong field count is the reader's error already.)
Status ParseCriteoRecord(const CsvReader& reader, const CsvRecord& record, CriteoExample* example);

// What training makes of a record (docs/FORMATS.md, "Criteo click logs"):

// An integer field's feature, DLRM's transform: log(1 + x) for x > 0,
// computed in double and rounded to float; 0 for x <= 0 and for a missing
// value.
float CriteoNumeric(std::optional<int64_t> x);

// The 64-bit id of categorical field C<number> (number in [1, 26]) holding
// `value`: SparseColumnId(number, value) (core/categorical.h), 64-bit
// FNV-1a over one byte, `number`, then the value's bytes, so equal values
// of two fields get unrelated ids (and a TSV table's k-th column read with
// data.table.sparse_ids gets the ids of Ck). An empty field is no id:
// kNoSparseId.
uint64_t CriteoId(int number, std::string_view value);

}  // namespace tessera

#endif  // TESSERA_CORE_CRITEO_FORMAT_H_
