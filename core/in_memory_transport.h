// A transport inside one process, for tests that run roles on threads: no
// ZeroMQ sockets, no ports, and no I/O thread. It keeps ZeroMQ's semantics
// as Tessera uses them (core/transport.h):
//   - A ROUTER binds a name; any string will do ("mem://scheduler"), and a
//     name ending in ":0" ("tcp://127.0.0.1:0") gets an unused port instead,
//     which endpoint() reports. Binding a name already bound is Unavailable.
//   - A DEALER connects to a name and gets an identity of its own; its
//     messages reach the ROUTER with that identity as Message::peer. Sent
//     while nothing is bound there (not yet, or no longer), they wait for
//     the next bind, as ZeroMQ's reconnecting DEALER's do.
//   - A ROUTER sends to a DEALER by identity; one unknown, closed, or
//     connected to another name is Unavailable (ZeroMQ's ROUTER_MANDATORY).
//   - Messages queue without bound; frame bytes are copied at Send (an
//     OutFrame's owner is not kept), and the receiver decodes and validates
//     them with DecodeMessage, as the bytes off the wire.
// Only ROUTERs bind and DEALERs connect (InvalidArgument otherwise). The
// largest message is not limited (ZeroMQ's maxmsgsize is not modelled).
//
// Thread-safe: one mutex guards all of it, and Receive and Poll wait on a
// condition variable. Sockets are not thread-safe. The transport must
// outlive every socket it made.
#ifndef TESSERA_CORE_IN_MEMORY_TRANSPORT_H_
#define TESSERA_CORE_IN_MEMORY_TRANSPORT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/transport.h"

namespace tessera {

class InMemorySocket;

class InMemoryTransport final : public Transport {
 public:
  InMemoryTransport() = default;
  ~InMemoryTransport() override;

  StatusOr<std::unique_ptr<Socket>> Bind(SocketKind kind, const std::string& endpoint) override;
  std::vector<bool> Poll(const std::vector<Socket*>& sockets, int timeout_ms) override;

 private:
  friend class InMemorySocket;
  // Wire parts of one message, as a ZeroMQ socket would receive them (a
  // ROUTER's start with the sender's identity).
  using Parts = std::vector<zmq::message_t>;

  StatusOr<std::unique_ptr<Socket>> DoConnect(SocketKind kind, const std::string& endpoint,
                                              const ConnectOptions& options) override;

  // For InMemorySocket: its Send, Receive and destructor.
  Status Deliver(const InMemorySocket& from, Parts parts, const std::string& peer);
  StatusOr<Message> Receive(const InMemorySocket& socket, int timeout_ms);
  void Close(const InMemorySocket& socket);

  // `endpoint` with ":0" replaced by a port no socket is bound to.
  // REQUIRES: mu_ held.
  std::string PickPort(const std::string& endpoint);

  std::mutex mu_;
  std::condition_variable arrived_;  // notified whenever a message is queued
  // The messages each open socket has yet to receive. Guarded by mu_.
  std::map<const Socket*, std::deque<Parts>> inboxes_;
  // Bound name -> the ROUTER bound there. Guarded by mu_.
  std::map<std::string, const InMemorySocket*> bound_;
  // Identity -> the connected DEALER. Guarded by mu_.
  std::map<std::string, const InMemorySocket*> connected_;
  // Messages sent to a name nothing is bound to, for the next bind. Guarded by mu_.
  std::map<std::string, std::deque<Parts>> waiting_for_bind_;
  int next_port_ = 49152;     // the first of the IANA dynamic ports; guarded by mu_
  uint64_t next_dealer_ = 0;  // numbers the identities; guarded by mu_
};

}  // namespace tessera

#endif  // TESSERA_CORE_IN_MEMORY_TRANSPORT_H_
