// LimitedHttpServer: an httplib::Server that a few slow or lying clients
// cannot take over (cpp-httplib 0.11, Debian 12, has a per-read timeout and
// a payload limit it enforces only after reading the body). It serves each
// connection itself (DeadlineStream, HttpLimits):
//   - a request's head, then its body, must arrive by a deadline: else 408;
//   - a head larger than kMaxHeadBytes: 431;
//   - the Content-Length is checked before the body is read
//     (DeclaredBodyBytes): 400 or 413 at once, before any 100 Continue;
//   - request bodies in flight are bounded: beyond, 503 at once;
//   - at most max_connections connections are served; one beyond gets only
//     `over_cap_paths` (health) answered, anything else 503, on one of
//     kSpareThreads spare threads, then is closed.
// Every refusal is a JSON {"error": ...} with "Connection: close". The routes,
// error handler and logger are set as on httplib::Server; the pre-routing and
// expect-100 handlers are this class's own.
// Thread-safe as httplib::Server: handlers run on its pool threads.
#ifndef TESSERA_SERVE_LIMITED_HTTP_SERVER_H_
#define TESSERA_SERVE_LIMITED_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "serve/deadline_stream.h"
#include "serve/http_limits.h"

namespace tessera {

class LimitedHttpServer : public httplib::Server {
 public:
  // `over_cap_paths`: GET paths still answered beyond max_connections.
  LimitedHttpServer(const HttpLimits& limits, std::set<std::string> over_cap_paths);

  const HttpLimits& limits() const { return limits_; }

 private:
  struct Refusal {
    int status;
    std::string message;
  };

  // httplib's pool thread calls this for each accepted connection.
  bool process_and_close_socket(socket_t sock) override;
  // Serves requests on the connection until it ends, one when `over_cap`.
  void ServeConnection(DeadlineStream& stream, bool over_cap);
  // Why the request with these headers is refused before its body is read;
  // none when it is not (then its body bytes are reserved in `*reserved`).
  std::optional<Refusal> Admit(const httplib::Request& req, bool over_cap, uint64_t* reserved);
  bool ReserveInflight(uint64_t bytes);
  void ReleaseInflight(uint64_t bytes);

  const HttpLimits limits_;
  const std::set<std::string> over_cap_paths_;
  std::atomic<int> connections_{0};          // connections being served within the cap
  std::atomic<uint64_t> inflight_bytes_{0};  // body bytes reserved by requests in flight
};

}  // namespace tessera

#endif  // TESSERA_SERVE_LIMITED_HTTP_SERVER_H_
