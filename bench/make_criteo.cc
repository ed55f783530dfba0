// make_criteo: writes click logs in the Criteo layout from a planted model,
// so that the AUC a model can reach on them is known before training
// (issue 16's data; tests and benchmarks of sparse models):
//
//   build/bench/make_criteo --rows 1000000 --seed 1 --out train.tsv.gz
//   build/bench/make_criteo --rows 100000 --seed 1 --rows_seed 1 --out test.tsv.gz
//
// The layout is Criteo's Display Advertising Challenge's: no header; each
// line a label (0 or 1), 13 integer fields (I1-I13) and 26 categorical
// fields (C1-C26), tab-separated; an empty field is a missing value;
// categorical values are 8 lowercase hex digits. A name ending in .gz is
// written gzip'd.
//
// The planted model (everything derived from --seed by hashing, so the same
// seed always means the same model, whatever the rows):
//   * categorical field f (0-based) takes values of rank 1..V_f, V_f = max(8,
//     vocab / 4^(f mod 6)) (the first field --vocab values, the sixth about
//     a thousandth of them), drawn from a bounded power law of exponent
//     --zipf (rank r with probability about r^-zipf: a few ids are most of
//     the traffic, as in real logs); missing with probability
//     {0, 0.02, 0.1, 0.3}[f mod 4]. A value is written as the 8 hex digits
//     of a 32-bit hash of (seed, f, rank) — two ranks can share one, as in
//     the real data — and weighs w_f(value) ~ N(0, 0.3^2), from a hash of
//     (seed, f, value); a missing value weighs its field's own w_f(missing).
//   * integer field i is floor(exp(m_i + 1.2 z)) - 1, z ~ N(0, 1), m_i =
//     i mod 5, missing with probability 0.15 when i mod 3 == 2; it adds
//     u_i * (log(1 + x) - m_i), u_i ~ N(0, 0.25^2); missing adds 0.
//   * four crosses, (C1,C2), (C3,C9), (C5,C14), (C7,C20), add w(pair, a, b)
//     ~ N(0, 0.5^2) by a hash of both values: signal that no model of the
//     fields one at a time can find.
//   * logit = -1.6 + the sum of the above; label ~ Bernoulli(sigmoid(logit)).
// The labels' own probabilities are the best any model can do on these
// features, so the program prints, over the rows it wrote, their AUC and
// log loss (exact: core/task_metrics.h's BinaryMetrics): the achievable
// figures. The same --seed with another --rows_seed gives other rows of the
// same model: a test set.
//
// The file is written to OUT.tmp.PID and renamed to OUT when complete.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/task_metrics.h"

DEFINE_int64(rows, 100000, "rows to write");
DEFINE_uint64(seed, 1, "the planted model's seed");
DEFINE_uint64(rows_seed, 0, "the rows' seed: the same --seed with another --rows_seed is a test set");
DEFINE_int64(vocab, 1000000, "distinct values of the largest categorical field (C1, C7, C13, ...)");
DEFINE_double(zipf, 1.05, "exponent of the categorical values' power law (> 0, not 1)");
DEFINE_string(out, "", "the file to write (required); gzip'd when it ends in .gz");

namespace {

using tessera::MixSeed;
using tessera::SplitMix64;

constexpr int kIntegerFields = 13;
constexpr int kCategoricalFields = 26;
constexpr double kBias = -1.6;
constexpr double kCategoricalStd = 0.3;
constexpr double kIntegerStd = 0.25;
constexpr double kCrossStd = 0.5;
constexpr double kMissingRate[4] = {0, 0.02, 0.1, 0.3};
constexpr std::array<std::array<int, 2>, 4> kCrosses = {{{0, 1}, {2, 8}, {4, 13}, {6, 19}}};
// A missing value's key in the hashes: outside the 32-bit values.
constexpr uint64_t kMissing = uint64_t{1} << 32;
// Domains of the model's hashes, so that no two draw the same numbers.
enum Domain : uint64_t { kValue = 1000, kValueWeight = 2000, kIntegerWeight = 4000, kCrossWeight = 5000, kRows = 7 };

// N(0, 1) from one 64-bit hash (Box-Muller on its two halves).
double Gaussian(uint64_t hash) {
  const double u1 = (static_cast<double>(hash >> 32) + 0.5) / 4294967296.0;
  const double u2 = (static_cast<double>(hash & 0xffffffffu) + 0.5) / 4294967296.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// N(0, 1) from the row generator.
double NextGaussian(SplitMix64* rng) { return Gaussian(rng->Next()); }

// Uniform in (0, 1) with 53 random bits.
double NextUniform(SplitMix64* rng) { return (static_cast<double>(rng->Next() >> 11) + 0.5) / 9007199254740992.0; }

int64_t Vocabulary(int field) { return std::max<int64_t>(8, FLAGS_vocab >> (2 * (field % 6))); }

// A rank in [1, n] with probability about r^-s: the inverse of the bounded
// power law's distribution function, rounded down.
int64_t PowerLawRank(int64_t n, double s, SplitMix64* rng) {
  const double u = NextUniform(rng);
  const double a = 1.0 - s;
  const double r = std::pow(1.0 + u * (std::pow(static_cast<double>(n) + 1.0, a) - 1.0), 1.0 / a);
  return std::clamp<int64_t>(static_cast<int64_t>(r), 1, n);
}

// One row: the fields as written (categorical: 32-bit values or kMissing;
// integers: -1 for missing) and the planted probability of a click.
struct Row {
  std::array<int64_t, kIntegerFields> integers;
  std::array<uint64_t, kCategoricalFields> values;
  double probability = 0;
};

Row DrawRow(uint64_t seed, SplitMix64* rng) {
  Row row;
  double logit = kBias;
  for (int i = 0; i < kIntegerFields; ++i) {
    const double m = i % 5;
    const double z = NextGaussian(rng);
    if (i % 3 == 2 && NextUniform(rng) < 0.15) {
      row.integers[i] = -1;
      continue;
    }
    const int64_t x = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::exp(m + 1.2 * z))) - 1);
    row.integers[i] = x;
    logit += kIntegerStd * Gaussian(MixSeed(seed, kIntegerWeight + i)) * (std::log1p(static_cast<double>(x)) - m);
  }
  for (int f = 0; f < kCategoricalFields; ++f) {
    const int64_t rank = PowerLawRank(Vocabulary(f), FLAGS_zipf, rng);
    const bool missing = NextUniform(rng) < kMissingRate[f % 4];
    row.values[f] = missing ? kMissing : (MixSeed(seed, kValue + f, rank) & 0xffffffffu);
    logit += kCategoricalStd * Gaussian(MixSeed(seed, kValueWeight + f, row.values[f]));
  }
  for (size_t k = 0; k < kCrosses.size(); ++k) {
    const uint64_t a = row.values[kCrosses[k][0]], b = row.values[kCrosses[k][1]];
    logit += kCrossStd * Gaussian(MixSeed(MixSeed(seed, kCrossWeight + k), a, b));
  }
  row.probability = 1.0 / (1.0 + std::exp(-logit));
  return row;
}

