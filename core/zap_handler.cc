#include "core/zap_handler.h"

#include <glog/logging.h>

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

ZapHandler::ZapHandler(zmq::context_t* context, std::map<std::string, std::string> allowed, DropLog::Sink sink)
    : allowed_(std::move(allowed)), sink_(std::move(sink)), socket_(*context, zmq::socket_type::rep) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { Run(); });
}

ZapHandler::~ZapHandler() {
  quit_.store(true);
  thread_.join();
}

void ZapHandler::Run() {
  DropLog refusals(SystemClock(), DropLogOptions(), sink_);
  while (!quit_.load()) {
    try {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait)) continue;
      std::vector<std::string> request;
      for (const zmq::message_t& part : parts) request.push_back(part.to_string());
      std::string refusal;
      std::vector<std::string> reply = AnswerZapRequest(request, allowed_, &refusal);
      if (!refusal.empty()) refusals.Drop(refusal);
      for (size_t i = 0; i < reply.size(); ++i) {
        socket_.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      LOG(WARNING) << "ZAP handler: " << e.what();  // EINTR and the like: poll again
    }
  }
  socket_.close();
}

}  // namespace tessera
