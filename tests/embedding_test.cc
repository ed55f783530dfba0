// The Embedding layer, a model's touched rows, and sparse push frames.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/key_range.h"
#include "core/message.h"
#include "core/sparse_frame.h"
#include "models/embedding.h"
#include "models/model.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

TEST(EmbeddingTest, IdsAreRoundedAndCheckedAgainstTheTable) {
  EXPECT_EQ(EmbeddingId(0.0f, 4), 0);
  EXPECT_EQ(EmbeddingId(2.9999f, 4), 3);
  EXPECT_EQ(EmbeddingId(1.0001f, 4), 1);
  EXPECT_EQ(EmbeddingId(-0.4f, 4), 0);
  EXPECT_EQ(EmbeddingId(-0.6f, 4), -1);
  EXPECT_EQ(EmbeddingId(4.0f, 4), -1);
  EXPECT_EQ(EmbeddingId(3.6f, 4), -1);
  EXPECT_EQ(EmbeddingId(NAN, 4), -1);
  EXPECT_EQ(EmbeddingId(INFINITY, 4), -1);
  EXPECT_EQ(EmbeddingId(1e30f, 4), -1);
  const std::vector<float> values = {3, 1, 3, 7, 0, 1};
  EXPECT_EQ(DistinctEmbeddingIds(values.data(), values.size(), 5), (std::vector<int64_t>{0, 1, 3}));
  // Few values over many rows: sorted rather than marked, the same answer.
  EXPECT_EQ(DistinctEmbeddingIds(values.data(), values.size(), 1000), (std::vector<int64_t>{0, 1, 3, 7}));
  std::mt19937 rng(3);
  std::vector<float> many(600);
  for (float& v : many) v = static_cast<float>(rng() % 300) - 0.4f;
  const std::vector<int64_t> marked = DistinctEmbeddingIds(many.data(), many.size(), 250);
  const std::vector<int64_t> sorted = DistinctEmbeddingIds(many.data(), 1, 250);  // 250 > 4: sorts
  EXPECT_TRUE(std::is_sorted(marked.begin(), marked.end()));
  EXPECT_GT(marked.size(), 200u);
  EXPECT_EQ(marked.back(), 249);
  std::vector<int64_t> reference;
  for (float v : many) {
    const int64_t id = EmbeddingId(v, 250);
    if (id >= 0 && std::find(reference.begin(), reference.end(), id) == reference.end()) reference.push_back(id);
  }
  std::sort(reference.begin(), reference.end());
  EXPECT_EQ(marked, reference);
  EXPECT_EQ(sorted.size(), EmbeddingId(many[0], 250) >= 0 ? 1u : 0u);
}

TEST(EmbeddingTest, ForwardLooksUpRowsAndBackwardSumsIntoThem) {
  const int64_t rows = 5, dim = 3, features = 4, batch = 2;
  Embedding layer({features}, rows, dim);
  EXPECT_EQ(layer.out_shape(), (Shape{features, dim}));
  std::mt19937 rng(1);
  std::vector<float> weight = RandomVector(rng, rows * dim);
  std::vector<float> grad(rows * dim, 7.0f);  // not zero: the layer must clear it
  layer.Bind(weight.data(), grad.data());
  // Row 2 three times, row 4 once, an invalid id (9) once.
  const std::vector<float> x = {2, 0, 2, 9, 4, 2, 0.2f, 1};
  std::vector<float> y(batch * features * dim);
  layer.Forward(x.data(), batch, y.data(), Pass{});
  for (int64_t i = 0; i < batch * features; ++i) {
    const int64_t id = EmbeddingId(x[i], rows);
    for (int64_t k = 0; k < dim; ++k) {
      EXPECT_EQ(y[i * dim + k], id < 0 ? 0.0f : weight[id * dim + k]) << i << "," << k;
    }
  }
  const std::vector<float> dy = RandomVector(rng, y.size());
  std::vector<float> dx(x.size(), 5.0f);
  layer.Backward(x.data(), y.data(), dy.data(), batch, dx.data());
  EXPECT_EQ(dx, std::vector<float>(x.size(), 0.0f)) << "ids have no gradient";
  // The gradient of sum(y .* dy), numerically, for every weight.
  auto loss = [&] {
    std::vector<float> out(y.size());
    layer.Forward(x.data(), batch, out.data(), Pass{});
    return Weighted(out, dy);
  };
  for (int64_t j = 0; j < rows * dim; ++j) {
    ExpectGradNear(grad[j], Numeric(&weight[j], loss), "weight " + std::to_string(j));
  }
  EXPECT_EQ(grad[3 * dim], 0.0f) << "row 3 is not used";

  // A second batch into the same buffer: rows the first used and this one
  // does not are cleared.
  const std::vector<float> x2 = {3, 3, 3, 3, 3, 3, 3, 3};
  layer.Backward(x2.data(), y.data(), dy.data(), batch, nullptr);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < dim; ++k) {
      float expected = 0;
      if (r == 3) {
        for (int64_t i = 0; i < batch * features; ++i) expected += dy[i * dim + k];
      }
      EXPECT_FLOAT_EQ(grad[r * dim + k], expected) << r << "," << k;
    }
  }
}

