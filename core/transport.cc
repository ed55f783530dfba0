#include "core/transport.h"

#include <unistd.h>

#include <random>

#include "core/key_range.h"
#include <zmq_addon.hpp>

namespace tessera {
namespace {

// Frees a zero-copy frame: drops the reference that kept its owner alive.
void ReleaseOwner(void* /*data*/, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }

void ConfigureSocket(zmq::socket_t& s, SocketKind kind) {
  // Never drop a message because a queue is full: BSP needs every push.
  s.set(zmq::sockopt::sndhwm, 0);
  s.set(zmq::sockopt::rcvhwm, 0);
  // Give queued messages (SHUTDOWN, final reports) a moment to leave at close.
  s.set(zmq::sockopt::linger, 2000);
  // Bound what one peer can make us allocate (largest tensor frame: 1 GiB).
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
  if (kind == SocketKind::kRouter) s.set(zmq::sockopt::router_mandatory, 1);
}

}  // namespace

Status Socket::Send(proto::Header header, const std::vector<OutFrame>& frames, const std::string& peer) {
  header.set_version(proto::WIRE_VERSION_CURRENT);
  std::string bytes;
  if (!header.SerializeToString(&bytes)) return InternalError("header does not serialize");
  try {
    if (kind_ == SocketKind::kRouter) {
      socket_.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    }
    const bool more = !frames.empty();
    socket_.send(zmq::buffer(bytes), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
    for (size_t i = 0; i < frames.size(); ++i) {
      const OutFrame& f = frames[i];
      zmq::message_t msg;
      if (f.owner) {
        auto* hint = new std::shared_ptr<const void>(f.owner);
        msg.rebuild(const_cast<void*>(f.data), f.size, ReleaseOwner, hint);
      } else {
        msg.rebuild(f.data, f.size);
      }
      const bool last = i + 1 == frames.size();
      socket_.send(msg, last ? zmq::send_flags::none : zmq::send_flags::sndmore);
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return UnavailableError("peer is not connected to " + endpoint_);
    return InternalError(std::string("send on ") + endpoint_ + ": " + e.what());
  }
  return OkStatus();
}

StatusOr<Message> Socket::Receive(int timeout_ms) {
  try {
    // With timeout 0 (after the caller's own poll) go straight to a
    // non-blocking receive: a second poll costs a system call per message.
    if (timeout_ms != 0) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) {
        return DeadlineExceededError("no message");
      }
    }
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
      return DeadlineExceededError("no message");  // short: the drain loops make this often
    }
    return DecodeMessage(std::move(parts), kind_ == SocketKind::kRouter);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return AbortedError("interrupted");
    return InternalError(std::string("receive on ") + endpoint_ + ": " + e.what());
  }
}

Transport::Transport() : context_(1) {
  std::random_device rd;
  nonce_ = std::to_string(rd());
}
Transport::~Transport() = default;

StatusOr<std::unique_ptr<Socket>> Transport::Bind(SocketKind kind, const std::string& endpoint) {
  try {
    zmq::socket_t s(context_, kind == SocketKind::kRouter ? zmq::socket_type::router : zmq::socket_type::dealer);
    ConfigureSocket(s, kind);
    std::string to_bind = endpoint;
    // ZeroMQ spells "any port" as '*'; accept the conventional 0 too.
    if (to_bind.size() > 2 && to_bind.compare(to_bind.size() - 2, 2, ":0") == 0) {
      to_bind = to_bind.substr(0, to_bind.size() - 1) + "*";
    }
    s.bind(to_bind);
    std::string resolved = s.get(zmq::sockopt::last_endpoint);
    return std::make_unique<Socket>(std::move(s), kind, resolved);
  } catch (const zmq::error_t& e) {
    return UnavailableError("cannot bind " + endpoint + ": " + e.what());
  }
}

StatusOr<std::unique_ptr<Socket>> Transport::Connect(SocketKind kind, const std::string& endpoint) {
  try {
    zmq::socket_t s(context_, kind == SocketKind::kRouter ? zmq::socket_type::router : zmq::socket_type::dealer);
    ConfigureSocket(s, kind);
    // A stable identity: after a TCP reconnect the peer's ROUTER still knows
    // who this is (ZeroMQ would otherwise make up a new one).
    s.set(zmq::sockopt::routing_id, "tessera-" + std::to_string(getpid()) + "-" +
                                        std::to_string(next_socket_id_.fetch_add(1)) + "-" + nonce_);
    s.connect(endpoint);
    return std::make_unique<Socket>(std::move(s), kind, endpoint);
  } catch (const zmq::error_t& e) {
    return InvalidArgumentError("cannot connect to " + endpoint + ": " + e.what());
  }
}

std::vector<bool> PollReadable(const std::vector<Socket*>& sockets, int timeout_ms) {
  std::vector<zmq::pollitem_t> items;
  for (Socket* s : sockets) items.push_back({s->raw().handle(), 0, ZMQ_POLLIN, 0});
  std::vector<bool> ready(sockets.size(), false);
  try {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t&) {
    return ready;  // EINTR: the caller's loop checks for shutdown and polls again
  }
  for (size_t i = 0; i < items.size(); ++i) ready[i] = (items[i].revents & ZMQ_POLLIN) != 0;
  return ready;
}

StatusOr<std::string> NormalizeEndpoint(const std::string& address) {
  std::string a = address;
  if (a.rfind("tcp://", 0) == 0) a = a.substr(6);
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size()) {
    return InvalidArgumentError("address '" + address + "' is not HOST:PORT");
  }
  const std::string port = a.substr(colon + 1);
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgumentError("address '" + address + "' has a non-numeric port");
  }
  if (port.size() > 5 || std::stoi(port) > 65535) return InvalidArgumentError("port of '" + address + "' is out of range");
  return "tcp://" + a;
}

}  // namespace tessera
