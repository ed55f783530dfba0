// HeartbeatSender: a node's proof of life. A thread of its own, with its own
// DEALER socket, sends the scheduler a HEARTBEAT every interval and watches
// for the answers; when none has come for the timeout, the scheduler is
// lost and lost() turns true (the node's loops then stop). Being a thread,
// it beats on while the node computes.
//
// Thread-safe. *transport must outlive this.
#ifndef TESSERA_CORE_HEARTBEAT_H_
#define TESSERA_CORE_HEARTBEAT_H_

#include <atomic>
#include <string>
#include <thread>

#include "core/transport.h"
#include "proto/wire.pb.h"

namespace tessera {

class HeartbeatSender {
 public:
  // Starts beating for node (role, rank) of job `job_id` to `endpoint`
  // (with CURVE, the scheduler's public key `endpoint_key`; else "").
  HeartbeatSender(Transport* transport, std::string endpoint, std::string endpoint_key, proto::Role role, int rank,
                  uint64_t job_id, int interval_ms, int timeout_ms);
  ~HeartbeatSender();  // stops the thread
  HeartbeatSender(const HeartbeatSender&) = delete;
  HeartbeatSender& operator=(const HeartbeatSender&) = delete;

  // True once the scheduler has not answered for the timeout.
  const std::atomic<bool>* lost_flag() const { return &lost_; }
  bool lost() const { return lost_.load(); }

 private:
  void Run();

  Transport* transport_;
  std::string endpoint_;
  std::string endpoint_key_;
  proto::Role role_;
  int rank_;
  uint64_t job_id_;
  int interval_ms_, timeout_ms_;
  std::atomic<bool> lost_{false};
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

}  // namespace tessera

#endif  // TESSERA_CORE_HEARTBEAT_H_