proto::ModelSpec EmbeddingModel(bool sparse) {
  return ParseModel(std::string("layer { embedding { num_embeddings: 10 embedding_dim: 2 sparse_gradients: ") +
                    (sparse ? "true" : "false") + " } } layer { linear { out_features: 3 } }");
}

TEST(EmbeddingTest, ModelReportsTheRowsABatchTouched) {
  auto model = Model::Create(EmbeddingModel(true), {3}, 3);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_EQ((*model)->sparse_tensors().size(), 1u);
  EXPECT_EQ((*model)->sparse_tensors()[0], (KeyRange{0, 20}));
  const std::vector<float> x = {4, 5, 9, 1, 4, 4};  // rows 1, 4, 5, 9
  const std::vector<float> labels = {0, 2};
  (*model)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_EQ((*model)->touched_runs(), (std::vector<KeyRange>{{2, 4}, {8, 12}, {18, 20}}));
  // Everything else of the table's gradient is zero.
  const std::vector<float>& g = *(*model)->grads();
  for (uint64_t k = 0; k < 20; ++k) {
    const bool touched = (k >= 2 && k < 4) || (k >= 8 && k < 12) || k >= 18;
    if (!touched) {
      EXPECT_EQ(g[k], 0.0f) << k;
    }
  }
  // A dense embedding reports nothing.
  auto dense = Model::Create(EmbeddingModel(false), {3}, 3);
  ASSERT_TRUE(dense.ok());
  (*dense)->TrainBatch(x.data(), labels.data(), 2);
  EXPECT_TRUE((*dense)->sparse_tensors().empty());
  EXPECT_TRUE((*dense)->touched_runs().empty());
  EXPECT_EQ(*(*dense)->grads(), g) << "sparse or not, the gradients are the same";
}

TEST(EmbeddingTest, ModelChecksItsInputsAndWhereTheEmbeddingSits) {
  auto model = Model::Create(EmbeddingModel(true), {3}, 3);
  ASSERT_TRUE(model.ok());
  const std::vector<float> good = {0, 9, 3.0001f};
  EXPECT_OK((*model)->ValidateInputValues(good.data(), good.size()));
  const std::vector<float> bad = {0, 10};
  const Status s = (*model)->ValidateInputValues(bad.data(), bad.size());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("not an id in [0, 10)"));

  auto second = Model::Create(ParseModel("layer { relu {} } layer { embedding { num_embeddings: 4 embedding_dim: 2 } } "
                                         "layer { linear { out_features: 3 } }"),
                              {3}, 3);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("must be the first layer"));
  auto empty = Model::Create(ParseModel("layer { embedding { num_embeddings: 0 embedding_dim: 2 } } "
                                        "layer { linear { out_features: 3 } }"),
                             {3}, 3);
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("num_embeddings must be >= 1"));
}

// The dense floats a sparse frame for a range of `keys` floats stands for,
// as a server makes them (KvShard::AddPush): zeros outside the runs.
StatusOr<std::vector<float>> Dense(const zmq::message_t& frame, uint64_t keys) {
  ASSIGN_OR_RETURN(SparseFrameView view, ParseSparseFrame(frame, keys));
  std::vector<float> dense(keys, 0.0f);
  CopySparseValues(view, dense.data());
  return dense;
}

