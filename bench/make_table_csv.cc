// make_table_csv: writes a CSV table a model can learn, as large as asked,
// for the table benchmarks (bench/table_stream.sh) and tests
// (tests/table_memory_test.cc):
//
//   build/bench/make_table_csv --rows 1000000 --features 64 --classes 10 --seed 1 --out train.csv
//
// The header is `label,f0,...,f{F-1}`; each row is a class id, then F
// features drawn uniformly from {-1.000, -0.999, ..., 1.000} (written with
// three decimals, so the file holds exactly the values the label was
// computed from). The label comes from a planted model: a random linear map
// W (C x F, fixed by --seed) scores each class, a little uniform noise is
// added to each score (--noise, against scores of standard deviation about
// 1), and the label is the class with the highest score. A linear layer can
// therefore learn it to near --noise's limit. The same --seed with another
// --rows_seed gives other rows of the same model: a test set.
//
// The file is written to OUT.tmp.PID and renamed to OUT when complete, so a
// cut-off run never leaves a partial file under OUT (nor is it synced: a
// file lost in a crash is regenerated). Prints the rows and bytes written.
#include <fcntl.h>
#include <gflags/gflags.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"

DEFINE_int64(rows, 100000, "data rows (the header not counted)");
DEFINE_int32(features, 64, "numeric feature columns, f0 ... f{N-1}");
DEFINE_int32(classes, 10, "classes of the label column, 0 ... N-1 (at most 256)");
DEFINE_uint64(seed, 1, "the planted model's seed");
DEFINE_uint64(rows_seed, 0, "the rows' seed: the same --seed with another --rows_seed is a test set");
DEFINE_double(noise, 0.1, "half-width of the uniform noise added to each class's score (scores have std about 1)");
DEFINE_string(out, "", "the CSV file to write (required)");

namespace {

using tessera::SplitMix64;

constexpr size_t kBufferBytes = size_t{8} << 20;
constexpr int kFeatureSteps = 1000;  // a feature is k / 1000 for k in [-1000, 1000]

// Scores class c of features x as weights[c * features + f] . x.
struct PlantedModel {
  int features = 0, classes = 0;
  std::vector<double> weights;
};

// Weights uniform in [-1, 1), scaled by 3 / sqrt(F) so that a score over
// features uniform in [-1, 1] has a standard deviation of about 1.
PlantedModel MakePlantedModel(uint64_t seed, int features, int classes) {
  PlantedModel model{features, classes, std::vector<double>(static_cast<size_t>(features) * classes)};
  SplitMix64 rng(tessera::MixSeed(seed, /*b=*/1));
  const double scale = 3.0 / std::sqrt(static_cast<double>(features));
  for (double& w : model.weights) w = (2.0 * rng.NextFloat() - 1.0) * scale;
  return model;
}

// The class with the highest score plus noise in [-noise, noise).
int Label(const PlantedModel& model, const std::vector<double>& x, double noise, SplitMix64* rng) {
  int best = 0;
  double best_score = -INFINITY;
  for (int c = 0; c < model.classes; ++c) {
    const double* w = model.weights.data() + static_cast<size_t>(c) * model.features;
    double score = (2.0 * rng->NextFloat() - 1.0) * noise;
    for (int f = 0; f < model.features; ++f) score += w[f] * x[f];
    if (score > best_score) {
      best = c;
      best_score = score;
    }
  }
  return best;
}

// Writes through a large buffer to a file descriptor; the first error sticks.
class BufferedWriter {
 public:
  explicit BufferedWriter(int fd) : fd_(fd), buffer_(kBufferBytes) {}
  // Room for at least `bytes` more at end(). REQUIRES: bytes <= kBufferBytes.
  char* Reserve(size_t bytes) {
    if (buffer_.size() - used_ < bytes) Flush();
    return buffer_.data() + used_;
  }
  char* limit() { return buffer_.data() + buffer_.size(); }
  void Commit(char* end) { used_ = static_cast<size_t>(end - buffer_.data()); }
  void Append(std::string_view s) {
    char* p = Reserve(s.size());
    std::memcpy(p, s.data(), s.size());
    Commit(p + s.size());
  }
  void Flush() {
    size_t done = 0;
    while (done < used_ && error_ == 0) {
      const ssize_t n = write(fd_, buffer_.data() + done, used_ - done);
      if (n < 0 && errno != EINTR) error_ = errno;
      if (n > 0) done += static_cast<size_t>(n);
    }
    written_ += done;
    used_ = 0;
  }
  int error() const { return error_; }
  uint64_t written() const { return written_; }

