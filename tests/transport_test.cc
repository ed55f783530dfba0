// The transport contract (core/transport.h): every case runs against both
// implementations, ZeroMQ over loopback TCP and the in-memory one, so tests
// that use the in-memory transport can trust it behaves as production does.
#include "core/transport.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/in_memory_transport.h"
#include "core/zmq_transport.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::Not;
using ::testing::StartsWith;

// Long enough never to be reached when the message is on its way.
constexpr int kArrivalMs = 60000;

proto::Header Header(proto::Op op, int64_t step) {
  proto::Header h;
  h.set_op(op);
  h.set_step(step);
  return h;
}

template <typename T>
class TransportContractTest : public ::testing::Test {
 protected:
  // A ROUTER on a free port; nullptr (and a test failure) when binding fails.
  std::unique_ptr<Socket> BindRouter() {
    auto router = transport_.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
    EXPECT_OK(router.status());
    return router.ok() ? std::move(router).value() : nullptr;
  }

  // A DEALER connected to `router`; nullptr (and a test failure) on failure.
  std::unique_ptr<Socket> ConnectDealer(const Socket& router) {
    auto dealer = transport_.Connect(SocketKind::kDealer, router.endpoint());
    EXPECT_OK(dealer.status());
    return dealer.ok() ? std::move(dealer).value() : nullptr;
  }

  T transport_;  // outlives the sockets, which are the tests' locals
};

struct TransportNames {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, ZmqTransport> ? "Zmq" : "InMemory";
  }
};
using Implementations = ::testing::Types<ZmqTransport, InMemoryTransport>;
TYPED_TEST_SUITE(TransportContractTest, Implementations, TransportNames);

TYPED_TEST(TransportContractTest, RouterAndDealerExchangeFramesAndTheOwnerIsReleased) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  EXPECT_THAT(router->endpoint(), StartsWith("tcp://127.0.0.1:"));
  EXPECT_THAT(router->endpoint(), Not(EndsWith(":0")));
  EXPECT_THAT(router->endpoint(), Not(EndsWith("*")));
  auto dealer = this->ConnectDealer(*router);
  ASSERT_NE(dealer, nullptr);

  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  {
    proto::Header h = Header(proto::PUSH, 11);
    h.set_sender_rank(2);
    SetRanges({{100, 104}, {200, 202}}, &h);
    std::vector<OutFrame> frames = {{owner->data(), 4 * sizeof(float), owner},
                                    {owner->data() + 4, 2 * sizeof(float), owner}};
    ASSERT_OK(dealer->Send(h, frames));
  }

  auto m = router->Receive(kArrivalMs);
  ASSERT_OK(m.status());
  EXPECT_FALSE(m->peer.empty());
  EXPECT_EQ(m->header.op(), proto::PUSH);
  EXPECT_EQ(m->header.version(), proto::WIRE_VERSION_CURRENT);  // filled in by Send
  EXPECT_EQ(m->header.sender_rank(), 2);
  EXPECT_EQ(m->header.step(), 11);
  ASSERT_EQ(m->frames.size(), 2u);
  std::vector<float> scratch;
  ASSERT_EQ(m->frames[0].size(), 4 * sizeof(float));
  const float* a = FrameFloats(m->frames[0], &scratch);
  EXPECT_EQ(std::vector<float>(a, a + 4), (std::vector<float>{1, 2, 3, 4}));
  ASSERT_EQ(m->frames[1].size(), 2 * sizeof(float));
  const float* b = FrameFloats(m->frames[1], &scratch);
  EXPECT_EQ(std::vector<float>(b, b + 2), (std::vector<float>{5, 6}));

  // Once the transport is done with the frames it drops its references.
  EXPECT_TRUE(WaitUntil([&] { return owner.use_count() == 1; })) << owner.use_count();

  // The router answers the peer by its identity; frames without an owner
  // are copied at Send.
  proto::Header reply = Header(proto::PUSH_ACK, 11);
  SetRanges({{100, 101}}, &reply);
  std::vector<float> copied = {9.0f};
  ASSERT_OK(router->Send(reply, {{copied.data(), sizeof(float), nullptr}}, m->peer));
  copied[0] = -1.0f;  // must not reach the peer
  auto r = dealer->Receive(kArrivalMs);
  ASSERT_OK(r.status());
  EXPECT_EQ(r->peer, "");
  EXPECT_EQ(r->header.op(), proto::PUSH_ACK);
  EXPECT_EQ(r->header.step(), 11);
  ASSERT_EQ(r->frames.size(), 1u);
  EXPECT_EQ(*FrameFloats(r->frames[0], &scratch), 9.0f);
}

