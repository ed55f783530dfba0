#include "core/zmq_transport.h"

#include <unistd.h>

#include <random>

#include <zmq_addon.hpp>

#include "core/key_range.h"

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

zmq::socket_type TypeOf(SocketKind kind) {
  return kind == SocketKind::kRouter ? zmq::socket_type::router : zmq::socket_type::dealer;
}

class ZmqSocket final : public Socket {
 public:
  ZmqSocket(zmq::socket_t socket, SocketKind kind, std::string endpoint)
      : Socket(kind, std::move(endpoint)), socket_(std::move(socket)) {}

  StatusOr<Message> Receive(int timeout_ms) override;

  // For ZmqTransport::Poll.
  void* handle() { return socket_.handle(); }

 private:
  Status SendParts(const std::string& header, const std::vector<OutFrame>& frames, const std::string& peer) override;

  zmq::socket_t socket_;
};

Status ZmqSocket::SendParts(const std::string& header, const std::vector<OutFrame>& frames, const std::string& peer) {
  try {
    if (kind() == SocketKind::kRouter) {
      socket_.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    }
    const bool more = !frames.empty();
    socket_.send(zmq::buffer(header), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
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
    if (e.num() == EHOSTUNREACH) return UnavailableError("peer is not connected to " + endpoint());
    return InternalError(std::string("send on ") + endpoint() + ": " + e.what());
  }
  return OkStatus();
}

StatusOr<Message> ZmqSocket::Receive(int timeout_ms) {
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
    return DecodeMessage(std::move(parts), kind() == SocketKind::kRouter);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return AbortedError("interrupted");
    return InternalError(std::string("receive on ") + endpoint() + ": " + e.what());
  }
}

}  // namespace

ZmqTransport::ZmqTransport() : context_(1) {
  std::random_device rd;
  nonce_ = std::to_string(rd());
}

ZmqTransport::ZmqTransport(CurveSettings curve) : ZmqTransport() {
  curve_ = std::move(curve);
  if (!curve_->allowed.empty()) zap_ = std::make_unique<ZapHandler>(&context_, curve_->allowed, curve_->refusal_sink);
}
ZmqTransport::~ZmqTransport() = default;

StatusOr<std::unique_ptr<Socket>> ZmqTransport::Bind(SocketKind kind, const std::string& endpoint) {
  try {
    zmq::socket_t s(context_, TypeOf(kind));
    ConfigureSocket(s, kind);
    if (curve_) {
      if (zap_ == nullptr)
        return FailedPreconditionError("cannot bind " + endpoint + " with CURVE: no allow-list of public keys");
      s.set(zmq::sockopt::curve_server, 1);
      s.set(zmq::sockopt::curve_secretkey, curve_->keys.secret_key);
      s.set(zmq::sockopt::zap_domain, "tessera");  // every handshake goes through zap_
    }
    std::string to_bind = endpoint;
    // ZeroMQ spells "any port" as '*'; accept the conventional 0 too.
    if (to_bind.size() > 2 && to_bind.compare(to_bind.size() - 2, 2, ":0") == 0) {
      to_bind = to_bind.substr(0, to_bind.size() - 1) + "*";
    }
    s.bind(to_bind);
    std::string resolved = s.get(zmq::sockopt::last_endpoint);
    if (curve_) {
      // Handshakes that fail before ZAP is asked (a peer without CURVE) are logged from the monitor.
      const std::string monitor = "inproc://tessera-handshakes-" + std::to_string(next_socket_id_.fetch_add(1));
      if (zmq_socket_monitor(s.handle(), monitor.c_str(),
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
        zmq::socket_t events(context_, zmq::socket_type::pair);
        events.set(zmq::sockopt::linger, 0);
        events.connect(monitor);
        zap_->WatchHandshakes(std::move(events));
      }
    }
    std::unique_ptr<Socket> socket = std::make_unique<ZmqSocket>(std::move(s), kind, resolved);
    return socket;
  } catch (const zmq::error_t& e) {
    return UnavailableError("cannot bind " + endpoint + ": " + e.what());
  }
}

StatusOr<std::unique_ptr<Socket>> ZmqTransport::DoConnect(SocketKind kind, const std::string& endpoint,
                                                          const ConnectOptions& options) {
  try {
    zmq::socket_t s(context_, TypeOf(kind));
    ConfigureSocket(s, kind);
    if (options.drop_unsent_at_close) s.set(zmq::sockopt::linger, 0);
    if (curve_) {
      if (options.server_public_key.empty()) {
        return FailedPreconditionError("cannot connect to " + endpoint + " with CURVE: its public key is not known");
      }
      s.set(zmq::sockopt::curve_serverkey, options.server_public_key);
      s.set(zmq::sockopt::curve_publickey, curve_->keys.public_key);
      s.set(zmq::sockopt::curve_secretkey, curve_->keys.secret_key);
    }
    // A stable identity: after a TCP reconnect the peer's ROUTER still knows
    // who this is (ZeroMQ would otherwise make up a new one).
    s.set(zmq::sockopt::routing_id, "tessera-" + std::to_string(getpid()) + "-" +
                                        std::to_string(next_socket_id_.fetch_add(1)) + "-" + nonce_);
    s.connect(endpoint);
    std::unique_ptr<Socket> socket = std::make_unique<ZmqSocket>(std::move(s), kind, endpoint);
    return socket;
  } catch (const zmq::error_t& e) {
    return InvalidArgumentError("cannot connect to " + endpoint + ": " + e.what());
  }
}

std::vector<bool> ZmqTransport::Poll(const std::vector<Socket*>& sockets, int timeout_ms) {
  std::vector<zmq::pollitem_t> items;
  for (Socket* s : sockets) items.push_back({static_cast<ZmqSocket*>(s)->handle(), 0, ZMQ_POLLIN, 0});
  std::vector<bool> ready(sockets.size(), false);
  try {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t&) {
    return ready;  // EINTR: the caller's loop checks for shutdown and polls again
  }
  for (size_t i = 0; i < items.size(); ++i) ready[i] = (items[i].revents & ZMQ_POLLIN) != 0;
  return ready;
}

}  // namespace tessera
