// `tessera serve` against hostile clients, over raw sockets: slow clients
// beyond the connection cap do not stop the health endpoints, and each is
// answered (408 or 503) and closed; lying Content-Lengths are answered at
// once, before any body; a body at --max-request-bytes is served, one byte
// more is 413; request bodies in flight are bounded. The deadlines below
// only bound a failure: every wait is for an answer that must come.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "serve/http_limits.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A connected socket to 127.0.0.1:port, closed when this goes; -1 on failure.
class RawConnection {
 public:
  explicit RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool ok() const { return fd_ >= 0; }
  // True once a receive found the connection closed.
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

  // False when the server has closed or reset the connection.
  bool Send(const std::string& bytes) {
    for (size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Receives what has come within `timeout_s`, appending to `received_`; false on timeout or EOF.
  bool ReceiveSome(int timeout_s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_s * 1000) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    received_.append(buf, static_cast<size_t>(n));
    return true;
  }

  struct Response {
    int status = 0;  // 0: none came
    std::string head, body;
  };

  // The next response (head and Content-Length body); status 0 when none
  // came whole within `timeout_s`.
  Response ReadResponse(int timeout_s = 30) {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    Response r;
    size_t head_end;
    while ((head_end = received_.find("\r\n\r\n")) == std::string::npos) {
      if (Clock::now() >= deadline || !ReceiveSome(timeout_s)) return r;
    }
    r.head = received_.substr(0, head_end + 4);
    size_t length = 0;
    std::string lower = r.head;
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    if (const size_t at = lower.find("content-length:"); at != std::string::npos) {
      length = std::stoul(lower.substr(at + 15));
    }
    while (received_.size() < head_end + 4 + length) {
      if (Clock::now() >= deadline || !ReceiveSome(timeout_s)) return r;
    }
    r.body = received_.substr(head_end + 4, length);
    received_.erase(0, head_end + 4 + length);
    r.status = std::atoi(r.head.c_str() + 9);  // "HTTP/1.1 NNN"
    return r;
  }

  // True once the server has closed the connection (within `timeout_s`).
  bool WaitClosed(int timeout_s = 30) {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    pollfd p{fd_, POLLIN, 0};
    while (Clock::now() < deadline && ::poll(&p, 1, 1000) >= 0) {
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      if (::recv(fd_, buf, sizeof(buf), 0) <= 0) return true;
    }
    return false;
  }

 private:
  int fd_;
  bool closed_ = false;
  std::string received_;
};

// The one-line {"error": "..."} of a refusal; "" (and a failure) when the body is not one.
std::string ErrorMessage(const RawConnection::Response& r) {
  const json error = json::parse(r.body, nullptr, false);
  EXPECT_TRUE(error.is_object() && error.contains("error")) << r.head << r.body;
  return error.is_object() && error.contains("error") ? error["error"].get<std::string>() : "";
}

class ServeLimitsTest : public ::testing::Test {
 protected:
  // A tiny MLP trained for a moment and exported as repo/fmnist/1: the
  // limits do not care what the model computes, only that one loads.
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("serve-limits"));
    std::ofstream(*dir_ + "/spec.pbtxt") << "name: \"serve-limits\"\nmodel {" << kMlpModel
                                          << "}\ncluster { servers: 1 workers: 1 }\n"
                                             "optimizer { type: SGD learning_rate: 0.05 }\nbatch_size: 32\nepochs: 1\n";
    CommandResult r = RunTessera({"train", *dir_ + "/spec.pbtxt", "--run-dir", *dir_ + "/run", "--max-train-examples",
                                  "64", "--max-test-examples", "32", "--threads", "1", "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    CommandResult e = RunTessera({"export", *dir_ + "/run", "--out", Repo() + "/fmnist", "--noevaluate"});
    ASSERT_EQ(e.exit_code, 0) << e.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Repo() { return *dir_ + "/repo"; }

  // An infer request body of one image, padded with spaces (JSON allows
  // them) to exactly `bytes` when that is more.
  static std::string InferBody(size_t bytes = 0) {
    json input = {{"name", "input"}, {"shape", {1, 1, 28, 28}}, {"datatype", "FP32"}, {"data", std::vector<float>(784, 0.5f)}};
    std::string body = json{{"inputs", json::array({input})}}.dump();
    if (body.size() < bytes) body.append(bytes - body.size(), ' ');
    return body;
  }

  static std::string* dir_;
};

std::string* ServeLimitsTest::dir_ = nullptr;

// Fault 10: slow clients (a header line every 3 s) held every HTTP thread,
// and /v2/health/live was never answered.
TEST_F(ServeLimitsTest, SlowClientsBeyondTheCapAreAnsweredAndHealthStaysUp) {
  constexpr int kCap = 2, kSlow = kCap + 4;
  ServeProcess serve = StartServe({"--model-repo", Repo(), "--http-threads", std::to_string(kCap),
                                   "--header-timeout-ms", "3000"});
  ASSERT_GT(serve.port, 0);
  // Each slow client sends its request line and then one header line at a
  // time, never the blank line that ends the head.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<RawConnection>(serve.port));
    ASSERT_TRUE(slow.back()->ok());
    ASSERT_TRUE(slow.back()->Send("GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  for (const char* path : {"/v2/health/live", "/v2/health/ready"}) {
    RawConnection health(serve.port);
    ASSERT_TRUE(health.ok());
    ASSERT_TRUE(health.Send(std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const RawConnection::Response r = health.ReadResponse();
    EXPECT_EQ(r.status, 200) << path << " was not answered while slow clients held connections";
    EXPECT_NE(r.body.find("true"), std::string::npos) << r.body;
  }
  // Every slow client is answered and closed, however it trickles: 408
  // within the cap (its head took too long), 503 beyond it.
  int timed_out = 0, refused = 0;
  for (auto& connection : slow) {
    RawConnection::Response r;
    const auto give_up = Clock::now() + std::chrono::seconds(60);
    while (r.status == 0 && !connection->closed() && Clock::now() < give_up) {
      connection->Send("X-Slow: 1\r\n");  // fails once the server has answered and closed
      r = connection->ReadResponse(/*timeout_s=*/1);
    }
    ASSERT_TRUE(r.status == 408 || r.status == 503) << r.head << r.body;
    (r.status == 408 ? timed_out : refused)++;
    EXPECT_FALSE(ErrorMessage(r).empty());
    EXPECT_TRUE(connection->WaitClosed());
  }
  EXPECT_GE(timed_out, 1);
  EXPECT_GE(refused, 1) << "more clients than --http-threads, and none was refused";
  // Once they are gone the server serves as before.
  httplib::Client client("127.0.0.1", serve.port);
  auto meta = client.Get("/v2/models/fmnist");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->status, 200);
}

// Fault 12: lying Content-Lengths held a thread for the 30 s read timeout
// before a 413, and conflicting ones were served. Only heads are sent: the
// answers must come without any body (the server waits up to 120 s for one).
TEST_F(ServeLimitsTest, ContentLengthLiesAreAnsweredAtOnce) {
  ServeProcess serve = StartServe({"--model-repo", Repo(), "--max-request-bytes", "100000", "--body-timeout-ms",
                                   "120000"});
  ASSERT_GT(serve.port, 0);
  struct Case {
    std::string headers;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"Content-Length: 100001\r\n", 413, "larger than the limit of 100000 bytes"},
      {"Content-Length: 100001\r\nExpect: 100-continue\r\n", 413, "larger than"},
      {"Content-Length: 99999999999999999999999999999\r\n", 413, "larger than"},
      {"Content-Length: -1\r\n", 400, "must be a number of bytes, got '-1'"},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", 400, "conflicting Content-Length"},
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, "both Content-Length and Transfer-Encoding"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.headers);
    RawConnection connection(serve.port);
    ASSERT_TRUE(connection.ok());
    ASSERT_TRUE(connection.Send("POST /v2/models/fmnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/json\r\n" + c.headers + "\r\n"));
    const RawConnection::Response r = connection.ReadResponse(/*timeout_s=*/20);
    ASSERT_EQ(r.status, c.status) << r.head << r.body;
    EXPECT_NE(ErrorMessage(r).find(c.needle), std::string::npos) << r.body;
    EXPECT_NE(r.head.find("Connection: close"), std::string::npos) << r.head;
    EXPECT_TRUE(connection.WaitClosed());
  }
  // The same lengths twice are one length.
  RawConnection same(serve.port);
  const std::string body = InferBody();
  ASSERT_TRUE(same.Send("POST /v2/models/fmnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                        body));
  EXPECT_EQ(same.ReadResponse().status, 200);
}

// Fault 11: the request-size limit is --max-request-bytes: a body of
// exactly that many bytes is served; one more byte is 413.
TEST_F(ServeLimitsTest, ABodyAtTheLimitIsServedAndOneByteMoreIsNot) {
  const size_t limit = InferBody().size() + 1000;
  ServeProcess serve = StartServe({"--model-repo", Repo(), "--max-request-bytes", std::to_string(limit)});
  ASSERT_GT(serve.port, 0);
  httplib::Client client("127.0.0.1", serve.port);
  auto at_limit = client.Post("/v2/models/fmnist/infer", InferBody(limit), "application/json");
  ASSERT_TRUE(at_limit) << httplib::to_string(at_limit.error());
  EXPECT_EQ(at_limit->status, 200) << at_limit->body;
  // The client sends the whole body before it reads: the server answers
  // first and drains the rest, so the answer still arrives.
  auto over = client.Post("/v2/models/fmnist/infer", InferBody(limit + 1), "application/json");
  ASSERT_TRUE(over) << httplib::to_string(over.error());
  EXPECT_EQ(over->status, 413);
  EXPECT_NE(over->body.find("larger than the limit of " + std::to_string(limit)), std::string::npos) << over->body;
}

// Fault 11: bodies in flight are bounded by --max-inflight-bytes; a request
// that would pass it gets 503 at once, and the room comes back afterwards.
TEST_F(ServeLimitsTest, RequestBytesInFlightAreBounded) {
  const std::string body = InferBody();
  const std::string limit = std::to_string(body.size());
  ServeProcess serve = StartServe({"--model-repo", Repo(), "--max-request-bytes", limit, "--max-inflight-bytes", limit});
  ASSERT_GT(serve.port, 0);
  const std::string head = "POST /v2/models/fmnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + limit + "\r\n";
  // The first request's head is in and its room reserved once the server
  // says 100 Continue; it holds that room until its body has been served.
  RawConnection first(serve.port);
  ASSERT_TRUE(first.Send(head + "Expect: 100-continue\r\n\r\n"));
  ASSERT_EQ(first.ReadResponse().status, 100);
  RawConnection second(serve.port);
  ASSERT_TRUE(second.Send(head + "\r\n" + body));
  const RawConnection::Response refused = second.ReadResponse();
  ASSERT_EQ(refused.status, 503) << refused.head << refused.body;
  EXPECT_NE(ErrorMessage(refused).find("--max-inflight-bytes"), std::string::npos);
  ASSERT_TRUE(first.Send(body));
  const RawConnection::Response served = first.ReadResponse();
  EXPECT_EQ(served.status, 200) << served.body;
  // The room is given back before the server reads the next request on
  // that connection (after its answer was written: the client may see the
  // answer first, so another connection could still find the room taken).
  ASSERT_TRUE(first.Send(head + "\r\n" + body));
  EXPECT_EQ(first.ReadResponse().status, 200);
}

// The Content-Length check on its own, without a server.
TEST(DeclaredBodyBytesTest, ChecksEveryLengthBeforeABodyIsRead) {
  auto bytes = [](std::vector<std::pair<std::string, std::string>> headers) {
    httplib::Headers h(headers.begin(), headers.end());
    return DeclaredBodyBytes(h, 1000);
  };
  EXPECT_EQ(bytes({{"Content-Length", "1000"}}).value(), 1000u);
  EXPECT_EQ(bytes({{"content-length", "0"}}).value(), 0u);
  EXPECT_EQ(bytes({{"Content-Length", "7"}, {"Content-Length", "007"}}).value(), 7u);
  EXPECT_EQ(bytes({}).value(), 1000u);
  EXPECT_EQ(bytes({{"Transfer-Encoding", "Chunked"}}).value(), 1000u);
  for (const char* bad : {"-1", "+5", "", "1e3", "0x10", "12 34", " 5"}) {
    EXPECT_EQ(bytes({{"Content-Length", bad}}).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  for (const char* large : {"1001", "18446744073709551616", "99999999999999999999999999999999999999999"}) {
    auto r = bytes({{"Content-Length", large}});
    EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange) << large;
  }
  EXPECT_EQ(bytes({{"Content-Length", "5"}, {"Content-Length", "6"}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bytes({{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bytes({{"Transfer-Encoding", "gzip, chunked"}}).status().code(), StatusCode::kInvalidArgument);
  // Random values are refused or taken, never more than the limit.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string value(rng() % 25, ' ');
    for (char& c : value) c = "0123456789-+ x"[rng() % 14];
    auto r = bytes({{"Content-Length", value}});
    if (r.ok()) {
      EXPECT_LE(*r, 1000u) << value;
    }
  }
}

}  // namespace
}  // namespace tessera