TYPED_TEST(TransportContractTest, RouterTellsPeersApartAndAnswersEachByIdentity) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto first = this->ConnectDealer(*router);
  auto second = this->ConnectDealer(*router);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_OK(first->Send(Header(proto::HEARTBEAT, 1)));
  ASSERT_OK(second->Send(Header(proto::HEARTBEAT, 2)));

  std::string peer_of_step[3];
  for (int i = 0; i < 2; ++i) {
    auto m = router->Receive(kArrivalMs);
    ASSERT_OK(m.status());
    peer_of_step[m->header.step()] = m->peer;
  }
  EXPECT_FALSE(peer_of_step[1].empty());
  EXPECT_FALSE(peer_of_step[2].empty());
  EXPECT_NE(peer_of_step[1], peer_of_step[2]);

  ASSERT_OK(router->Send(Header(proto::HEARTBEAT, 20), {}, peer_of_step[2]));
  ASSERT_OK(router->Send(Header(proto::HEARTBEAT, 10), {}, peer_of_step[1]));
  auto to_first = first->Receive(kArrivalMs);
  ASSERT_OK(to_first.status());
  EXPECT_EQ(to_first->header.step(), 10);
  auto to_second = second->Receive(kArrivalMs);
  ASSERT_OK(to_second.status());
  EXPECT_EQ(to_second->header.step(), 20);
}

TYPED_TEST(TransportContractTest, MessagesFromOnePeerArriveInOrder) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto dealer = this->ConnectDealer(*router);
  ASSERT_NE(dealer, nullptr);
  for (int step = 0; step < 100; ++step) ASSERT_OK(dealer->Send(Header(proto::HEARTBEAT, step)));
  for (int step = 0; step < 100; ++step) {
    auto m = router->Receive(kArrivalMs);
    ASSERT_OK(m.status());
    EXPECT_EQ(m->header.step(), step);
  }
}

TYPED_TEST(TransportContractTest, SendingToAnUnknownPeerIsUnavailable) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  const Status s = router->Send(Header(proto::PUSH_ACK, 0), {}, "nobody");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

TYPED_TEST(TransportContractTest, SendingToAClosedPeerIsUnavailable) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto dealer = this->ConnectDealer(*router);
  ASSERT_NE(dealer, nullptr);
  ASSERT_OK(dealer->Send(Header(proto::REGISTER, 0)));
  auto m = router->Receive(kArrivalMs);
  ASSERT_OK(m.status());
  ASSERT_OK(router->Send(Header(proto::HEARTBEAT, 0), {}, m->peer));

  dealer.reset();
  // ZeroMQ learns of the closed connection on its I/O thread, a moment later.
  Status last;
  EXPECT_TRUE(WaitUntil([&] {
    last = router->Send(Header(proto::HEARTBEAT, 0), {}, m->peer);
    return last.code() == StatusCode::kUnavailable;
  })) << last.ToString();
}

TYPED_TEST(TransportContractTest, ReceiveTimesOutWithDeadlineExceeded) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto waited = router->Receive(20);
  EXPECT_EQ(waited.status().code(), StatusCode::kDeadlineExceeded) << waited.status().ToString();
  auto not_waited = router->Receive(0);
  EXPECT_EQ(not_waited.status().code(), StatusCode::kDeadlineExceeded) << not_waited.status().ToString();
}

TYPED_TEST(TransportContractTest, ReceiveForeverGetsAMessageSentFromAnotherThread) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto dealer = this->ConnectDealer(*router);
  ASSERT_NE(dealer, nullptr);
  std::thread sender([&] { EXPECT_OK(dealer->Send(Header(proto::HEARTBEAT, 5))); });
  auto m = router->Receive(-1);
  sender.join();
  ASSERT_OK(m.status());
  EXPECT_EQ(m->header.step(), 5);
}

