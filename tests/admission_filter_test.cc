// Admission of a sparse table's ids by a count-min sketch (server/admission_filter.h).
#include "server/admission_filter.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

TEST(AdmissionFilterTest, CountsSightingsAndNeverUndercounts) {
  AdmissionFilter filter(12);
  EXPECT_EQ(filter.Count(42), 0u);
  EXPECT_EQ(filter.See(42), 1u);
  EXPECT_EQ(filter.See(42), 2u);
  EXPECT_EQ(filter.Count(42), 2u);
  // 20,000 ids in 4 x 4096 counters: collisions, but no count below the truth.
  std::vector<uint32_t> truth(20000, 0);
  for (uint64_t k = 0; k < 60000; ++k) {
    const uint64_t id = (k * k) % 20000;
    ++truth[id];
    filter.See(id + 1000000);
  }
  int exact = 0;
  for (uint64_t id = 0; id < 20000; ++id) {
    EXPECT_GE(filter.Count(id + 1000000), truth[id]) << id;
    exact += filter.Count(id + 1000000) == truth[id];
  }
  EXPECT_GT(exact, 20000 / 2);  // conservative update keeps most counts exact
}

TEST(AdmissionFilterTest, SaturatesInsteadOfWrapping) {
  AdmissionFilter filter(4);
  for (uint32_t i = 0; i < AdmissionFilter::kMaxCount + 10; ++i) filter.See(7);
  EXPECT_EQ(filter.Count(7), AdmissionFilter::kMaxCount);
}

TEST(AdmissionFilterTest, BytesRoundTripAndBadBytesAreRefused) {
  AdmissionFilter filter(5);
  for (uint64_t id = 0; id < 100; ++id) filter.See(id % 13);
  const std::string bytes = filter.Serialize();
  EXPECT_EQ(bytes.size(), 3u + 2 * 4 * 32);
  auto parsed = AdmissionFilter::Parse(bytes);
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->Serialize(), bytes);
  for (uint64_t id = 0; id < 13; ++id) EXPECT_EQ(parsed->Count(id), filter.Count(id));
  EXPECT_EQ(AdmissionFilter::Parse(bytes.substr(0, bytes.size() - 1)).status().message(),
            "admission filter: 258 bytes, expected 259");
  std::string wide = bytes;
  wide[2] = 40;
  EXPECT_EQ(AdmissionFilter::Parse(wide).status().message(), "admission filter: width 2^40 outside [2^4, 2^30]");
  EXPECT_EQ(AdmissionFilter::Parse("").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