TEST(SparseFrameTest, RoundTripsToTheDenseFrame) {
  std::vector<float> values(10);
  for (int i = 0; i < 10; ++i) values[i] = static_cast<float>(i + 1);
  const std::vector<KeyRange> runs = {{1, 3}, {7, 8}};
  const std::string frame = EncodeSparseFrame(values.data(), runs);
  EXPECT_EQ(frame.size(), SparseFrameBytes(runs));
  EXPECT_EQ(frame.size(), 8u + 2 * 16 + 3 * 4);
  zmq::message_t message(frame.data(), frame.size());
  auto dense = Dense(message, 10);
  ASSERT_TRUE(dense.ok()) << dense.status().ToString();
  EXPECT_EQ(*dense, (std::vector<float>{0, 2, 3, 0, 0, 0, 0, 8, 0, 0}));
  // No runs at all: all zeros.
  const std::string none = EncodeSparseFrame(values.data(), {});
  zmq::message_t empty(none.data(), none.size());
  auto zeros = Dense(empty, 4);
  ASSERT_TRUE(zeros.ok());
  EXPECT_EQ(*zeros, (std::vector<float>{0, 0, 0, 0}));
}

// A frame with these (offset, length) pairs, `floats` values and `extra` bytes more.
std::string RawFrame(uint64_t count, const std::vector<std::pair<uint64_t, uint64_t>>& pairs, size_t floats,
                     int extra = 0) {
  std::string frame(sizeof(uint64_t) * (1 + 2 * pairs.size()) + floats * sizeof(float) + std::max(extra, 0), '\0');
  std::memcpy(frame.data(), &count, sizeof(count));
  for (size_t i = 0; i < pairs.size(); ++i) {
    const uint64_t pair[2] = {pairs[i].first, pairs[i].second};
    std::memcpy(frame.data() + 8 + 16 * i, pair, sizeof(pair));
  }
  if (extra < 0) frame.resize(frame.size() + extra);
  return frame;
}

TEST(SparseFrameTest, MalformedFramesAreRefused) {
  struct Case {
    std::string name, frame, error;
  };
  const std::vector<Case> cases = {
      {"too short", std::string(4, '\0'), "no run count"},
      {"huge count", RawFrame(uint64_t{1} << 62, {}, 0), "runs, more than"},
      {"empty run", RawFrame(1, {{2, 0}}, 0), "is empty, out of order or outside"},
      {"past the end", RawFrame(1, {{8, 3}}, 3), "outside the range's 10 keys"},
      {"overflowing", RawFrame(1, {{2, ~uint64_t{0}}}, 0), "outside"},
      {"out of order", RawFrame(2, {{5, 1}, {2, 1}}, 2), "out of order"},
      {"overlapping", RawFrame(2, {{2, 3}, {4, 1}}, 4), "out of order"},
      {"short values", RawFrame(1, {{2, 3}}, 3, -4), "its runs need"},
      {"long values", RawFrame(1, {{2, 3}}, 3, 4), "its runs need"},
  };
  for (const Case& c : cases) {
    zmq::message_t message(c.frame.data(), c.frame.size());
    auto dense = ParseSparseFrame(message, 10);
    ASSERT_FALSE(dense.ok()) << c.name;
    EXPECT_EQ(dense.status().code(), StatusCode::kDataLoss) << c.name;
    EXPECT_THAT(dense.status().message(), HasSubstr(c.error)) << c.name;
  }
}

