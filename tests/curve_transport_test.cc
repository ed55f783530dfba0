// ZmqTransport with CURVE (core/zmq_transport.h, core/zap_handler.h): an
// admitted key talks, an unknown key and a plain peer get nothing through,
// and the refusal is logged with the peer's address and key.
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/curve_keys.h"
#include "core/zap_handler.h"
#include "core/zmq_transport.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kArrivalMs = 60000;  // never reached when a message is on its way

proto::Header Step(int64_t step) {
  proto::Header h;
  h.set_op(proto::HEARTBEAT);
  h.set_step(step);
  return h;
}

CurveKeyPair NewPair() {
  auto pair = GenerateCurveKeyPair();
  EXPECT_OK(pair.status());
  return pair.ok() ? *pair : CurveKeyPair();
}

class CurveTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
    server_keys_ = NewPair();
    client_keys_ = NewPair();
    CurveSettings settings{server_keys_, {{client_keys_.public_key, "client"}}, nullptr};
    settings.refusal_sink = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      refusals_.push_back(line);
    };
    server_ = std::make_unique<ZmqTransport>(std::move(settings));
    auto router = server_->Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
    ASSERT_OK(router.status());
    router_ = std::move(router).value();
  }

  std::vector<std::string> Refusals() {
    std::lock_guard<std::mutex> lock(mu_);
    return refusals_;
  }

  CurveKeyPair server_keys_, client_keys_;
  std::unique_ptr<ZmqTransport> server_;
  std::unique_ptr<Socket> router_;
  std::mutex mu_;
  std::vector<std::string> refusals_;  // guarded by mu_
};

TEST_F(CurveTransportTest, AnAdmittedClientTalksBothWays) {
  ZmqTransport client(CurveSettings{client_keys_, {}, nullptr});
  auto dealer =
      client.Connect(SocketKind::kDealer, router_->endpoint(), {.server_public_key = server_keys_.public_key});
  ASSERT_OK(dealer.status());
  ASSERT_OK((*dealer)->Send(Step(7)));
  auto got = router_->Receive(kArrivalMs);
  ASSERT_OK(got.status());
  EXPECT_EQ(got->header.step(), 7);
  ASSERT_OK(router_->Send(Step(8), {}, got->peer));
  auto back = (*dealer)->Receive(kArrivalMs);
  ASSERT_OK(back.status());
  EXPECT_EQ(back->header.step(), 8);
  EXPECT_TRUE(Refusals().empty());
}

