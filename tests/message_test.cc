#include "core/message.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

zmq::message_t FloatFrame(const std::vector<float>& values) {
  return zmq::message_t(values.data(), values.size() * sizeof(float));
}

zmq::message_t StringFrame(const std::string& s) { return zmq::message_t(s.data(), s.size()); }

proto::Header PushHeader(const std::vector<KeyRange>& ranges) {
  proto::Header h;
  h.set_op(proto::PUSH);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  h.set_sender_rank(1);
  h.set_step(7);
  h.set_examples(64);
  SetRanges(ranges, &h);
  return h;
}

// Parts of a message: [identity], header, one frame per range holding
// values 0.5*k for key k.
std::vector<zmq::message_t> Parts(const proto::Header& h, bool identity) {
  std::vector<zmq::message_t> parts;
  if (identity) parts.push_back(StringFrame("worker-3"));
  parts.push_back(StringFrame(h.SerializeAsString()));
  for (const proto::KeyRange& r : h.ranges()) {
    std::vector<float> values;
    for (uint64_t k = r.begin(); k < r.end(); ++k) values.push_back(0.5f * static_cast<float>(k));
    parts.push_back(FloatFrame(values));
  }
  return parts;
}

bool IsDecodeError(const Status& s) {
  return s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kInvalidArgument;
}

const std::vector<KeyRange> kRanges = {{0, 3}, {10, 12}, {12, 13}};

// The hostile tester's message (issue 19, item 7): a PUSH of one sparse range
// claiming 2^28 floats (1 GiB dense), with an 8-byte frame of no runs, 31
// bytes in all. Decoding must not make it dense: only a server that has
// checked the range against its slices may, into memory of the slice's size.
TEST(MessageTest, AForgedSparsePushIsNotExpandedByTheDecoder) {
  proto::Header h;
  h.set_op(proto::PUSH);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(0);
  r->set_end(uint64_t{1} << 28);
  r->set_sparse(true);
  const uint64_t no_runs = 0;
  std::vector<zmq::message_t> parts;
  parts.push_back(StringFrame(h.SerializeAsString()));
  parts.emplace_back(&no_runs, sizeof(no_runs));
  EXPECT_LE(parts[0].size() + parts[1].size(), 31u);
  auto m = DecodeMessage(std::move(parts), /*has_identity=*/false);
  ASSERT_OK(m.status());
  ASSERT_EQ(m->frames.size(), 1u);
  EXPECT_EQ(m->frames[0].size(), 8u) << "the decoder allocated what the header claims";
  EXPECT_TRUE(m->header.ranges(0).sparse());
}

TEST(MessageTest, DecodesWellFormedMessageWithoutIdentity) {
  auto m = DecodeMessage(Parts(PushHeader(kRanges), /*identity=*/false), /*has_identity=*/false);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->peer, "");
  EXPECT_EQ(m->header.op(), proto::PUSH);
  EXPECT_EQ(m->header.step(), 7);
  EXPECT_EQ(m->header.examples(), 64);
  EXPECT_EQ(m->header.sender_rank(), 1);
  EXPECT_EQ(RangesOf(m->header), kRanges);
  ASSERT_EQ(m->frames.size(), 3u);
  std::vector<float> scratch;
  const float* f1 = FrameFloats(m->frames[1], &scratch);
  EXPECT_EQ(f1[0], 5.0f);
  EXPECT_EQ(f1[1], 5.5f);
}

TEST(MessageTest, DecodesWellFormedMessageWithIdentity) {
  auto m = DecodeMessage(Parts(PushHeader(kRanges), /*identity=*/true), /*has_identity=*/true);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->peer, "worker-3");
  EXPECT_EQ(m->header.op(), proto::PUSH);
  ASSERT_EQ(m->frames.size(), 3u);
  EXPECT_EQ(m->frames[0].size(), 3 * sizeof(float));
  EXPECT_EQ(m->frames[2].size(), 1 * sizeof(float));
}

TEST(MessageTest, DecodesHeaderWithoutRanges) {
  proto::Header h;
  h.set_op(proto::PULL);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  auto m = DecodeMessage(Parts(h, false), false);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->header.op(), proto::PULL);
  EXPECT_TRUE(m->frames.empty());
}

TEST(MessageTest, RejectsExtraFrame) {
  auto parts = Parts(PushHeader(kRanges), false);
  parts.push_back(FloatFrame({1.0f}));
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("3 key ranges"));
  EXPECT_THAT(m.status().message(), HasSubstr("4 tensor frames"));
}

