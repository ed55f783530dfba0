// The transport seam, as LevelDB's Env: every socket of a role is made by a
// Transport passed down from main. Production uses ZmqTransport
// (core/zmq_transport.h, ZeroMQ over TCP); tests that run roles in one
// process use InMemoryTransport (core/in_memory_transport.h). Both speak the
// same wire format: a received message is decoded and validated by
// DecodeMessage (core/message.h) either way.
//
// Tessera uses two socket kinds, always the same way: a ROUTER binds and
// serves many peers, a DEALER connects to one ROUTER.
#ifndef TESSERA_CORE_TRANSPORT_H_
#define TESSERA_CORE_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/status.h"

namespace tessera {

enum class SocketKind {
  kRouter,  // many peers; receives the peer identity with every message
  kDealer,  // one peer, asynchronous request/reply
};

// One end of a connection. Not thread-safe: each socket belongs to the thread
// that uses it. The Transport that made it must outlive it. Destroying a
// socket closes it: a ROUTER's sends to a closed DEALER are Unavailable (with
// ZeroMQ, once its I/O thread has seen the connection go).
class Socket {
 public:
  virtual ~Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // The bound or connected endpoint, e.g. "tcp://127.0.0.1:41234".
  const std::string& endpoint() const { return endpoint_; }
  SocketKind kind() const { return kind_; }

  // Sends `header` (its version field is filled in) then `frames`. For a
  // ROUTER socket `peer` names the recipient. Returns Unavailable when the
  // peer is unknown or gone, Internal for other transport errors.
  Status Send(proto::Header header, const std::vector<OutFrame>& frames = {}, const std::string& peer = "");

  // Waits up to timeout_ms (-1: forever, 0: only what has already arrived)
  // for one message. Returns DeadlineExceeded on timeout, DataLoss or
  // InvalidArgument for a malformed message (already consumed: the caller
  // logs and drops it).
  virtual StatusOr<Message> Receive(int timeout_ms) = 0;

 protected:
  Socket(SocketKind kind, std::string endpoint) : kind_(kind), endpoint_(std::move(endpoint)) {}

 private:
  // Sends the serialized header, then the frames; Send's contract.
  virtual Status SendParts(const std::string& header, const std::vector<OutFrame>& frames, const std::string& peer) = 0;

  const SocketKind kind_;
  const std::string endpoint_;
};

struct ConnectOptions {
  // Drop messages still queued when the socket closes, instead of giving
  // them up to 2 s to leave (which SHUTDOWN and final reports need). For
  // sockets whose messages are worthless late, like heartbeats. Default false.
  bool drop_unsent_at_close = false;
  // The public key (Z85) of the node bound at the endpoint, which a
  // transport with CURVE needs to connect (ZmqTransport); ignored without
  // CURVE. Default "".
  std::string server_public_key;
};

// Makes sockets. Thread-safe: threads of one process share one transport.
// It must outlive every socket it made.
class Transport {
 public:
  Transport() = default;
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds, e.g. "tcp://127.0.0.1:0" (port 0: a free port is picked;
  // endpoint() then tells which). Returns Unavailable when the address is
  // taken.
  virtual StatusOr<std::unique_ptr<Socket>> Bind(SocketKind kind, const std::string& endpoint) = 0;

  // Connects. Connecting is lazy: it succeeds before anything is bound at
  // `endpoint`, and messages sent meanwhile wait for the bind. Returns
  // InvalidArgument for a malformed address.
  StatusOr<std::unique_ptr<Socket>> Connect(SocketKind kind, const std::string& endpoint,
                                            const ConnectOptions& options = {}) {
    return DoConnect(kind, endpoint, options);
  }

  // Waits up to timeout_ms for any of `sockets` to be readable. Returns the
  // readiness of each (false for all on timeout or interruption).
  // REQUIRES: every socket was made by this transport.
  virtual std::vector<bool> Poll(const std::vector<Socket*>& sockets, int timeout_ms) = 0;

 private:
  // Connect's contract (a virtual function takes no default arguments).
  virtual StatusOr<std::unique_ptr<Socket>> DoConnect(SocketKind kind, const std::string& endpoint,
                                                      const ConnectOptions& options) = 0;
};

// "HOST:PORT" or "tcp://HOST:PORT" -> "tcp://HOST:PORT". InvalidArgument
// naming the address when it has no valid port.
StatusOr<std::string> NormalizeEndpoint(const std::string& address);

}  // namespace tessera

#endif  // TESSERA_CORE_TRANSPORT_H_
