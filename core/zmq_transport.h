// The ZeroMQ transport, which production uses. Every ZeroMQ socket is made
// here, so CurveZMQ is switched on in one place: given CurveSettings, every
// socket it binds is a CURVE server (its own secret key; a ZapHandler admits
// only the allow-list's public keys) and every socket it connects is a CURVE
// client (its own pair and the bound peer's public key, from
// ConnectOptions::server_public_key). ROUTER sockets are "mandatory":
// sending to a peer that is unknown or gone fails (Unavailable) instead of
// being dropped in silence.
//
// Thread-safe, like Transport; its sockets are not. It owns the ZeroMQ
// context (with one I/O thread) and must outlive every socket it made.
#ifndef TESSERA_CORE_ZMQ_TRANSPORT_H_
#define TESSERA_CORE_ZMQ_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "core/curve_keys.h"
#include "core/drop_log.h"
#include "core/transport.h"
#include "core/zap_handler.h"

namespace tessera {

// How a process's sockets authenticate and encrypt (CurveZMQ).
struct CurveSettings {
  CurveKeyPair keys;  // this node's own pair
  // The public keys (-> names, for the log) a bound socket admits. Needed
  // to bind; a node that only connects (a worker) leaves it empty.
  std::map<std::string, std::string> allowed;
  // Where the ZapHandler's refusal lines go (default: LOG(WARNING); tests
  // catch them here).
  DropLog::Sink refusal_sink;
};

class ZmqTransport final : public Transport {
 public:
  ZmqTransport();  // plain TCP
  // Every socket CURVE. REQUIRES: CurveAvailable().
  explicit ZmqTransport(CurveSettings curve);
  ~ZmqTransport() override;

  StatusOr<std::unique_ptr<Socket>> Bind(SocketKind kind, const std::string& endpoint) override;
  std::vector<bool> Poll(const std::vector<Socket*>& sockets, int timeout_ms) override;

 private:
  StatusOr<std::unique_ptr<Socket>> DoConnect(SocketKind kind, const std::string& endpoint,
                                              const ConnectOptions& options) override;

  zmq::context_t context_;
  std::optional<CurveSettings> curve_;  // none: plain TCP
  std::unique_ptr<ZapHandler> zap_;     // when binding with CURVE; destroyed before context_
  std::atomic<uint64_t> next_socket_id_{0};
  std::string nonce_;  // tells apart processes that reuse a pid
};

}  // namespace tessera

#endif  // TESSERA_CORE_ZMQ_TRANSPORT_H_
