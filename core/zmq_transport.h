// The ZeroMQ transport, which production uses. Every ZeroMQ socket is made
// here (so CurveZMQ can later be switched on in one place). ROUTER sockets
// are "mandatory": sending to a peer that is unknown or gone fails
// (Unavailable) instead of being dropped in silence.
//
// Thread-safe, like Transport; its sockets are not. It owns the ZeroMQ
// context (with one I/O thread) and must outlive every socket it made.
#ifndef TESSERA_CORE_ZMQ_TRANSPORT_H_
#define TESSERA_CORE_ZMQ_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "core/transport.h"

namespace tessera {

class ZmqTransport final : public Transport {
 public:
  ZmqTransport();
  ~ZmqTransport() override;

  StatusOr<std::unique_ptr<Socket>> Bind(SocketKind kind, const std::string& endpoint) override;
  std::vector<bool> Poll(const std::vector<Socket*>& sockets, int timeout_ms) override;

 private:
  StatusOr<std::unique_ptr<Socket>> DoConnect(SocketKind kind, const std::string& endpoint,
                                              const ConnectOptions& options) override;

  zmq::context_t context_;
  std::atomic<uint64_t> next_socket_id_{0};
  std::string nonce_;  // tells apart processes that reuse a pid
};

}  // namespace tessera

#endif  // TESSERA_CORE_ZMQ_TRANSPORT_H_
