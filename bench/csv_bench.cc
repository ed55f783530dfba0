// csv_bench: how fast the CSV reader turns a table into numbers, against
// reading the same bytes with no parsing at all, in the same run.
//
//   build/bench/make_table_csv --rows 300000 --features 64 --out /tmp/t.csv
//   build/bench/csv_bench --file /tmp/t.csv [--repeats 3]
//
// Three passes over the file, each the best of --repeats (the file is read
// from the page cache after the first, so this times the parsing):
//   bytes    ByteSource::Get over every byte: the floor any reader pays
//   records  CsvReader::Next over every record (fields split, no numbers)
//   numbers  records, then ParseFloatField on every field: what a scan of a
//            numeric table (ScanTable, ReadTableBlock) does per record
// and prints MB/s for each and the ratios records/bytes, numbers/bytes.
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "core/byte_source.h"
#include "core/csv_reader.h"
#include "core/status.h"

DEFINE_string(file, "", "the CSV file to read (required)");
DEFINE_int32(repeats, 3, "passes of each kind; the fastest counts");

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds of the fastest of `repeats` runs of `pass`, which returns the bytes
// it read (0 on an error, printed by the pass).
double Fastest(int repeats, const std::function<uint64_t()>& pass, uint64_t* bytes) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    *bytes = pass();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

uint64_t ReadBytes(const std::string& path) {
  ByteSource source;
  const Status opened = source.Open(path, size_t{1} << 20, "CSV");
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.ToString().c_str());
    return 0;
  }
  uint64_t sum = 0;  // so the loop is not optimized away
  for (int byte = source.Get(); byte != ByteSource::kEnd; byte = source.Get()) sum += byte;
  if (sum == 1) std::fprintf(stderr, "-");
  return source.offset();
}

uint64_t ReadRecords(const std::string& path, bool parse_numbers) {
  StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 0;
  }
  CsvRecord record;
  double sum = 0;
  uint64_t bytes = 0;
  while (true) {
    StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok()) {
      std::fprintf(stderr, "%s\n", more.status().ToString().c_str());
      return 0;
    }
    if (!*more) break;
    bytes = record.offset + record.text.size() + record.fields.size();  // about: the separators and the newline
    if (!parse_numbers) continue;
    for (std::string_view field : record.fields) {
      StatusOr<std::optional<float>> value = ParseFloatField(field);
      if (value.ok() && value->has_value()) sum += **value;
    }
  }
  if (sum == 0.5) std::fprintf(stderr, "-");
  return bytes;
}

int Main() {
  if (FLAGS_file.empty() || FLAGS_repeats < 1) {
    std::fprintf(stderr, "csv_bench: --file is required and --repeats must be >= 1\n");
    return 2;
  }
  uint64_t bytes = 0, record_bytes = 0, number_bytes = 0;
  const double raw = Fastest(FLAGS_repeats, [] { return ReadBytes(FLAGS_file); }, &bytes);
  const double records = Fastest(FLAGS_repeats, [] { return ReadRecords(FLAGS_file, false); }, &record_bytes);
  const double numbers = Fastest(FLAGS_repeats, [] { return ReadRecords(FLAGS_file, true); }, &number_bytes);
  if (bytes == 0 || record_bytes == 0 || number_bytes == 0) return 1;
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("file %s: %.1f MB\n", FLAGS_file.c_str(), mb);
  std::printf("bytes    %8.1f MB/s\n", mb / raw);
  std::printf("records  %8.1f MB/s  (%.2fx the time of bytes)\n", mb / records, records / raw);
  std::printf("numbers  %8.1f MB/s  (%.2fx the time of bytes)\n", mb / numbers, numbers / raw);
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  gflags::SetUsageMessage("csv_bench --file FILE.csv [--repeats N]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return tessera::Main();
}