TYPED_TEST(TransportContractTest, PollTellsWhichSocketsAreReadable) {
  auto quiet_router = this->BindRouter();
  auto busy_router = this->BindRouter();
  ASSERT_NE(quiet_router, nullptr);
  ASSERT_NE(busy_router, nullptr);
  auto quiet_dealer = this->ConnectDealer(*quiet_router);
  auto busy_dealer = this->ConnectDealer(*busy_router);
  ASSERT_NE(quiet_dealer, nullptr);
  ASSERT_NE(busy_dealer, nullptr);
  std::vector<Socket*> all = {quiet_router.get(), busy_router.get(), quiet_dealer.get(), busy_dealer.get()};
  EXPECT_THAT(this->transport_.Poll(all, 20), ElementsAre(false, false, false, false));

  ASSERT_OK(busy_dealer->Send(Header(proto::HEARTBEAT, 1)));
  EXPECT_THAT(this->transport_.Poll(all, kArrivalMs), ElementsAre(false, true, false, false));
  auto m = busy_router->Receive(0);  // after a poll, without waiting
  ASSERT_OK(m.status());

  ASSERT_OK(busy_router->Send(Header(proto::HEARTBEAT, 2), {}, m->peer));
  EXPECT_THAT(this->transport_.Poll(all, kArrivalMs), ElementsAre(false, false, false, true));
  ASSERT_OK(busy_dealer->Receive(0).status());
  EXPECT_THAT(this->transport_.Poll(all, 0), ElementsAre(false, false, false, false));
}

TYPED_TEST(TransportContractTest, AMalformedMessageIsRefusedAndTheNextOneArrives) {
  auto router = this->BindRouter();
  ASSERT_NE(router, nullptr);
  auto dealer = this->ConnectDealer(*router);
  ASSERT_NE(dealer, nullptr);
  ASSERT_OK(dealer->Send(Header(proto::OP_UNSPECIFIED, 1)));
  proto::Header frameless = Header(proto::PUSH, 2);
  SetRanges({{0, 4}}, &frameless);  // names a tensor frame it does not carry
  ASSERT_OK(dealer->Send(frameless));
  ASSERT_OK(dealer->Send(Header(proto::HEARTBEAT, 3)));

  auto unknown_op = router->Receive(kArrivalMs);
  EXPECT_EQ(unknown_op.status().code(), StatusCode::kInvalidArgument) << unknown_op.status().ToString();
  auto missing_frame = router->Receive(kArrivalMs);
  EXPECT_EQ(missing_frame.status().code(), StatusCode::kDataLoss) << missing_frame.status().ToString();
  auto good = router->Receive(kArrivalMs);
  ASSERT_OK(good.status());
  EXPECT_EQ(good->header.step(), 3);
}

TYPED_TEST(TransportContractTest, BindingATakenAddressIsUnavailable) {
  auto first = this->BindRouter();
  ASSERT_NE(first, nullptr);
  auto second = this->transport_.Bind(SocketKind::kRouter, first->endpoint());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(NormalizeEndpointTest, AcceptsHostPort) {
  auto a = NormalizeEndpoint("127.0.0.1:5555");
  ASSERT_OK(a.status());
  EXPECT_EQ(*a, "tcp://127.0.0.1:5555");
  auto b = NormalizeEndpoint("tcp://example.org:1");
  ASSERT_OK(b.status());
  EXPECT_EQ(*b, "tcp://example.org:1");
  auto c = NormalizeEndpoint("localhost:65535");
  ASSERT_OK(c.status());
  EXPECT_EQ(*c, "tcp://localhost:65535");
}

TEST(NormalizeEndpointTest, RejectsMalformedAddresses) {
  for (const std::string bad : {"", "localhost", "localhost:", ":80", "tcp://", "tcp://:80", "host:abc", "host:8o",
                                "host:-1", "host:65536", "host:123456", "host: 80", "ipc:///tmp/sock"}) {
    auto e = NormalizeEndpoint(bad);
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << "'" << bad << "' gave " << e.status().ToString();
    if (!e.ok() && !bad.empty()) {
      EXPECT_THAT(e.status().message(), ::testing::HasSubstr(bad));
    }
  }
}

}  // namespace
}  // namespace tessera