// A sparse push is checked and kept as it came: only a server that has
// checked the range against its slices makes it dense (KvShard::AddPush).
TEST(SparseFrameTest, DecodeMessageChecksSparsePushesAndKeepsThemSparse) {
  proto::Header h;
  h.set_op(proto::PUSH);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(100);
  r->set_end(104);
  r->set_sparse(true);
  proto::KeyRange* d = h.add_ranges();
  d->set_begin(104);
  d->set_end(106);
  const std::vector<float> values = {1, 2, 3, 4};
  const std::string sparse = EncodeSparseFrame(values.data(), {{3, 4}});
  auto parts = [&](const std::string& first) {
    std::vector<zmq::message_t> p;
    const std::string header = h.SerializeAsString();
    p.emplace_back(header.data(), header.size());
    p.emplace_back(first.data(), first.size());
    p.emplace_back(values.data(), 2 * sizeof(float));
    return p;
  };
  auto m = DecodeMessage(parts(sparse), /*has_identity=*/false);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->header.ranges(0).sparse());
  EXPECT_EQ(SparseRangesOf(m->header), (std::vector<bool>{true, false}));
  ASSERT_EQ(m->frames[0].size(), sparse.size());
  auto dense = Dense(m->frames[0], 4);
  ASSERT_TRUE(dense.ok());
  EXPECT_EQ(*dense, (std::vector<float>{0, 0, 0, 4}));
  EXPECT_EQ(m->frames[1].size(), 8u);

  auto bad = DecodeMessage(parts(sparse.substr(0, sparse.size() - 1)), false);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("frame 1"));

  h.set_op(proto::PUSH_ACK);  // only pushes, pulls and their answers may be sparse
  auto ack = DecodeMessage(parts(sparse), false);
  ASSERT_FALSE(ack.ok());
  EXPECT_THAT(ack.status().message(), HasSubstr("sparse key range 0 in a PUSH_ACK"));
}

TEST(SparseFrameTest, SparsePullsAndTheirParamsStaySparse) {
  const std::vector<float> values = {1, 2, 3, 4};
  auto message = [&](proto::Op op, bool sparse, const std::string& frame) {
    proto::Header h;
    h.set_op(op);
    h.set_version(proto::WIRE_VERSION_CURRENT);
    proto::KeyRange* r = h.add_ranges();
    r->set_begin(100);
    r->set_end(104);
    r->set_sparse(sparse);
    std::vector<zmq::message_t> p;
    const std::string header = h.SerializeAsString();
    p.emplace_back(header.data(), header.size());
    p.emplace_back(frame.data(), frame.size());
    return DecodeMessage(std::move(p), /*has_identity=*/false);
  };
  // PARAMS answering a sparse pull: the frame is checked, and kept as it came.
  const std::string rows = EncodeSparseFrame(values.data(), {{0, 1}, {2, 4}});
  auto params = message(proto::PARAMS, true, rows);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_TRUE(params->header.ranges(0).sparse());
  ASSERT_EQ(params->frames[0].size(), rows.size());
  auto view = ParseSparseFrame(params->frames[0], 4);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  std::vector<float> out(4, -1);
  CopySparseValues(*view, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, -1, 3, 4})) << "only the runs are written";
  auto short_params = message(proto::PARAMS, true, rows.substr(0, rows.size() - 4));
  ASSERT_FALSE(short_params.ok());
  EXPECT_THAT(short_params.status().message(), HasSubstr("frame 1"));

  // A pull's run list: the rows wanted, no values.
  const std::string list = EncodeRunList({{1, 3}});
  auto pull = message(proto::PULL, true, list);
  ASSERT_TRUE(pull.ok()) << pull.status().ToString();
  auto runs = ParseRunList(pull->frames[0], 4);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].begin, 1u);
  EXPECT_EQ((*runs)[0].end, 3u);
  struct Case {
    const char* name;
    bool sparse;
    std::string frame;
    const char* error;
  };
  const std::vector<Case> bad = {
      {"dense range", false, std::string(16, '\0'), "is not sparse"},
      {"values after the runs", true, list + std::string(8, '\0'), "run list holds"},
      {"run past the range", true, EncodeRunList({{2, 5}}), "outside the range"},
      {"runs out of order", true, EncodeRunList({{2, 3}, {0, 1}}), "out of order"},
      {"no count", true, std::string(4, '\0'), "no run count"},
  };
  for (const Case& c : bad) {
    auto m = message(proto::PULL, c.sparse, c.frame);
    ASSERT_FALSE(m.ok()) << c.name;
    EXPECT_THAT(m.status().message(), HasSubstr(c.error)) << c.name << ": " << m.status().ToString();
  }
}

