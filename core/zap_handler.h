// The ZAP handler (ZeroMQ RFC 27) of a process whose sockets bind with
// CURVE: a thread that answers libzmq's authentication requests on
// inproc://zeromq.zap.01 of one ZeroMQ context. It admits a CURVE client
// only when the client's public key is on the allow-list, and logs one
// line for each refusal with the peer's address and key (rate-limited by a
// DropLog: a refused node reconnects every few hundred milliseconds). The
// same thread reads the monitor events of the sockets it is told to watch,
// to log too the peers whose handshake fails before ZAP is asked: a peer
// without CURVE (libzmq's events name the bound endpoint, not the peer).
//
// ZmqTransport owns one when it binds with CURVE; the context must outlive
// it. Thread-safe: after construction only the handler's thread touches
// its socket.
#ifndef TESSERA_CORE_ZAP_HANDLER_H_
#define TESSERA_CORE_ZAP_HANDLER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "core/drop_log.h"

namespace tessera {

class ZapHandler {
 public:
  // Binds the handler's socket before returning, so no handshake can come
  // before it; `allowed` maps each admitted public key (Z85) to a name for
  // the log; refusal lines go to `sink` (null: LOG(WARNING)).
  ZapHandler(zmq::context_t* context, std::map<std::string, std::string> allowed, DropLog::Sink sink = nullptr);
  ~ZapHandler();  // stops the thread (within its 100 ms poll) and closes the sockets
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Logs the failed handshakes a socket's monitor (zmq_socket_monitor with
  // ZMQ_EVENT_HANDSHAKE_FAILED_*) reports. `monitor` is a PAIR of the same
  // context already connected to it (so no event is lost before the thread
  // takes it over; libzmq drops events nobody is connected to). Thread-safe.
  void WatchHandshakes(zmq::socket_t monitor);

 private:
  void Run();
  void AnswerOne(DropLog* refusals);
  void WatchNewMonitors();

  const std::map<std::string, std::string> allowed_;
  DropLog::Sink sink_;
  zmq::socket_t socket_;  // REP, used by thread_ only once it runs
  std::vector<zmq::socket_t> monitors_;  // PAIRs, thread_'s own
  std::mutex mu_;
  std::vector<zmq::socket_t> new_monitors_;  // guarded by mu_; moved to monitors_ by thread_
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

// The reply to one ZAP request's frames: admitted (200) or refused (400),
// with `*refusal` set to the log line of a refusal ("" when admitted). A
// malformed request (too few frames, not version 1.0) gets 500. Exposed
// for tests.
std::vector<std::string> AnswerZapRequest(const std::vector<std::string>& request,
                                          const std::map<std::string, std::string>& allowed, std::string* refusal);

// The log line of a monitor event of a bound socket at `endpoint`: a failed
// handshake; "" for any other event. Exposed for tests.
std::string HandshakeRefusal(uint16_t event, uint32_t value, const std::string& endpoint);

}  // namespace tessera

#endif  // TESSERA_CORE_ZAP_HANDLER_H_
