// Helpers for checking layers' gradients against central differences, shared
// by the CPU and CUDA layer tests.
#ifndef TESSERA_TESTS_GRADIENT_CHECK_H_
#define TESSERA_TESTS_GRADIENT_CHECK_H_

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tessera {

// The step of the central differences.
inline constexpr float kGradientEps = 1e-3f;

inline std::vector<float> RandomVector(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Distinct values at least 0.01 apart, shuffled: no max-pool window holds a
// near tie, so central differences never cross an argmax change.
inline std::vector<float> DistinctVector(std::mt19937& rng, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>(i) - 0.005f * static_cast<float>(n);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

// L = sum(y .* r): dL/dy = r.
inline double Weighted(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

// Central difference of f with respect to *x.
inline double Numeric(float* x, const std::function<double()>& f) {
  const float saved = *x;
  *x = saved + kGradientEps;
  const double plus = f();
  *x = saved - kGradientEps;
  const double minus = f();
  *x = saved;
  return (plus - minus) / (2.0 * static_cast<double>(kGradientEps));
}

// Within 1e-2 relative, with an absolute floor of 2e-3 for gradients near zero.
inline void ExpectGradNear(double analytic, double numeric, const std::string& what) {
  EXPECT_NEAR(analytic, numeric, 1e-2 * std::max(std::fabs(analytic), std::fabs(numeric)) + 2e-3) << what;
}

}  // namespace tessera

#endif  // TESSERA_TESTS_GRADIENT_CHECK_H_
