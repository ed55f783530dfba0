#include "core/libsvm_reader.h"

#include <algorithm>
#include <charconv>

#include "core/byte_source.h"
#include "core/csv_reader.h"

namespace tessera {
namespace {

constexpr int kEnd = ByteSource::kEnd;
constexpr std::string_view kBlanks = " \t";  // between tokens
constexpr std::string_view kQidPrefix = "qid:";

// Splits the next token (bytes other than spaces and tabs) off the front of
// *rest. Returns an empty token when none is left.
std::string_view NextToken(std::string_view* rest) {
  const size_t begin = rest->find_first_not_of(kBlanks);
  if (begin == std::string_view::npos) {
    *rest = {};
    return {};
  }
  const size_t end = std::min(rest->find_first_of(kBlanks, begin), rest->size());
  const std::string_view token = rest->substr(begin, end - begin);
  rest->remove_prefix(end);
  return token;
}

// The value of `text` if it is all decimal digits of a number below 2^64.
std::optional<uint64_t> ParseUint64(std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);  // no sign, no spaces
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

std::string IntegerRange(uint64_t min) {
  return "an integer from " + std::to_string(min) + " to " + std::to_string(std::numeric_limits<uint64_t>::max());
}

// A feature's index: an integer at least `min`, and above the index of the
// feature before it on the line, if there is one.
StatusOr<uint64_t> ParseIndex(std::string_view text, uint64_t min, const LibsvmFeature* previous) {
  const std::optional<uint64_t> index = ParseUint64(text);
  if (!index.has_value() || *index < min) {
    std::string expected = "expected an index that is " + IntegerRange(min);
    if (min > 0) expected += " (LibsvmOptions.allow_index_zero is false)";
    return InvalidArgumentError(expected + ", got " + QuoteForMessage(text));
  }
  if (previous != nullptr && *index <= previous->index) {
    return InvalidArgumentError("expected an index above " + std::to_string(previous->index) +
                                " (indices increase along a line), got " + QuoteForMessage(text));
  }
  return *index;
}

// A feature's value: a finite float, not empty.
StatusOr<float> ParseValue(std::string_view text) {
  ASSIGN_OR_RETURN(const std::optional<float> value, ParseFloatField(text));
  if (!value.has_value()) return InvalidArgumentError("expected a finite number, got " + QuoteForMessage(text));
  return *value;
}

}  // namespace

StatusOr<std::unique_ptr<LibsvmReader>> LibsvmReader::Open(const std::string& path, const LibsvmOptions& options) {
  if (options.buffer_bytes < 4 || options.buffer_bytes > ByteSource::kMaxBufferBytes) {
    return InvalidArgumentError("LibsvmOptions.buffer_bytes: expected 4 to " +
                                std::to_string(ByteSource::kMaxBufferBytes) + ", got " +
                                std::to_string(options.buffer_bytes));
  }
  if (options.max_line_bytes < 1) return InvalidArgumentError("LibsvmOptions.max_line_bytes: expected at least 1, got 0");

  auto source = std::make_unique<ByteSource>();
  RETURN_IF_ERROR(source->Open(path, options.buffer_bytes, "libsvm"));
  if (options.start_offset > 0 && source->compressed()) {
    return InvalidArgumentError(path + ": a start offset needs a plain file, and this one is gzip'd");
  }
  std::unique_ptr<LibsvmReader> reader(new LibsvmReader(path, options, std::move(source)));
  if (options.start_offset > 0) {
    reader->lines_known_ = false;
    RETURN_IF_ERROR(reader->source_->SeekToLineAtOrAfter(options.start_offset));
  } else {
    reader->source_->SkipByteOrderMark();
  }
  return reader;
}

LibsvmReader::LibsvmReader(std::string path, const LibsvmOptions& options, std::unique_ptr<ByteSource> source)
    : path_(std::move(path)), options_(options), source_(std::move(source)) {}

LibsvmReader::~LibsvmReader() = default;

bool LibsvmReader::compressed() const { return source_->compressed(); }

StatusOr<bool> LibsvmReader::Next(LibsvmRecord* record) {
  if (!sticky_error_.ok()) return sticky_error_;
  while (true) {
    StatusOr<bool> read = ReadLine(record);
    if (!read.ok()) {
      sticky_error_ = read.status();
      return sticky_error_;
    }
    if (!*read) return false;
    if (line_too_long_) {
      return InvalidArgumentError(Where(*record) + ": line longer than " + std::to_string(options_.max_line_bytes) +
                                  " bytes before its comment (LibsvmOptions.max_line_bytes): expected a shorter line");
    }
    if (line_.find_first_not_of(kBlanks) == std::string::npos) continue;  // blank, or a comment alone
    RETURN_IF_ERROR(ParseLine(record));
    return true;
  }
}

// Reads the next line into line_, up to its comment and without its line end,
// and notes where it starts in *record. Returns false at the end of the file.
// A line over max_line_bytes is read to its end, but only that much is kept.
StatusOr<bool> LibsvmReader::ReadLine(LibsvmRecord* record) {
  line_.clear();
  line_too_long_ = false;
  record->offset = source_->offset();
  record->line = lines_known_ ? source_->line() : 0;
  int byte = source_->Get();
  if (byte == kEnd) {
    RETURN_IF_ERROR(source_->status());
    return false;
  }
  bool in_comment = false;
  for (; byte != '\n' && byte != kEnd; byte = source_->Get()) {
    if (byte == '#') in_comment = true;
    if (in_comment || (byte == '\r' && source_->Peek() == '\n')) continue;
    if (line_.size() == options_.max_line_bytes) {
      line_too_long_ = true;
      continue;
    }
    line_.push_back(static_cast<char>(byte));
  }
  // A line cut short by a read error is the error, not a record.
  RETURN_IF_ERROR(source_->status());
  return true;
}

// Parses line_, which holds a token, into *record.
Status LibsvmReader::ParseLine(LibsvmRecord* record) const {
  record->qid.reset();
  record->features.clear();
  std::string_view rest = line_;
  RETURN_IF_ERROR(ParseLabel(NextToken(&rest), record));
  std::string_view token = NextToken(&rest);
  if (token.starts_with(kQidPrefix)) {
    RETURN_IF_ERROR(ParseQid(token, record));
    token = NextToken(&rest);
  }
  for (; !token.empty(); token = NextToken(&rest)) RETURN_IF_ERROR(ParseFeature(token, record));
  return OkStatus();
}

Status LibsvmReader::ParseLabel(std::string_view token, LibsvmRecord* record) const {
  StatusOr<std::optional<float>> label = ParseFloatField(token);  // never empty: a token
  if (!label.ok()) return label.status().WithContext(Where(*record) + ": label");
  record->label = **label;
  return OkStatus();
}

Status LibsvmReader::ParseQid(std::string_view token, LibsvmRecord* record) const {
  const std::string_view number = token.substr(kQidPrefix.size());
  record->qid = ParseUint64(number);
  if (!record->qid.has_value()) {
    return InvalidArgumentError(Where(*record) + ": qid: expected " + IntegerRange(0) + ", got " +
                                QuoteForMessage(number));
  }
  return OkStatus();
}

Status LibsvmReader::ParseFeature(std::string_view token, LibsvmRecord* record) const {
  std::vector<LibsvmFeature>& features = record->features;
  if (features.size() == options_.max_features) {
    return InvalidArgumentError(Where(*record) + ": expected at most " + std::to_string(options_.max_features) +
                                " features (LibsvmOptions.max_features), got more");
  }
  const size_t colon = token.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError(Where(*record) + ": expected a feature index:value, got " + QuoteForMessage(token));
  }
  if (token.starts_with(kQidPrefix)) {
    return InvalidArgumentError(Where(*record) + ": expected a feature index:value (a qid comes right after the label), "
                                "got " + QuoteForMessage(token));
  }
  const LibsvmFeature* previous = features.empty() ? nullptr : &features.back();
  StatusOr<uint64_t> index = ParseIndex(token.substr(0, colon), options_.allow_index_zero ? 0 : 1, previous);
  if (!index.ok()) return index.status().WithContext(Where(*record) + ": feature " + QuoteForMessage(token));
  StatusOr<float> value = ParseValue(token.substr(colon + 1));
  if (!value.ok()) return value.status().WithContext(Where(*record) + ": feature " + QuoteForMessage(token));
  features.push_back({*index, *value});
  return OkStatus();
}

std::string LibsvmReader::Where(const LibsvmRecord& record) const {
  if (!lines_known_) return path_ + ": record at byte " + std::to_string(record.offset);
  return path_ + ":" + std::to_string(record.line);
}

StatusOr<LibsvmFileIndex> IndexLibsvmFile(const std::string& path, int64_t every, const LibsvmOptions& options) {
  if (every < 1) return InvalidArgumentError("IndexLibsvmFile: expected every >= 1, got " + std::to_string(every));
  ASSIGN_OR_RETURN(std::unique_ptr<LibsvmReader> reader, LibsvmReader::Open(path, options));
  LibsvmFileIndex index;
  LibsvmRecord record;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, reader->Next(&record));
    if (!more) return index;
    if (index.records % every == 0) index.offsets.push_back(record.offset);
    ++index.records;
  }
}

}  // namespace tessera
