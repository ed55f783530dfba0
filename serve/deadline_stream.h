// DeadlineStream: the httplib::Stream that LimitedHttpServer hands httplib
// for one connection. httplib's own stream times out each read separately,
// so a client sending a byte now and then holds its thread forever; here each
// phase of a request (its head, then its body) has one deadline and one byte
// budget for all its reads together.
#ifndef TESSERA_SERVE_DEADLINE_STREAM_H_
#define TESSERA_SERVE_DEADLINE_STREAM_H_

#include <httplib.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace tessera {

// Not thread-safe: one connection's thread uses it. Borrows the socket, which
// the caller closes after this is gone.
class DeadlineStream : public httplib::Stream {
 public:
  using Clock = std::chrono::steady_clock;

  // Why reads stopped before the caller's phase was done.
  enum class Stop {
    kNone,
    kDeadline,  // the phase's deadline passed
    kBudget,    // the phase asked for more bytes than its budget
  };

  // `write_timeout`: the most one write waits for the socket to take bytes.
  DeadlineStream(int sock, std::chrono::milliseconds write_timeout);

  // Reads from now on must be done by `deadline` and return at most `budget`
  // bytes in all. Bytes already received and not yet read carry over (the
  // next pipelined request).
  void StartPhase(Clock::time_point deadline, uint64_t budget);
  // True when a byte can be read without waiting past `deadline` (already
  // buffered, or arriving by then); false on timeout, EOF or error.
  bool WaitReadable(Clock::time_point deadline);
  Stop stopped() const { return stopped_; }

  // httplib::Stream. read() returns -1 once the phase's deadline or budget
  // is spent (stopped() says which), and write() returns -1 from then on:
  // httplib answers such a failed read with its own 400, which the caller
  // replaces with a 408 or 413 of its own (SendRaw).
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return sock_; }

  // Writes all of `bytes` whatever stopped(); false when the socket does not
  // take them within the write timeout.
  bool SendRaw(const std::string& bytes);

 private:
  // Fills the buffer with what arrives by the deadline; false when nothing does.
  bool Fill(Clock::time_point deadline);
  // One send of what the socket takes within the write timeout; -1 when it takes nothing.
  ssize_t SendSome(const char* ptr, size_t size);

  const int sock_;
  const std::chrono::milliseconds write_timeout_;
  Clock::time_point deadline_ = Clock::time_point::max();
  uint64_t budget_left_ = UINT64_MAX;
  Stop stopped_ = Stop::kNone;
  std::array<char, 16384> buffer_;
  size_t begin_ = 0, end_ = 0;  // the received bytes not yet read: buffer_[begin_, end_)
};

}  // namespace tessera

#endif  // TESSERA_SERVE_DEADLINE_STREAM_H_