TEST(MessageTest, RejectsTruncatedMultipart) {
  auto parts = Parts(PushHeader(kRanges), true);
  parts.pop_back();
  auto m = DecodeMessage(std::move(parts), true);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
}

TEST(MessageTest, RejectsWrongFrameSize) {
  auto parts = Parts(PushHeader(kRanges), false);
  parts[2] = FloatFrame({1.0f, 2.0f, 3.0f});  // range [10, 12) needs 2 floats
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("12 bytes"));
  EXPECT_THAT(m.status().message(), HasSubstr("expected 8"));

  // One byte short is as wrong as a whole float too many.
  auto short_parts = Parts(PushHeader(kRanges), false);
  short_parts[1] = zmq::message_t(11);
  EXPECT_EQ(DecodeMessage(std::move(short_parts), false).status().code(), StatusCode::kDataLoss);
}

TEST(MessageTest, RejectsEmptyRange) {
  proto::Header h = PushHeader({{0, 3}, {5, 5}});
  std::vector<zmq::message_t> parts;
  parts.push_back(StringFrame(h.SerializeAsString()));
  parts.push_back(FloatFrame({1, 2, 3}));
  parts.push_back(zmq::message_t(size_t{0}));
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("empty"));
}

TEST(MessageTest, RejectsReversedRange) {
  proto::Header h = PushHeader({});
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(9);
  r->set_end(4);
  std::vector<zmq::message_t> parts;
  parts.push_back(StringFrame(h.SerializeAsString()));
  parts.push_back(zmq::message_t(size_t{0}));
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status().ToString();
}

TEST(MessageTest, RejectsOutOfOrderRanges) {
  auto parts = Parts(PushHeader({{10, 12}, {0, 3}}), false);
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("order"));
  // Overlapping ranges are out of order too.
  auto overlapping = Parts(PushHeader({{0, 5}, {4, 6}}), false);
  EXPECT_EQ(DecodeMessage(std::move(overlapping), false).status().code(), StatusCode::kInvalidArgument);
}

TEST(MessageTest, RejectsHugeRangeBeforeTouchingFrames) {
  proto::Header h = PushHeader({});
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(0);
  r->set_end(UINT64_MAX);  // (end - begin) * 4 would overflow
  std::vector<zmq::message_t> parts;
  parts.push_back(StringFrame(h.SerializeAsString()));
  parts.push_back(zmq::message_t(size_t{4}));
  auto m = DecodeMessage(std::move(parts), false);
  EXPECT_TRUE(IsDecodeError(m.status())) << m.status().ToString();
}

TEST(MessageTest, RejectsBadWireVersion) {
  // 0: unset; 1: before sparse pushes; 2: before sparse pulls; 3: before
  // sparse tables; 5: a newer peer.
  for (int version : {0, 1, 2, 3, 5}) {
    proto::Header h = PushHeader(kRanges);
    h.clear_version();
    std::string bytes = h.SerializeAsString();
    // A version other than ours is not storable in a proto2 enum field; write it on the wire.
    if (version != 0) bytes += std::string("\x10", 1) + static_cast<char>(version);  // field 2 (version), varint
    std::vector<zmq::message_t> parts = Parts(h, false);
    parts[0] = StringFrame(bytes);
    auto m = DecodeMessage(std::move(parts), false);
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << "version " << version << ": " << m.status().ToString();
    EXPECT_THAT(m.status().message(), HasSubstr("version"));
  }
}

TEST(MessageTest, RejectsUnknownOp) {
  // No op at all.
  proto::Header h = PushHeader(kRanges);
  h.clear_op();
  auto m = DecodeMessage(Parts(h, false), false);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("op"));

  // An op number from a newer peer.
  std::string bytes = h.SerializeAsString() + std::string("\x08\x63", 2);  // field 1 (op), varint 99
  auto parts = Parts(h, false);
  parts[0] = StringFrame(bytes);
  auto m2 = DecodeMessage(std::move(parts), false);
  EXPECT_EQ(m2.status().code(), StatusCode::kInvalidArgument) << m2.status().ToString();
}

TEST(MessageTest, RejectsHeaderThatDoesNotParse) {
  auto parts = Parts(PushHeader(kRanges), true);
  parts[1] = StringFrame(std::string("\xff\xff\xff\xff\xff", 5));
  auto m = DecodeMessage(std::move(parts), true);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  EXPECT_THAT(m.status().message(), HasSubstr("parse"));

  // A valid header cut short mid-field.
  const std::string full = PushHeader(kRanges).SerializeAsString();
  auto cut = Parts(PushHeader(kRanges), false);
  cut[0] = StringFrame(full.substr(0, full.size() - 1));
  auto m2 = DecodeMessage(std::move(cut), false);
  EXPECT_TRUE(IsDecodeError(m2.status())) << m2.status().ToString();
}

