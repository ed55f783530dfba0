// The main of every test binary: GoogleTest's, plus one guard.
//
// When a fixture's SetUpTestSuite fails (a fatal assertion: the cluster it
// trains did not run, say), GoogleTest skips the suite's tests, and ctest,
// which takes a "[  SKIPPED ]" line for a skip whatever the exit code,
// reported the suite as skipped rather than failed: a broken feature hid
// behind it once. The guard fails each such test instead, so ctest sees it.
// A test that skips itself (GTEST_SKIP: no GPU, no data) still skips.
#include <gtest/gtest.h>

namespace {

class SuiteSetUpGuard : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& /*test*/) override {
    const ::testing::TestSuite* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
    if (suite != nullptr && suite->ad_hoc_test_result().Failed()) {
      ADD_FAILURE() << "this test suite's SetUpTestSuite failed (above), so its tests cannot run";
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new SuiteSetUpGuard);  // GoogleTest owns it
  return RUN_ALL_TESTS();
}
