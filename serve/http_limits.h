// What one HTTP client may cost `tessera serve`: the limits LimitedHttpServer
// enforces, and the check of a request's declared body length.
#ifndef TESSERA_SERVE_HTTP_LIMITS_H_
#define TESSERA_SERVE_HTTP_LIMITS_H_

#include <httplib.h>

#include <chrono>
#include <cstdint>

#include "core/status.h"

namespace tessera {

struct HttpLimits {
  // Connections served at once (--http-threads). A connection beyond them is
  // answered on one of kSpareThreads: health endpoints as usual, anything
  // else 503, then closed.
  int max_connections = 64;
  // The largest request body (--max-request-bytes), in bytes. Larger: 413,
  // from the Content-Length, before the body is read.
  uint64_t max_request_bytes = uint64_t{64} << 20;
  // The most request-body bytes being read or handled at once, all
  // connections together (--max-inflight-bytes). A JSON body costs 3 (FP32) to 12
  // (UINT8) times its size while parsed. A request that would pass it: 503.
  uint64_t max_inflight_bytes = uint64_t{128} << 20;
  // A request's line and headers must all arrive within this from its first
  // byte (--header-timeout-ms), and its body within body_timeout after them
  // (--body-timeout-ms). Later: 408, and the connection is closed.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  // An idle keep-alive connection is closed after this.
  std::chrono::milliseconds keep_alive_idle{5000};
  // The most one write waits for the client to take bytes.
  std::chrono::milliseconds write_timeout{30000};
};

// Threads kept for the connections beyond HttpLimits::max_connections.
inline constexpr int kSpareThreads = 8;
// How long a connection beyond the cap may take to send its request head:
// a health probe sends it at once, and a spare thread must not be held.
inline constexpr std::chrono::milliseconds kOverCapHeadTimeout{250};
// The most bytes of a request line and headers (httplib keeps them all).
inline constexpr uint64_t kMaxHeadBytes = 64 << 10;

// The most body bytes the request with `headers` may send: its Content-Length,
// or `max_request_bytes` when it gives none (chunked, or read to the end).
// InvalidArgument (answer 400) for a Content-Length that is not a decimal
// number, Content-Length headers that disagree, one with Transfer-Encoding,
// or a Transfer-Encoding other than chunked; OutOfRange (answer 413) for a
// Content-Length above `max_request_bytes`, however many digits it has.
StatusOr<uint64_t> DeclaredBodyBytes(const httplib::Headers& headers, uint64_t max_request_bytes);

}  // namespace tessera

#endif  // TESSERA_SERVE_HTTP_LIMITS_H_