// Appends the row's line, label first.
void AppendLine(const Row& row, int label, std::string* line) {
  line->clear();
  *line += static_cast<char>('0' + label);
  for (const int64_t x : row.integers) {
    *line += '\t';
    if (x >= 0) *line += std::to_string(x);
  }
  for (const uint64_t v : row.values) {
    *line += '\t';
    if (v == kMissing) continue;
    char hex[9];
    std::snprintf(hex, sizeof(hex), "%08llx", static_cast<unsigned long long>(v));
    *line += hex;
  }
  *line += '\n';
}

bool FlagsValid() {
  if (FLAGS_out.empty()) return std::fprintf(stderr, "make_criteo: --out is required\n"), false;
  if (FLAGS_rows < 0 || FLAGS_vocab < 8 || FLAGS_vocab > (int64_t{1} << 40) || !(FLAGS_zipf > 0) ||
      std::abs(FLAGS_zipf - 1.0) < 1e-9) {
    std::fprintf(stderr, "make_criteo: expected --rows >= 0, --vocab in [8, 2^40] and --zipf > 0, not 1\n");
    return false;
  }
  return true;
}

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("make_criteo --rows N --seed S [--rows_seed R] [--vocab V] [--zipf Z] --out PATH[.gz]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (!FlagsValid()) return 2;
  const auto start = std::chrono::steady_clock::now();
  const std::string temp = FLAGS_out + ".tmp." + std::to_string(getpid());
  // zlib writes plain files too ("wT": transparent), through the same calls.
  gzFile file = gzopen(temp.c_str(), EndsWith(FLAGS_out, ".gz") ? "wb6" : "wbT");
  if (file == nullptr) {
    std::fprintf(stderr, "make_criteo: cannot create %s: %s\n", temp.c_str(), std::strerror(errno));
    return 1;
  }
  gzbuffer(file, 1u << 20);
  SplitMix64 rng(MixSeed(FLAGS_seed, kRows, FLAGS_rows_seed));
  tessera::BinaryMetrics planted;
  std::string line;
  bool ok = true;
  for (int64_t r = 0; r < FLAGS_rows && ok; ++r) {
    const Row row = DrawRow(FLAGS_seed, &rng);
    const int label = NextUniform(&rng) < row.probability ? 1 : 0;
    AppendLine(row, label, &line);
    ok = gzwrite(file, line.data(), static_cast<unsigned>(line.size())) == static_cast<int>(line.size());
    ok = ok && planted.Add(label, row.probability).ok();
  }
  ok = gzclose(file) == Z_OK && ok;
  if (!ok || rename(temp.c_str(), FLAGS_out.c_str()) != 0) {
    std::fprintf(stderr, "make_criteo: cannot write %s: %s\n", FLAGS_out.c_str(), std::strerror(errno));
    unlink(temp.c_str());
    return 1;
  }
  const tessera::BinaryResult best = planted.Result();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %lld rows, %.4f clicks, in %.1f s; the planted model: AUC %.4f, log loss %.4f\n",
              FLAGS_out.c_str(), static_cast<long long>(FLAGS_rows),
              best.examples > 0 ? static_cast<double>(best.positives) / static_cast<double>(best.examples) : 0.0,
              seconds, best.auc, best.log_loss);
  return 0;
}
