#include "core/process_memory.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

#include "core/file_util.h"

namespace tessera {
namespace {

constexpr std::string_view kPeakField = "VmHWM:";

// The rest of the line of `text` that starts with `field`, if one does.
std::optional<std::string_view> FieldValue(std::string_view text, std::string_view field) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.substr(0, field.size()) == field) return line.substr(field.size());
    start = end + 1;
  }
  return std::nullopt;
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

StatusOr<uint64_t> ParsePeakResidentBytes(std::string_view proc_status) {
  const std::optional<std::string_view> value = FieldValue(proc_status, kPeakField);
  if (!value.has_value()) return NotFoundError("no VmHWM line in the process status");
  const std::string_view text = TrimSpaces(*value);
  uint64_t kib = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), kib);
  const std::string_view unit = TrimSpaces(std::string_view(end, text.data() + text.size() - end));
  if (ec != std::errc() || end == text.data() || unit != "kB" || kib > UINT64_MAX / 1024) {
    return DataLossError("VmHWM: expected \"<digits> kB\", got \"" + std::string(text.substr(0, 64)) + "\"");
  }
  return kib * 1024;
}

StatusOr<uint64_t> PeakResidentBytes() {
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString("/proc/self/status"));
  return ParsePeakResidentBytes(text);
}

}  // namespace tessera