TEST_F(CurveTransportTest, AnUnknownKeyIsRefusedAndLoggedWithItsAddressAndKey) {
  const CurveKeyPair stranger_keys = NewPair();
  ZmqTransport stranger(CurveSettings{stranger_keys, {}, nullptr});
  auto intruder =
      stranger.Connect(SocketKind::kDealer, router_->endpoint(), {.server_public_key = server_keys_.public_key});
  ASSERT_OK(intruder.status());
  ASSERT_OK((*intruder)->Send(Step(666)));
  ASSERT_TRUE(WaitUntil([&] { return !Refusals().empty(); }, 60));
  EXPECT_THAT(Refusals()[0], HasSubstr("refused a node at 127.0.0.1 with public key " + stranger_keys.public_key +
                                       ": not in the allow-list"));
  // An admitted client's message arrives, and nothing of the stranger's ever does.
  ZmqTransport client(CurveSettings{client_keys_, {}, nullptr});
  auto dealer =
      client.Connect(SocketKind::kDealer, router_->endpoint(), {.server_public_key = server_keys_.public_key});
  ASSERT_OK(dealer.status());
  ASSERT_OK((*dealer)->Send(Step(1)));
  auto got = router_->Receive(kArrivalMs);
  ASSERT_OK(got.status());
  EXPECT_EQ(got->header.step(), 1);
  EXPECT_EQ(router_->Receive(0).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(CurveTransportTest, APlainPeerGetsNothingThroughAndIsLogged) {
  ZmqTransport plain;
  auto intruder = plain.Connect(SocketKind::kDealer, router_->endpoint());
  ASSERT_OK(intruder.status());
  ASSERT_OK((*intruder)->Send(Step(666)));
  // libzmq fails the greeting without asking ZAP; the socket's monitor tells (not from where). Which
  // side fails first varies: "does not speak CURVE", or "the handshake failed" when the peer left.
  const std::string refused = "refused a connection on " + router_->endpoint() + ": ";
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const std::string& line : Refusals()) {
          if (line.find(refused) != std::string::npos) return true;
        }
        return false;
      },
      60))
      << ::testing::PrintToString(Refusals());
  // No message of its got in; an admitted client's comes first and alone.
  ZmqTransport client(CurveSettings{client_keys_, {}, nullptr});
  auto dealer =
      client.Connect(SocketKind::kDealer, router_->endpoint(), {.server_public_key = server_keys_.public_key});
  ASSERT_OK(dealer.status());
  ASSERT_OK((*dealer)->Send(Step(1)));
  auto got = router_->Receive(kArrivalMs);
  ASSERT_OK(got.status());
  EXPECT_EQ(got->header.step(), 1);
  EXPECT_EQ(router_->Receive(0).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(CurveTransportTest, ConnectingWithoutThePeersKeyIsRefused) {
  ZmqTransport client(CurveSettings{client_keys_, {}, nullptr});
  auto dealer = client.Connect(SocketKind::kDealer, router_->endpoint());
  EXPECT_EQ(dealer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(dealer.status().message(), HasSubstr("its public key is not known"));
}

TEST_F(CurveTransportTest, BindingWithoutAnAllowListIsRefused) {
  ZmqTransport client(CurveSettings{client_keys_, {}, nullptr});
  auto router = client.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
  EXPECT_EQ(router.status().code(), StatusCode::kFailedPrecondition);
}

// ZAP requests (RFC 27) as libzmq sends them, answered without sockets.
TEST(ZapAnswerTest, AdmitsAListedKeyAndRefusesTheRest) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  const CurveKeyPair listed = NewPair();
  const CurveKeyPair other = NewPair();
  uint8_t raw[32];
  auto request = [&](const CurveKeyPair& pair) {
    zmq_z85_decode(raw, pair.public_key.c_str());
    return std::vector<std::string>{
        "1.0", "id7", "tessera", "10.1.2.3", "", "CURVE", std::string(reinterpret_cast<char*>(raw), 32)};
  };
  const std::map<std::string, std::string> allowed = {{listed.public_key, "worker"}};
  std::string refusal;
  EXPECT_THAT(AnswerZapRequest(request(listed), allowed, &refusal),
              ElementsAre("1.0", "id7", "200", "OK", "worker", ""));
  EXPECT_EQ(refusal, "");
  EXPECT_THAT(AnswerZapRequest(request(other), allowed, &refusal),
              ElementsAre("1.0", "id7", "400", "key not allowed", "", ""));
  EXPECT_EQ(refusal, "refused a node at 10.1.2.3 with public key " + other.public_key + ": not in the allow-list");
  EXPECT_THAT(AnswerZapRequest({"1.0", "id8", "tessera", "10.1.2.3", "", "NULL"}, allowed, &refusal)[2], "500");
  EXPECT_THAT(AnswerZapRequest({"1.0", "id9", "tessera", "10.1.2.3", "", "NULL", ""}, allowed, &refusal)[2], "400");
  EXPECT_THAT(refusal, HasSubstr("mechanism NULL, not CURVE"));
  EXPECT_THAT(AnswerZapRequest({}, allowed, &refusal), ElementsAre("1.0", "", "500", "malformed request", "", ""));
}

TEST(HandshakeRefusalTest, NamesTheBoundEndpointAndWhy) {
  const std::string at = "tcp://0.0.0.0:7000";
  EXPECT_EQ(HandshakeRefusal(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, at),
            "refused a connection on tcp://0.0.0.0:7000: the peer does not speak CURVE (no keys?)");
  EXPECT_EQ(HandshakeRefusal(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, 0x10000000, at),
            "refused a connection on tcp://0.0.0.0:7000: ZMTP protocol error 0x10000000");
  EXPECT_EQ(HandshakeRefusal(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0, at),
            "refused a connection on tcp://0.0.0.0:7000: the handshake failed (a peer without CURVE?)");
  EXPECT_EQ(HandshakeRefusal(ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0, at), "");
}

}  // namespace
}  // namespace tessera
