#include "serve/deadline_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tessera {
namespace {

// Milliseconds from now until `deadline` for poll(): 0 once it has passed.
int MillisUntil(DeadlineStream::Clock::time_point deadline) {
  if (deadline == DeadlineStream::Clock::time_point::max()) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - DeadlineStream::Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT32_MAX));
}

// Waits for `events` on the socket; false on timeout or error.
bool PollFor(int sock, short events, int timeout_ms) {
  pollfd p{sock, events, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

void AddressOf(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  auto* a = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(sock, a, &len) : ::getsockname(sock, a, &len)) != 0) return;
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  }
  ip = text;
}

}  // namespace

DeadlineStream::DeadlineStream(int sock, std::chrono::milliseconds write_timeout)
    : sock_(sock), write_timeout_(write_timeout) {}

void DeadlineStream::StartPhase(Clock::time_point deadline, uint64_t budget) {
  deadline_ = deadline;
  budget_left_ = budget;
  stopped_ = Stop::kNone;
}

bool DeadlineStream::WaitReadable(Clock::time_point deadline) { return begin_ < end_ || Fill(deadline); }

bool DeadlineStream::Fill(Clock::time_point deadline) {
  begin_ = end_ = 0;
  if (!PollFor(sock_, POLLIN, MillisUntil(deadline))) return false;
  ssize_t n;
  do {
    n = ::recv(sock_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  end_ = static_cast<size_t>(n);
  return true;
}

bool DeadlineStream::is_readable() const {
  return stopped_ == Stop::kNone && (begin_ < end_ || PollFor(sock_, POLLIN, MillisUntil(deadline_)));
}

bool DeadlineStream::is_writable() const {
  return stopped_ == Stop::kNone && PollFor(sock_, POLLOUT, static_cast<int>(write_timeout_.count()));
}

ssize_t DeadlineStream::read(char* ptr, size_t size) {
  if (stopped_ != Stop::kNone) return -1;
  if (budget_left_ == 0) {
    stopped_ = Stop::kBudget;
    return -1;
  }
  if (begin_ == end_) {
    if (Clock::now() >= deadline_) {
      stopped_ = Stop::kDeadline;
      return -1;
    }
    if (!Fill(deadline_)) {
      // Nothing came by the deadline, or the peer closed (0 is httplib's EOF).
      if (Clock::now() < deadline_) return 0;
      stopped_ = Stop::kDeadline;
      return -1;
    }
  }
  const size_t n = std::min<uint64_t>({size, end_ - begin_, budget_left_});
  std::memcpy(ptr, buffer_.data() + begin_, n);
  begin_ += n;
  budget_left_ -= n;
  return static_cast<ssize_t>(n);
}

ssize_t DeadlineStream::write(const char* ptr, size_t size) {
  return stopped_ == Stop::kNone ? SendSome(ptr, size) : -1;
}

ssize_t DeadlineStream::SendSome(const char* ptr, size_t size) {
  for (;;) {
    if (!PollFor(sock_, POLLOUT, static_cast<int>(write_timeout_.count()))) return -1;
    const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0 || (errno != EINTR && errno != EAGAIN)) return n;
  }
}

bool DeadlineStream::SendRaw(const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = SendSome(bytes.data() + sent, bytes.size() - sent);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void DeadlineStream::get_remote_ip_and_port(std::string& ip, int& port) const { AddressOf(sock_, true, ip, port); }

void DeadlineStream::get_local_ip_and_port(std::string& ip, int& port) const { AddressOf(sock_, false, ip, port); }

}  // namespace tessera
