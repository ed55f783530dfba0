// The ZeroMQ transport. Every socket is made here (so CurveZMQ can later be
// switched on in one place). Sockets are not thread-safe: each belongs to
// the thread that uses it. The Transport owns the ZeroMQ context and must
// outlive every Socket it made.
#ifndef TESSERA_CORE_TRANSPORT_H_
#define TESSERA_CORE_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "core/message.h"
#include "core/status.h"

namespace tessera {

enum class SocketKind {
  kRouter,  // many peers; receives the peer identity with every message
  kDealer,  // one peer, asynchronous request/reply
};

class Socket {
 public:
  Socket(zmq::socket_t socket, SocketKind kind, std::string endpoint)
      : socket_(std::move(socket)), kind_(kind), endpoint_(std::move(endpoint)) {}

  // The bound or connected endpoint, e.g. "tcp://127.0.0.1:41234".
  const std::string& endpoint() const { return endpoint_; }
  SocketKind kind() const { return kind_; }

  // Sends `header` (its version field is filled in) then `frames`. For a
  // ROUTER socket `peer` names the recipient. Returns Unavailable when the
  // peer is unknown or gone, Internal for other ZeroMQ errors.
  Status Send(proto::Header header, const std::vector<OutFrame>& frames = {}, const std::string& peer = "");

  // Waits up to timeout_ms (-1: forever) for one message. Returns
  // DeadlineExceeded on timeout, DataLoss/InvalidArgument for a malformed
  // message (already consumed: the caller logs and drops it).
  StatusOr<Message> Receive(int timeout_ms);

  zmq::socket_t& raw() { return socket_; }

 private:
  zmq::socket_t socket_;
  SocketKind kind_;
  std::string endpoint_;
};

class Transport {
 public:
  Transport();
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds, e.g. "tcp://127.0.0.1:0" (port 0: the OS picks one; endpoint()
  // then tells which). Returns Unavailable when the address is taken.
  StatusOr<std::unique_ptr<Socket>> Bind(SocketKind kind, const std::string& endpoint);
  // Connects (ZeroMQ connects lazily, so this succeeds for any well-formed
  // address). Returns InvalidArgument for a malformed address.
  StatusOr<std::unique_ptr<Socket>> Connect(SocketKind kind, const std::string& endpoint);

  zmq::context_t& context() { return context_; }

 private:
  zmq::context_t context_;
  std::atomic<uint64_t> next_socket_id_{0};
  std::string nonce_;  // tells apart processes that reuse a pid
};

// Waits up to timeout_ms for any of `sockets` to be readable. Returns the
// readiness of each (false for all on timeout).
std::vector<bool> PollReadable(const std::vector<Socket*>& sockets, int timeout_ms);

// "HOST:PORT" or "tcp://HOST:PORT" -> "tcp://HOST:PORT". InvalidArgument
// naming the address when it has no valid port.
StatusOr<std::string> NormalizeEndpoint(const std::string& address);

}  // namespace tessera

#endif  // TESSERA_CORE_TRANSPORT_H_
