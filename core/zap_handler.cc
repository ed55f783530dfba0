#include "core/zap_handler.h"

#include <glog/logging.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <zmq_addon.hpp>

#include "core/clock.h"
#include "core/drop_log.h"

namespace tessera {
namespace {

// Frames of a ZAP request (RFC 27): version, request id, domain, address,
// routing id, mechanism, then the mechanism's credentials (CURVE: the
// client's 32-byte public key).
constexpr size_t kVersion = 0, kRequestId = 1, kAddress = 3, kMechanism = 5, kCredentials = 6;

std::vector<std::string> Reply(const std::string& request_id, const std::string& code, const std::string& text,
                               const std::string& user_id) {
  return {"1.0", request_id, code, text, user_id, ""};
}

std::string Z85(const std::string& key32) {
  char text[41];
  if (zmq_z85_encode(text, reinterpret_cast<const uint8_t*>(key32.data()), 32) == nullptr) return "(unreadable)";
  return text;
}

// Reads one monitor event: a 6-byte frame (event number, value), then the endpoint.
void ReadMonitorEvent(zmq::socket_t* monitor, DropLog* refusals) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(*monitor, std::back_inserter(parts), zmq::recv_flags::dontwait)) return;
  if (parts.size() != 2 || parts[0].size() != 6) return;
  uint16_t event;
  uint32_t value;
  std::memcpy(&event, parts[0].data(), sizeof(event));
  std::memcpy(&value, static_cast<const char*>(parts[0].data()) + sizeof(event), sizeof(value));
  const std::string line = HandshakeRefusal(event, value, parts[1].to_string());
  if (!line.empty()) refusals->Drop(line);
}

}  // namespace

std::vector<std::string> AnswerZapRequest(const std::vector<std::string>& request,
                                          const std::map<std::string, std::string>& allowed, std::string* refusal) {
  refusal->clear();
  const std::string request_id = request.size() > kRequestId ? request[kRequestId] : "";
  if (request.size() < kCredentials + 1 || request[kVersion] != "1.0") {
    *refusal = "refused a connection: malformed ZAP request of " + std::to_string(request.size()) + " frames";
    return Reply(request_id, "500", "malformed request", "");
  }
  const std::string& address = request[kAddress];
  if (request[kMechanism] != "CURVE" || request[kCredentials].size() != 32) {
    *refusal = "refused a node at " + address + ": mechanism " + request[kMechanism] + ", not CURVE with a key";
    return Reply(request_id, "400", "CURVE required", "");
  }
  const std::string key = Z85(request[kCredentials]);
  auto it = allowed.find(key);
  if (it == allowed.end()) {
    *refusal = "refused a node at " + address + " with public key " + key + ": not in the allow-list";
    return Reply(request_id, "400", "key not allowed", "");
  }
  return Reply(request_id, "200", "OK", it->second.empty() ? key : it->second);
}

std::string HandshakeRefusal(uint16_t event, uint32_t value, const std::string& endpoint) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
    return "refused a connection on " + endpoint + ": the peer does not speak CURVE (no keys?)";
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    char code[16];
    std::snprintf(code, sizeof(code), "0x%08x", value);
    return "refused a connection on " + endpoint + ": ZMTP protocol error " + code;
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
    // Seen when the peer gave up first, as a plain ZeroMQ peer may on a CURVE greeting.
    return "refused a connection on " + endpoint + ": the handshake failed (a peer without CURVE?)";
  }
  return "";
}

ZapHandler::ZapHandler(zmq::context_t* context, std::map<std::string, std::string> allowed, DropLog::Sink sink)
    : allowed_(std::move(allowed)),
      sink_(std::move(sink)),
      socket_(*context, zmq::socket_type::rep) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { Run(); });
}

ZapHandler::~ZapHandler() {
  quit_.store(true);
  thread_.join();
}

void ZapHandler::WatchHandshakes(zmq::socket_t monitor) {
  std::lock_guard<std::mutex> lock(mu_);  // also the memory barrier a socket needs to change threads
  new_monitors_.push_back(std::move(monitor));
}

void ZapHandler::WatchNewMonitors() {
  std::lock_guard<std::mutex> lock(mu_);
  for (zmq::socket_t& monitor : new_monitors_) monitors_.push_back(std::move(monitor));
  new_monitors_.clear();
}

void ZapHandler::AnswerOne(DropLog* refusals) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) return;
  std::vector<std::string> request;
  for (const zmq::message_t& part : parts) request.push_back(part.to_string());
  std::string refusal;
  std::vector<std::string> reply = AnswerZapRequest(request, allowed_, &refusal);
  if (!refusal.empty()) refusals->Drop(refusal);
  for (size_t i = 0; i < reply.size(); ++i) {
    socket_.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

void ZapHandler::Run() {
  DropLog refusals(SystemClock(), DropLogOptions(), sink_);
  while (!quit_.load()) {
    try {
      WatchNewMonitors();
      std::vector<zmq::pollitem_t> items = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
      for (zmq::socket_t& monitor : monitors_) items.push_back({monitor.handle(), 0, ZMQ_POLLIN, 0});
      if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100)) == 0) continue;
      if (items[0].revents & ZMQ_POLLIN) AnswerOne(&refusals);
      for (size_t i = 0; i < monitors_.size(); ++i) {
        if (items[i + 1].revents & ZMQ_POLLIN) ReadMonitorEvent(&monitors_[i], &refusals);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      LOG(WARNING) << "ZAP handler: " << e.what();  // EINTR and the like: poll again
    }
  }
  monitors_.clear();
  socket_.close();
}

}  // namespace tessera
