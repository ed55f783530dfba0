#include "serve/limited_http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "serve/kserve.h"

namespace tessera {
namespace {

using Clock = DeadlineStream::Clock;

// Admit() writes a refusal into the request under this header for the
// pre-routing and expect-100 handlers to answer: they run inside httplib's
// process_request and see only the request. A client's own is removed first.
constexpr char kRefusalHeader[] = "X-Tessera-Refusal";
// httplib::Server's default, kept: requests served on one keep-alive connection.
constexpr int kMaxRequestsPerConnection = 100000;
// How long a refused client may stay silent before its connection is closed.
constexpr std::chrono::seconds kLingerQuiet{1};

const char* Reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

// A whole HTTP response with a JSON error, for the answers written here
// rather than by httplib (a request it could not read to the end).
std::string RawErrorResponse(int status, const std::string& message) {
  const std::string body = ErrorJson(message);
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Sets `res` to the refusal Admit() wrote into `req`; false when there is none.
bool AnswerRefusal(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_header(kRefusalHeader)) return false;
  const std::string refusal = req.get_header_value(kRefusalHeader);  // "STATUS message"
  res.status = std::stoi(refusal.substr(0, 3));
  res.set_content(ErrorJson(refusal.substr(4)), "application/json");
  return true;
}

// After a refusal the client may still be sending the body it declared:
// closing at once would reset the connection, which can destroy the answer
// before the client reads it. So stop writing and drain (discarding) until
// the client closes, stays quiet for kLingerQuiet, or `deadline` passes.
void Linger(DeadlineStream& stream, Clock::time_point deadline) {
  ::shutdown(stream.socket(), SHUT_WR);
  stream.StartPhase(deadline, UINT64_MAX);
  char scratch[16384];
  while (stream.WaitReadable(std::min(deadline, Clock::now() + kLingerQuiet))) {
    if (stream.read(scratch, sizeof(scratch)) <= 0) return;
  }
}

}  // namespace

LimitedHttpServer::LimitedHttpServer(const HttpLimits& limits, std::set<std::string> over_cap_paths)
    : limits_(limits), over_cap_paths_(std::move(over_cap_paths)) {
  const size_t threads = static_cast<size_t>(std::max(1, limits_.max_connections) + kSpareThreads);
  new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  set_payload_max_length(limits_.max_request_bytes);
  set_keep_alive_max_count(kMaxRequestsPerConnection);
  set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    return AnswerRefusal(req, res) ? HandlerResponse::Handled : HandlerResponse::Unhandled;
  });
  // A client that waits for 100 Continue before sending its body gets the
  // refusal instead, and sends nothing.
  set_expect_100_continue_handler([](const httplib::Request& req, httplib::Response& res) {
    return AnswerRefusal(req, res) ? res.status : 100;
  });
}

bool LimitedHttpServer::process_and_close_socket(socket_t sock) {
  // A connection beyond the cap does not take a place: it is answered on
  // the spare threads and closed.
  const bool over_cap = connections_.fetch_add(1) >= limits_.max_connections;
  if (over_cap) connections_.fetch_sub(1);
  {
    DeadlineStream stream(sock, limits_.write_timeout);
    ServeConnection(stream, over_cap);
  }
  if (!over_cap) connections_.fetch_sub(1);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return true;
}

