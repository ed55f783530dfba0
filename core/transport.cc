#include "core/transport.h"

namespace tessera {

Status Socket::Send(proto::Header header, const std::vector<OutFrame>& frames, const std::string& peer) {
  header.set_version(proto::WIRE_VERSION_CURRENT);
  std::string bytes;
  if (!header.SerializeToString(&bytes)) return InternalError("header does not serialize");
  return SendParts(bytes, frames, peer);
}

StatusOr<std::string> NormalizeEndpoint(const std::string& address) {
  std::string a = address;
  if (a.rfind("tcp://", 0) == 0) a = a.substr(6);
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size()) {
    return InvalidArgumentError("address '" + address + "' is not HOST:PORT");
  }
  const std::string port = a.substr(colon + 1);
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgumentError("address '" + address + "' has a non-numeric port");
  }
  if (port.size() > 5 || std::stoi(port) > 65535) return InvalidArgumentError("port of '" + address + "' is out of range");
  return "tcp://" + a;
}

}  // namespace tessera