// A sparse range stands for keys * 4 dense bytes. No slice is larger than a
// frame may be (kMaxFrameBytes, the sockets' maxmsgsize), so a sparse range
// larger than that can only be malformed (or hostile: the range check alone
// lets 2^40 keys, 4 TiB, through), and is refused.
TEST(SparseFrameTest, ASparseRangeThatExpandsPastTheFrameLimitIsRefused) {
  const uint64_t keys = kMaxFrameBytes / sizeof(float) + 1;
  proto::Header h;
  h.set_op(proto::PUSH);
  h.set_version(proto::WIRE_VERSION_CURRENT);
  proto::KeyRange* r = h.add_ranges();
  r->set_begin(0);
  r->set_end(keys);
  r->set_sparse(true);
  const std::string frame = EncodeSparseFrame(nullptr, {});  // n = 0: 8 bytes
  ASSERT_EQ(frame.size(), 8u);
  std::vector<zmq::message_t> parts;
  const std::string header = h.SerializeAsString();
  parts.emplace_back(header.data(), header.size());
  parts.emplace_back(frame.data(), frame.size());
  auto m = DecodeMessage(std::move(parts), /*has_identity=*/false);
  ASSERT_FALSE(m.ok()) << "an 8-byte frame became a dense frame of " << m->frames[0].size()
                       << " bytes, more than any socket accepts (" << kMaxFrameBytes << ")";
  EXPECT_THAT(m.status().message(), HasSubstr("more than a message may hold"));
}

TEST(EmbeddingTest, TablesBeyondWhatFloat32IdsReachAreRefused) {
  // Ids travel as float32, exact only up to 2^24: id 2^24 + 1 would read as 2^24.
  auto model = Model::Create(ParseModel("layer { embedding { num_embeddings: 16777217 embedding_dim: 1 } } "
                                        "layer { linear { out_features: 10 } }"),
                             Shape{1}, 10);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr("num_embeddings must be <= 16777216"));
  auto largest = Model::Create(ParseModel("layer { embedding { num_embeddings: 16777216 embedding_dim: 1 } } "
                                          "layer { linear { out_features: 10 } }"),
                               Shape{1}, 10);
  EXPECT_TRUE(largest.ok()) << largest.status().ToString();
}

TEST(SparseFrameTest, RandomFramesNeverCrashTheDecoder) {
  std::mt19937 rng(7);
  int accepted = 0, accepted_lists = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const uint64_t keys = 1 + rng() % 64;
    std::string frame;
    if (trial % 2 == 0) {
      // Plausible: a small run count and pairs, then values, with bytes flipped.
      const uint64_t runs = rng() % 4;
      frame.append(reinterpret_cast<const char*>(&runs), sizeof(runs));
      for (uint64_t r = 0; r < runs; ++r) {
        const uint64_t pair[2] = {rng() % (keys + 2), rng() % 5};
        frame.append(reinterpret_cast<const char*>(pair), sizeof(pair));
      }
      frame.append(4 * (rng() % 12), '\x01');
      if (!frame.empty() && rng() % 3 == 0) frame[rng() % frame.size()] ^= static_cast<char>(1 << (rng() % 8));
    } else {
      frame.resize(rng() % 96);
      for (char& c : frame) c = static_cast<char>(rng());
    }
    zmq::message_t message(frame.data(), frame.size());
    auto dense = Dense(message, keys);
    if (dense.ok()) {
      ++accepted;
      EXPECT_EQ(dense->size(), keys);
    } else {
      EXPECT_EQ(dense.status().code(), StatusCode::kDataLoss);
    }
    // The same bytes as a pull's run list: accepted only when they hold no values.
    auto runs = ParseRunList(message, keys);
    if (runs.ok()) {
      ++accepted_lists;
      EXPECT_EQ(frame.size(), 8 + 16 * runs->size());
      for (const KeyRange& r : *runs) EXPECT_TRUE(r.begin < r.end && r.end <= keys);
    } else {
      EXPECT_EQ(runs.status().code(), StatusCode::kDataLoss);
    }
  }
  EXPECT_GT(accepted, 100) << "the plausible frames should often be well formed";
  EXPECT_GT(accepted_lists, 10);
}

}  // namespace
}  // namespace tessera
