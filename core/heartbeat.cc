#include "core/heartbeat.h"

#include <chrono>

namespace tessera {

HeartbeatSender::HeartbeatSender(Transport* transport, std::string endpoint, std::string endpoint_key, proto::Role role,
                                 int rank, uint64_t job_id, int interval_ms, int timeout_ms)
    : transport_(transport),
      endpoint_(std::move(endpoint)),
      endpoint_key_(std::move(endpoint_key)),
      role_(role),
      rank_(rank),
      job_id_(job_id),
      interval_ms_(interval_ms),
      timeout_ms_(timeout_ms),
      thread_([this] { Run(); }) {}

HeartbeatSender::~HeartbeatSender() {
  quit_.store(true);
  thread_.join();
}

void HeartbeatSender::Run() {
  using Clock = std::chrono::steady_clock;
  // A beat left unsent at close is worthless: do not hold up the exit for it.
  auto socket = transport_->Connect(SocketKind::kDealer, endpoint_,
                                    {.drop_unsent_at_close = true, .server_public_key = endpoint_key_});
  if (!socket.ok()) {
    LOG(ERROR) << "heartbeat: " << socket.status().ToString();
    lost_.store(true);
    return;
  }
  proto::Header beat;
  beat.set_op(proto::HEARTBEAT);
  beat.set_job_id(job_id_);
  beat.set_sender_role(role_);
  beat.set_sender_rank(rank_);
  auto last_answer = Clock::now();
  auto next_beat = Clock::now();
  while (!quit_.load()) {
    if (Clock::now() >= next_beat) {
      (*socket)->Send(beat).IgnoreError();  // a lost scheduler shows as missing answers
      next_beat = Clock::now() + std::chrono::milliseconds(interval_ms_);
    }
    auto answer = (*socket)->Receive(std::min(interval_ms_, 100));
    if (answer.ok() && answer->header.op() == proto::HEARTBEAT) last_answer = Clock::now();
    if (!lost_.load() && Clock::now() - last_answer > std::chrono::milliseconds(timeout_ms_)) {
      LOG(ERROR) << "the scheduler at " << endpoint_ << " has not answered heartbeats for " << timeout_ms_ << " ms";
      lost_.store(true);
    }
  }
}

}  // namespace tessera