 private:
  int fd_;
  std::vector<char> buffer_;
  size_t used_ = 0;
  uint64_t written_ = 0;
  int error_ = 0;
};

std::string Header(int features) {
  std::string header = "label";
  for (int f = 0; f < features; ++f) header += ",f" + std::to_string(f);
  return header + "\n";
}

// The most bytes one row takes: "255" and ",-1.000" per feature, "\n".
size_t MaxRowBytes(int features) { return 3 + 7 * static_cast<size_t>(features) + 1; }

// Draws one row's features into x and writes the row (label first).
void WriteRow(const PlantedModel& model, double noise, SplitMix64* rng, std::vector<double>* x, BufferedWriter* out) {
  for (double& v : *x) {
    v = static_cast<double>(static_cast<int>(rng->NextBelow(2 * kFeatureSteps + 1)) - kFeatureSteps) / kFeatureSteps;
  }
  const int label = Label(model, *x, noise, rng);
  char* p = out->Reserve(MaxRowBytes(model.features));
  char* const limit = out->limit();
  p = std::to_chars(p, limit, label).ptr;
  for (const double v : *x) {
    *p++ = ',';
    p = std::to_chars(p, limit, v, std::chars_format::fixed, 3).ptr;
  }
  *p++ = '\n';
  out->Commit(p);
}

bool FlagsValid() {
  if (FLAGS_out.empty()) return std::fprintf(stderr, "make_table_csv: --out is required\n"), false;
  if (FLAGS_rows < 0 || FLAGS_features < 1 || FLAGS_features > 100000 || FLAGS_classes < 1 || FLAGS_classes > 256 ||
      !(FLAGS_noise >= 0)) {
    std::fprintf(stderr,
                 "make_table_csv: expected --rows >= 0, --features in [1, 100000], --classes in [1, 256] and "
                 "--noise >= 0\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("make_table_csv --rows N --features F --classes C --seed S --out PATH");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (!FlagsValid()) return 2;
  const auto start = std::chrono::steady_clock::now();
  const std::string temp = FLAGS_out + ".tmp." + std::to_string(getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "make_table_csv: cannot create %s: %s\n", temp.c_str(), std::strerror(errno));
    return 1;
  }
  const PlantedModel model = MakePlantedModel(FLAGS_seed, FLAGS_features, FLAGS_classes);
  SplitMix64 rng(tessera::MixSeed(FLAGS_seed, /*b=*/2, FLAGS_rows_seed));
  std::vector<double> x(FLAGS_features);
  BufferedWriter out(fd);
  out.Append(Header(FLAGS_features));
  for (int64_t r = 0; r < FLAGS_rows && out.error() == 0; ++r) WriteRow(model, FLAGS_noise, &rng, &x, &out);
  out.Flush();
  int error = out.error();
  if (close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && rename(temp.c_str(), FLAGS_out.c_str()) != 0) error = errno;
  if (error != 0) {
    std::fprintf(stderr, "make_table_csv: cannot write %s: %s\n", FLAGS_out.c_str(), std::strerror(error));
    unlink(temp.c_str());
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %lld rows, %d features, %d classes, %llu bytes in %.1f s\n", FLAGS_out.c_str(),
              static_cast<long long>(FLAGS_rows), FLAGS_features, FLAGS_classes,
              static_cast<unsigned long long>(out.written()), seconds);
  return 0;
}