TEST(MessageTest, RejectsZeroParts) {
  auto m = DecodeMessage({}, false);
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  auto m2 = DecodeMessage({}, true);
  EXPECT_EQ(m2.status().code(), StatusCode::kDataLoss) << m2.status().ToString();
  // An identity frame and nothing else has no header either.
  std::vector<zmq::message_t> only_identity;
  only_identity.push_back(StringFrame("worker-3"));
  auto m3 = DecodeMessage(std::move(only_identity), true);
  EXPECT_EQ(m3.status().code(), StatusCode::kDataLoss) << m3.status().ToString();
}

TEST(MessageTest, RandomHeaderBytesNeverCrash) {
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937 rng(seed);
    const bool identity = seed % 2 == 1;
    std::vector<zmq::message_t> parts;
    if (identity) parts.push_back(StringFrame("peer"));
    std::string header(rng() % 64, '\0');
    for (char& c : header) c = static_cast<char>(rng() & 0xff);
    parts.push_back(StringFrame(header));
    const int frames = static_cast<int>(rng() % 3);
    for (int f = 0; f < frames; ++f) {
      std::string bytes(rng() % 32, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
      parts.push_back(StringFrame(bytes));
    }
    auto m = DecodeMessage(std::move(parts), identity);
    if (m.ok()) {
      // Only a header that happens to be valid may pass, and then it agrees with its frames.
      SCOPED_TRACE("seed " + std::to_string(seed));
      EXPECT_OK(ValidateMessage(m->header, m->frames));
    } else {
      EXPECT_TRUE(IsDecodeError(m.status())) << "seed " << seed << ": " << m.status().ToString();
    }
  }
}

TEST(MessageTest, RandomRangesAndFrameSizesNeverCrash) {
  int accepted = 0;
  int rejected = 0;
  for (uint32_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    proto::Header h;
    h.set_op(proto::PUSH);
    h.set_version(proto::WIRE_VERSION_CURRENT);
    const int nranges = static_cast<int>(rng() % 4);
    for (int i = 0; i < nranges; ++i) {
      proto::KeyRange* r = h.add_ranges();
      // Mostly small keys, sometimes enormous ones.
      const uint64_t scale = rng() % 4 == 0 ? UINT64_MAX : 16;
      r->set_begin(rng() % scale);
      r->set_end(rng() % scale);
    }
    std::vector<zmq::message_t> parts;
    parts.push_back(StringFrame(h.SerializeAsString()));
    const int nframes = nranges + static_cast<int>(rng() % 3) - 1;
    for (int f = 0; f < nframes; ++f) parts.push_back(zmq::message_t(static_cast<size_t>(rng() % 64)));
    auto m = DecodeMessage(std::move(parts), false);
    if (m.ok()) {
      ++accepted;
      ASSERT_EQ(m->frames.size(), static_cast<size_t>(m->header.ranges_size())) << "seed " << seed;
      for (int i = 0; i < m->header.ranges_size(); ++i) {
        const proto::KeyRange& r = m->header.ranges(i);
        ASSERT_LT(r.begin(), r.end()) << "seed " << seed;
        EXPECT_EQ(m->frames[i].size(), (r.end() - r.begin()) * sizeof(float)) << "seed " << seed;
      }
    } else {
      ++rejected;
      EXPECT_TRUE(IsDecodeError(m.status())) << "seed " << seed << ": " << m.status().ToString();
    }
  }
  // The generator reaches both outcomes, so the checks above ran.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

proto::Header SparseHeader(proto::Op op, uint64_t count, int dim) {
  proto::Header h;
  h.set_op(op);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  h.set_sender_rank(0);
  h.set_step(3);
  h.set_examples(2);
  h.mutable_sparse_rows()->set_table(0);
  h.mutable_sparse_rows()->set_count(count);
  h.mutable_sparse_rows()->set_dim(dim);
  return h;
}

std::vector<zmq::message_t> SparseParts(const proto::Header& h, std::vector<size_t> frame_bytes) {
  std::vector<zmq::message_t> parts;
  parts.push_back(StringFrame(h.SerializeAsString()));
  for (size_t bytes : frame_bytes) parts.push_back(StringFrame(std::string(bytes, '\1')));
  return parts;
}

TEST(MessageTest, SparseTableMessagesCarryExactlyTheIdsAndRowsTheyState) {
  // 3 ids of 4 floats: 24 bytes of ids, 48 of rows.
  EXPECT_TRUE(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PUSH, 3, 4), {24, 48}), false).ok());
  EXPECT_TRUE(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PULL, 3, 4), {24}), false).ok());
  EXPECT_TRUE(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_ROWS, 3, 4), {48}), false).ok());
  EXPECT_TRUE(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PUSH, 0, 4), {0, 0}), false).ok());

  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PUSH, 3, 4), {24}), false).status()));
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PUSH, 3, 4), {24, 47}), false).status()));
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PULL, 3, 4), {23}), false).status()));
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_ROWS, 3, 4), {24, 48}), false).status()));
  // A count whose bytes would overflow, a dim out of range, a negative table,
  // key ranges, a missing body, and sparse_rows where it does not belong.
  EXPECT_TRUE(IsDecodeError(
      DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PULL, uint64_t{1} << 62, 4), {0}), false).status()));
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PULL, 1, 0), {8}), false).status()));
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(SparseHeader(proto::SPARSE_PULL, 1, 1025), {8}), false).status()));
  proto::Header negative = SparseHeader(proto::SPARSE_PULL, 1, 4);
  negative.mutable_sparse_rows()->set_table(-1);
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(negative, {8}), false).status()));
  proto::Header ranged = SparseHeader(proto::SPARSE_PULL, 1, 4);
  SetRanges({{0, 2}}, &ranged);
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(ranged, {8}), false).status()));
  proto::Header bodiless = SparseHeader(proto::SPARSE_PULL, 1, 4);
  bodiless.clear_sparse_rows();
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(bodiless, {8}), false).status()));
  proto::Header push = PushHeader({});
  push.mutable_sparse_rows()->set_dim(1);
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(push, {}), false).status()));
  proto::Header negative_examples = SparseHeader(proto::SPARSE_PUSH, 0, 4);
  negative_examples.set_examples(-2);
  EXPECT_TRUE(IsDecodeError(DecodeMessage(SparseParts(negative_examples, {0, 0}), false).status()));
}

