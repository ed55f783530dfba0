#include "serve/http_limits.h"

#include <string>
#include <strings.h>

namespace tessera {
namespace {

// `text` without leading zeros ("0" for zeros only), so "007" and "7" agree.
std::string WithoutLeadingZeros(const std::string& text) {
  const size_t first = text.find_first_not_of('0');
  return first == std::string::npos ? "0" : text.substr(first);
}

// A Content-Length value's bytes, capped at `cap + 1` (so no number overflows);
// InvalidArgument when it is not all decimal digits.
StatusOr<uint64_t> ParseLength(const std::string& value, uint64_t cap) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgumentError("Content-Length must be a number of bytes, got '" + value.substr(0, 40) + "'");
  }
  uint64_t bytes = 0;
  for (char c : value) {
    bytes = bytes * 10 + static_cast<uint64_t>(c - '0');
    if (bytes > cap) return cap + 1;
  }
  return bytes;
}

}  // namespace

StatusOr<uint64_t> DeclaredBodyBytes(const httplib::Headers& headers, uint64_t max_request_bytes) {
  const auto [begin, end] = headers.equal_range("Content-Length");
  const bool has_transfer_encoding = headers.find("Transfer-Encoding") != headers.end();
  if (begin == end) {
    if (!has_transfer_encoding) return max_request_bytes;
    const std::string& coding = headers.find("Transfer-Encoding")->second;
    if (headers.count("Transfer-Encoding") > 1 || strcasecmp(coding.c_str(), "chunked") != 0) {
      return InvalidArgumentError("Transfer-Encoding '" + coding.substr(0, 40) +
                                  "' is not supported (send Content-Length, or chunked alone)");
    }
    return max_request_bytes;
  }
  // Two lengths, or a length and chunks, let a proxy and this server see
  // different requests in the same bytes (request smuggling).
  if (has_transfer_encoding) return InvalidArgumentError("a request cannot have both Content-Length and Transfer-Encoding");
  for (auto it = std::next(begin); it != end; ++it) {
    if (WithoutLeadingZeros(it->second) != WithoutLeadingZeros(begin->second)) {
      return InvalidArgumentError("conflicting Content-Length headers: '" + begin->second.substr(0, 40) + "' and '" +
                                  it->second.substr(0, 40) + "'");
    }
  }
  auto bytes = ParseLength(begin->second, max_request_bytes);
  if (!bytes.ok()) return bytes.status();
  if (*bytes > max_request_bytes) {
    return OutOfRangeError("request body of " + WithoutLeadingZeros(begin->second).substr(0, 40) +
                           " bytes is larger than the limit of " + std::to_string(max_request_bytes) +
                           " bytes (--max-request-bytes)");
  }
  return bytes;
}

}  // namespace tessera