void LimitedHttpServer::ServeConnection(DeadlineStream& stream, bool over_cap) {
  const auto idle = over_cap ? kOverCapHeadTimeout : limits_.keep_alive_idle;
  const auto head_timeout = over_cap ? std::min(kOverCapHeadTimeout, limits_.header_timeout) : limits_.header_timeout;
  const int max_requests = over_cap ? 1 : kMaxRequestsPerConnection;
  for (int served = 0; served < max_requests && svr_sock_ != INVALID_SOCKET; ++served) {
    if (!stream.WaitReadable(Clock::now() + idle)) {
      // Idle: a keep-alive connection ends quietly; one beyond the cap is told why.
      if (over_cap) stream.SendRaw(RawErrorResponse(503, "too many connections"));
      return;
    }
    stream.StartPhase(Clock::now() + head_timeout, kMaxHeadBytes);
    bool in_body = false, refused = false;
    uint64_t reserved = 0;
    // httplib calls this once the headers are in, before it reads the body.
    auto admit = [&](httplib::Request& req) {
      req.headers.erase(kRefusalHeader);
      if (auto refusal = Admit(req, over_cap, &reserved)) {
        refused = true;
        req.set_header(kRefusalHeader, std::to_string(refusal->status) + " " + refusal->message);
        req.headers.erase("Connection");
        req.set_header("Connection", "close");  // httplib then answers with "Connection: close"
        return;
      }
      in_body = true;
      stream.StartPhase(Clock::now() + limits_.body_timeout, reserved);
    };
    bool client_closes = false;
    const bool answered = process_request(stream, /*close_connection=*/served + 1 == max_requests, client_closes, admit);
    ReleaseInflight(reserved);
    if (stream.stopped() == DeadlineStream::Stop::kDeadline) {
      stream.SendRaw(over_cap ? RawErrorResponse(503, "too many connections")
                              : RawErrorResponse(408, std::string("the request ") + (in_body ? "body" : "head") +
                                                          " did not arrive in time (" +
                                                          (in_body ? "--body-timeout-ms" : "--header-timeout-ms") + ")"));
      return;
    }
    if (stream.stopped() == DeadlineStream::Stop::kBudget) {
      stream.SendRaw(in_body ? RawErrorResponse(413, "request body larger than " +
                                                         std::to_string(limits_.max_request_bytes) +
                                                         " bytes (--max-request-bytes)")
                             : RawErrorResponse(431, "request line and headers larger than " +
                                                         std::to_string(kMaxHeadBytes) + " bytes"));
      return;
    }
    // A spare thread drains no longer than it waited for the head.
    if (refused) return Linger(stream, Clock::now() + (over_cap ? head_timeout : limits_.body_timeout));
    if (!answered || client_closes) return;
  }
}

std::optional<LimitedHttpServer::Refusal> LimitedHttpServer::Admit(const httplib::Request& req, bool over_cap,
                                                                   uint64_t* reserved) {
  if (over_cap && !(req.method == "GET" && over_cap_paths_.count(req.path))) {
    return Refusal{503, "too many connections: " + std::to_string(limits_.max_connections) +
                            " are being served (--http-threads); retry later"};
  }
  auto body_bytes = DeclaredBodyBytes(req.headers, limits_.max_request_bytes);
  if (!body_bytes.ok()) {
    return Refusal{body_bytes.status().code() == StatusCode::kOutOfRange ? 413 : 400, body_bytes.status().message()};
  }
  // Only requests that carry a body reserve room for it; httplib reads no other.
  const bool has_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" || req.method == "DELETE";
  const uint64_t bytes = has_body ? *body_bytes : 0;
  if (!ReserveInflight(bytes)) {
    return Refusal{503, "too many request bytes in flight: this body's " + std::to_string(bytes) +
                            " would pass --max-inflight-bytes " + std::to_string(limits_.max_inflight_bytes) +
                            "; retry later"};
  }
  *reserved = bytes;
  return std::nullopt;
}

bool LimitedHttpServer::ReserveInflight(uint64_t bytes) {
  uint64_t now = inflight_bytes_.load();
  do {
    if (bytes > limits_.max_inflight_bytes - std::min(now, limits_.max_inflight_bytes)) return false;
  } while (!inflight_bytes_.compare_exchange_weak(now, now + bytes));
  return true;
}

void LimitedHttpServer::ReleaseInflight(uint64_t bytes) { inflight_bytes_.fetch_sub(bytes); }

}  // namespace tessera