TEST(MessageTest, FrameIdsCopiesUnalignedIds) {
  std::string bytes(17, '\0');
  const uint64_t ids[2] = {5, uint64_t{1} << 63};
  std::memcpy(bytes.data() + 1, ids, sizeof(ids));
  zmq::message_t frame(bytes.data() + 1, 16);
  EXPECT_EQ(FrameIds(frame), (std::vector<uint64_t>{5, uint64_t{1} << 63}));
}

TEST(MessageTest, SetRangesAndRangesOfRoundTrip) {
  proto::Header h;
  SetRanges({{1, 2}}, &h);
  SetRanges(kRanges, &h);  // replaces, not appends
  EXPECT_EQ(h.ranges_size(), 3);
  EXPECT_EQ(RangesOf(h), kRanges);
  SetRanges({}, &h);
  EXPECT_TRUE(RangesOf(h).empty());
}

TEST(MessageTest, FrameFloatsReturnsAlignedFrameMemory) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f, 10.0f};
  zmq::message_t frame = FloatFrame(values);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(frame.data()) % alignof(float), 0u);
  std::vector<float> scratch;
  const float* f = FrameFloats(frame, &scratch);
  EXPECT_EQ(f, static_cast<const float*>(frame.data()));
  EXPECT_TRUE(scratch.empty());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(f[i], values[i]);
}

void NoFree(void* /*data*/, void* /*hint*/) {}

TEST(MessageTest, FrameFloatsCopiesUnalignedFrame) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 1e-30f, 7.0f};
  // A zero-copy frame over bytes starting at an odd address.
  alignas(16) unsigned char buffer[1 + 5 * sizeof(float)];
  std::memcpy(buffer + 1, values.data(), 5 * sizeof(float));
  zmq::message_t frame(buffer + 1, 5 * sizeof(float), NoFree, nullptr);
  ASSERT_NE(reinterpret_cast<uintptr_t>(frame.data()) % alignof(float), 0u);
  std::vector<float> scratch;
  const float* f = FrameFloats(frame, &scratch);
  EXPECT_NE(static_cast<const void*>(f), frame.data());
  ASSERT_EQ(reinterpret_cast<uintptr_t>(f) % alignof(float), 0u);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(f[i], values[i]) << i;
}

}  // namespace
}  // namespace tessera
