#include "core/in_memory_transport.h"

#include <chrono>
#include <utility>

#include <glog/logging.h>

namespace tessera {

// A handle: its messages live in the transport, under the transport's mutex.
class InMemorySocket final : public Socket {
 public:
  InMemorySocket(InMemoryTransport* transport, SocketKind kind, std::string endpoint, std::string identity)
      : Socket(kind, std::move(endpoint)), transport_(transport), identity_(std::move(identity)) {}
  ~InMemorySocket() override { transport_->Close(*this); }

  StatusOr<Message> Receive(int timeout_ms) override { return transport_->Receive(*this, timeout_ms); }

  // A DEALER's name for the ROUTER it connects to; empty for a ROUTER.
  const std::string& identity() const { return identity_; }

 private:
  // Copies the message into parts, as ZeroMQ would put it on the wire.
  Status SendParts(const std::string& header, const std::vector<OutFrame>& frames, const std::string& peer) override {
    InMemoryTransport::Parts parts;
    if (kind() == SocketKind::kDealer) parts.emplace_back(identity_.data(), identity_.size());
    parts.emplace_back(header.data(), header.size());
    for (const OutFrame& f : frames) parts.emplace_back(f.data, f.size);
    return transport_->Deliver(*this, std::move(parts), peer);
  }

  InMemoryTransport* const transport_;
  const std::string identity_;
};

InMemoryTransport::~InMemoryTransport() {
  CHECK(inboxes_.empty()) << inboxes_.size() << " sockets outlive their in-memory transport";
}

StatusOr<std::unique_ptr<Socket>> InMemoryTransport::Bind(SocketKind kind, const std::string& endpoint) {
  if (kind != SocketKind::kRouter) {
    return InvalidArgumentError("cannot bind " + endpoint + ": the in-memory transport binds only ROUTER sockets");
  }
  if (endpoint.empty()) return UnavailableError("cannot bind an empty address");
  std::lock_guard<std::mutex> lock(mu_);
  const std::string name = PickPort(endpoint);
  if (bound_.count(name) != 0) return UnavailableError("cannot bind " + endpoint + ": the address is in use");
  auto socket = std::make_unique<InMemorySocket>(this, kind, name, /*identity=*/"");
  bound_[name] = socket.get();
  std::deque<Parts>& inbox = inboxes_[socket.get()];
  auto waiting = waiting_for_bind_.extract(name);
  if (!waiting.empty()) inbox = std::move(waiting.mapped());
  return std::unique_ptr<Socket>(std::move(socket));
}

StatusOr<std::unique_ptr<Socket>> InMemoryTransport::DoConnect(SocketKind kind, const std::string& endpoint,
                                                               const ConnectOptions& /*options*/) {
  // The options are moot: a message is delivered within Send, so nothing is
  // ever left unsent at close.
  if (kind != SocketKind::kDealer) {
    return InvalidArgumentError("cannot connect to " + endpoint +
                                ": the in-memory transport connects only DEALER sockets");
  }
  if (endpoint.empty()) return InvalidArgumentError("cannot connect to an empty address");
  std::lock_guard<std::mutex> lock(mu_);
  auto socket = std::make_unique<InMemorySocket>(this, kind, endpoint, "mem-" + std::to_string(next_dealer_++));
  connected_[socket->identity()] = socket.get();
  inboxes_[socket.get()];
  return std::unique_ptr<Socket>(std::move(socket));
}

std::vector<bool> InMemoryTransport::Poll(const std::vector<Socket*>& sockets, int timeout_ms) {
  std::vector<bool> ready(sockets.size(), false);
  auto any_ready = [&] {
    bool any = false;
    for (size_t i = 0; i < sockets.size(); ++i) {
      ready[i] = !inboxes_.at(sockets[i]).empty();
      any = any || ready[i];
    }
    return any;
  };
  std::unique_lock<std::mutex> lock(mu_);
  if (timeout_ms < 0) {
    arrived_.wait(lock, any_ready);
  } else {
    arrived_.wait_for(lock, std::chrono::milliseconds(timeout_ms), any_ready);
  }
  return ready;  // as any_ready last saw it
}

Status InMemoryTransport::Deliver(const InMemorySocket& from, Parts parts, const std::string& peer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (from.kind() == SocketKind::kRouter) {
    auto to = connected_.find(peer);
    if (to == connected_.end() || to->second->endpoint() != from.endpoint()) {
      return UnavailableError("peer is not connected to " + from.endpoint());
    }
    inboxes_.at(to->second).push_back(std::move(parts));
  } else {
    auto to = bound_.find(from.endpoint());
    if (to == bound_.end()) {
      waiting_for_bind_[from.endpoint()].push_back(std::move(parts));
      return OkStatus();
    }
    inboxes_.at(to->second).push_back(std::move(parts));
  }
  arrived_.notify_all();
  return OkStatus();
}

StatusOr<Message> InMemoryTransport::Receive(const InMemorySocket& socket, int timeout_ms) {
  Parts parts;
  {
    std::unique_lock<std::mutex> lock(mu_);
    std::deque<Parts>& inbox = inboxes_.at(&socket);
    auto has_message = [&inbox] { return !inbox.empty(); };
    if (timeout_ms < 0) {
      arrived_.wait(lock, has_message);
    } else if (!arrived_.wait_for(lock, std::chrono::milliseconds(timeout_ms), has_message)) {
      return DeadlineExceededError("no message");
    }
    parts = std::move(inbox.front());
    inbox.pop_front();
  }
  // Outside the lock: decoding may make a sparse frame dense.
  return DecodeMessage(std::move(parts), socket.kind() == SocketKind::kRouter);
}

void InMemoryTransport::Close(const InMemorySocket& socket) {
  std::lock_guard<std::mutex> lock(mu_);
  inboxes_.erase(&socket);  // what it had not received is lost, as with a closed ZeroMQ socket
  if (socket.kind() == SocketKind::kRouter) {
    bound_.erase(socket.endpoint());
  } else {
    connected_.erase(socket.identity());
  }
}

std::string InMemoryTransport::PickPort(const std::string& endpoint) {
  const bool any_port = endpoint.size() > 2 && endpoint.compare(endpoint.size() - 2, 2, ":0") == 0;
  if (!any_port) return endpoint;
  const std::string host = endpoint.substr(0, endpoint.size() - 1);  // keeps the ':'
  std::string name;
  do {
    if (next_port_ > 65535) next_port_ = 49152;
    name = host + std::to_string(next_port_++);
  } while (bound_.count(name) != 0);
  return name;
}

}  // namespace tessera
