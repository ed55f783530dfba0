#include "core/task_metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <tuple>

namespace tessera {
namespace {

static_assert(std::endian::native == std::endian::little, "task metrics bytes are little-endian");

constexpr uint8_t kFormatVersion = 1;
constexpr char kClassificationTag = 'C';
constexpr char kBinaryTag = 'B';
constexpr char kRegressionTag = 'R';

// Bytes on the wire of one example after the count.
constexpr size_t kBinaryExampleBytes = sizeof(double) + sizeof(uint8_t);
constexpr size_t kRegressionExampleBytes = 2 * sizeof(double);

template <typename T>
void AppendValue(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

std::string Header(char tag) {
  std::string out;
  out.push_back(tag);
  out.push_back(static_cast<char>(kFormatVersion));
  return out;
}

// Reads little-endian values off the front of a byte string; every read
// checks that the bytes are there.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : rest_(bytes) {}

  size_t remaining() const { return rest_.size(); }

  template <typename T>
  bool Read(T* value) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }

 private:
  std::string_view rest_;
};

// Reads the tag and version that start every layout.
Status ReadHeader(char tag, const char* what, ByteReader* reader) {
  char found_tag = 0;
  uint8_t version = 0;
  if (!reader->Read(&found_tag) || !reader->Read(&version)) {
    return InvalidArgumentError(std::string(what) + " bytes: truncated header");
  }
  if (found_tag != tag) {
    return InvalidArgumentError(std::string(what) + " bytes: tag " + std::to_string(static_cast<uint8_t>(found_tag)) +
                                ", expected '" + tag + "'");
  }
  if (version != kFormatVersion) {
    return InvalidArgumentError(std::string(what) + " bytes: format version " + std::to_string(version) +
                                ", expected " + std::to_string(kFormatVersion));
  }
  return OkStatus();
}

// Reads the example count of a binary or regression layout and checks that
// exactly that many examples of `example_bytes` each follow, and that it is
// within kMaxMetricExamples, before anything is allocated for them.
StatusOr<uint64_t> ReadExampleCount(const char* what, size_t example_bytes, ByteReader* reader) {
  uint64_t count = 0;
  if (!reader->Read(&count)) return InvalidArgumentError(std::string(what) + " bytes: truncated count");
  if (count > static_cast<uint64_t>(kMaxMetricExamples)) {
    return InvalidArgumentError(std::string(what) + " bytes: " + std::to_string(count) + " examples, more than " +
                                std::to_string(kMaxMetricExamples));
  }
  const size_t remaining = reader->remaining();
  if (remaining % example_bytes != 0 || count != remaining / example_bytes) {
    return InvalidArgumentError(std::string(what) + " bytes: " + std::to_string(count) + " examples need " +
                                std::to_string(count) + " x " + std::to_string(example_bytes) + " bytes, found " +
                                std::to_string(remaining));
  }
  return count;
}

Status CheckRoomFor(int64_t held, int64_t more) {
  if (more > kMaxMetricExamples - held) {
    return OutOfRangeError("task metrics: " + std::to_string(held) + " + " + std::to_string(more) +
                           " examples is more than " + std::to_string(kMaxMetricExamples));
  }
  return OkStatus();
}

// -0.0 becomes 0.0, so that examples equal under the sort order are equal
// bit for bit (and serialize the same).
double WithoutNegativeZero(double value) { return value == 0 ? 0.0 : value; }

double Ratio(int64_t numerator, int64_t denominator) {
  return denominator == 0 ? 0.0 : static_cast<double>(numerator) / static_cast<double>(denominator);
}

}  // namespace

// ---------------------------------------------------------------------------
// ClassificationMetrics

int64_t PredictedClass(std::span<const float> logits) {
  CHECK(!logits.empty()) << "PredictedClass of an empty logits row";
  int64_t best = -1;
  for (size_t c = 0; c < logits.size(); ++c) {
    if (std::isnan(logits[c])) continue;
    // Strictly greater: a tie keeps the lower index.
    if (best < 0 || logits[c] > logits[best]) best = static_cast<int64_t>(c);
  }
  return best < 0 ? 0 : best;
}

ClassificationMetrics::ClassificationMetrics(int64_t num_classes) : num_classes_(num_classes) {
  CHECK(num_classes >= 1 && num_classes <= kMaxClasses) << "ClassificationMetrics of " << num_classes << " classes";
  confusion_.assign(static_cast<size_t>(num_classes * num_classes), 0);
}

int64_t& ClassificationMetrics::Cell(int64_t true_class, int64_t predicted_class) {
  return confusion_[static_cast<size_t>(true_class * num_classes_ + predicted_class)];
}

int64_t ClassificationMetrics::Cell(int64_t true_class, int64_t predicted_class) const {
  return confusion_[static_cast<size_t>(true_class * num_classes_ + predicted_class)];
}

Status ClassificationMetrics::Add(int64_t true_class, int64_t predicted_class) {
  for (const int64_t c : {true_class, predicted_class}) {
    if (c < 0 || c >= num_classes_) {
      return InvalidArgumentError("classification metrics: class " + std::to_string(c) + " outside [0, " +
                                  std::to_string(num_classes_) + ")");
    }
  }
  RETURN_IF_ERROR(CheckRoomFor(examples_, 1));
  ++Cell(true_class, predicted_class);
  ++examples_;
  return OkStatus();
}

Status ClassificationMetrics::AddLogits(int64_t true_class, std::span<const float> logits) {
  if (static_cast<int64_t>(logits.size()) != num_classes_) {
    return InvalidArgumentError("classification metrics: " + std::to_string(logits.size()) + " logits for " +
                                std::to_string(num_classes_) + " classes");
  }
  return Add(true_class, PredictedClass(logits));
}

Status ClassificationMetrics::Merge(const ClassificationMetrics& other) {
  if (other.num_classes_ != num_classes_) {
    return InvalidArgumentError("classification metrics: merging " + std::to_string(other.num_classes_) +
                                " classes into " + std::to_string(num_classes_));
  }
  RETURN_IF_ERROR(CheckRoomFor(examples_, other.examples_));
  for (size_t i = 0; i < confusion_.size(); ++i) confusion_[i] += other.confusion_[i];
  examples_ += other.examples_;
  return OkStatus();
}

ClassificationResult ClassificationMetrics::Result() const {
  const int64_t k = num_classes_;
  ClassificationResult r;
  r.num_classes = k;
  r.examples = examples_;
  r.confusion.assign(k, std::vector<int64_t>(k, 0));
  std::vector<int64_t> predicted(k, 0);  // column sums: tp + fp
  for (int64_t t = 0; t < k; ++t) {
    for (int64_t p = 0; p < k; ++p) {
      r.confusion[t][p] = Cell(t, p);
      predicted[p] += Cell(t, p);
    }
  }
  r.support.assign(k, 0);  // row sums: tp + fn
  for (int64_t t = 0; t < k; ++t) {
    for (int64_t p = 0; p < k; ++p) r.support[t] += Cell(t, p);
  }

  double f1_sum = 0;
  int64_t classes_seen = 0;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t tp = Cell(c, c);
    const int64_t fp = predicted[c] - tp;
    const int64_t fn = r.support[c] - tp;
    r.correct += tp;
    r.precision.push_back(Ratio(tp, tp + fp));
    r.recall.push_back(Ratio(tp, tp + fn));
    r.f1.push_back(Ratio(2 * tp, 2 * tp + fp + fn));
    if (tp + fp + fn > 0) {
      f1_sum += r.f1.back();
      ++classes_seen;
    }
  }
  r.accuracy = Ratio(r.correct, r.examples);
  r.macro_f1 = classes_seen == 0 ? 0.0 : f1_sum / static_cast<double>(classes_seen);
  return r;
}

std::string ClassificationMetrics::Serialize() const {
  std::string out = Header(kClassificationTag);
  AppendValue(static_cast<uint32_t>(num_classes_), &out);
  for (const int64_t count : confusion_) AppendValue(count, &out);
  return out;
}

StatusOr<ClassificationMetrics> ClassificationMetrics::Parse(std::string_view bytes) {
  const char* what = "classification metrics";
  ByteReader reader(bytes);
  RETURN_IF_ERROR(ReadHeader(kClassificationTag, what, &reader));
  uint32_t num_classes = 0;
  if (!reader.Read(&num_classes)) return InvalidArgumentError("classification metrics bytes: truncated class count");
  if (num_classes < 1 || num_classes > kMaxClasses) {
    return InvalidArgumentError("classification metrics bytes: " + std::to_string(num_classes) +
                                " classes, expected 1 to " + std::to_string(kMaxClasses));
  }
  const size_t cells = size_t{num_classes} * num_classes;
  if (reader.remaining() != cells * sizeof(int64_t)) {
    return InvalidArgumentError("classification metrics bytes: " + std::to_string(num_classes) + " classes need " +
                                std::to_string(cells * sizeof(int64_t)) + " bytes of counts, found " +
                                std::to_string(reader.remaining()));
  }
  ClassificationMetrics metrics(num_classes);
  for (size_t i = 0; i < cells; ++i) {
    int64_t count = 0;
    reader.Read(&count);  // the size check above guarantees the bytes
    if (count < 0 || count > kMaxMetricExamples - metrics.examples_) {
      return InvalidArgumentError("classification metrics bytes: count " + std::to_string(count) + " at cell " +
                                  std::to_string(i) + " is negative or takes the total past " +
                                  std::to_string(kMaxMetricExamples));
    }
    metrics.confusion_[i] = count;
    metrics.examples_ += count;
  }
  return metrics;
}

// ---------------------------------------------------------------------------
// BinaryMetrics

namespace {

using ScoredLabel = BinaryMetrics::Example;

bool ByProbabilityThenLabel(const ScoredLabel& a, const ScoredLabel& b) {
  return std::tie(a.probability, a.label) < std::tie(b.probability, b.label);
}

// Twice the Mann-Whitney U over examples sorted by probability: for each
// positive, 2 per negative scored lower and 1 per negative scored the same.
// At most 2 * positives * negatives <= 2^63, which a uint64 holds.
uint64_t TwiceMannWhitneyU(const std::vector<ScoredLabel>& sorted) {
  uint64_t twice_u = 0;
  uint64_t negatives_below = 0;
  size_t i = 0;
  while (i < sorted.size()) {
    uint64_t tied_positives = 0;
    uint64_t tied_negatives = 0;
    size_t j = i;
    for (; j < sorted.size() && sorted[j].probability == sorted[i].probability; ++j) {
      if (sorted[j].label == 1) {
        ++tied_positives;
      } else {
        ++tied_negatives;
      }
    }
    twice_u += tied_positives * (2 * negatives_below + tied_negatives);
    negatives_below += tied_negatives;
    i = j;
  }
  return twice_u;
}

double ClampedLogLoss(const ScoredLabel& example) {
  const double p = std::clamp(example.probability, kLogLossEpsilon, 1 - kLogLossEpsilon);
  return example.label == 1 ? -std::log(p) : -std::log1p(-p);
}

}  // namespace

Status BinaryMetrics::Add(int64_t label, double probability) {
  if (label != 0 && label != 1) {
    return InvalidArgumentError("binary metrics: label " + std::to_string(label) + ", expected 0 or 1");
  }
  if (!(probability >= 0 && probability <= 1)) {  // NaN fails both
    return InvalidArgumentError("binary metrics: probability " + std::to_string(probability) + " outside [0, 1]");
  }
  RETURN_IF_ERROR(CheckRoomFor(examples(), 1));
  examples_.push_back({WithoutNegativeZero(probability), static_cast<uint8_t>(label)});
  return OkStatus();
}

Status BinaryMetrics::Merge(const BinaryMetrics& other) {
  CHECK(&other != this) << "BinaryMetrics merged into itself";
  RETURN_IF_ERROR(CheckRoomFor(examples(), other.examples()));
  examples_.insert(examples_.end(), other.examples_.begin(), other.examples_.end());
  return OkStatus();
}

BinaryResult BinaryMetrics::Result() const {
  std::vector<ScoredLabel> sorted = examples_;
  std::sort(sorted.begin(), sorted.end(), ByProbabilityThenLabel);

  BinaryResult r;
  r.examples = examples();
  double log_loss_sum = 0;
  for (const ScoredLabel& e : sorted) {
    if (e.label == 1) {
      ++r.positives;
    } else {
      ++r.negatives;
    }
    const int predicted = e.probability > 0.5 ? 1 : 0;
    if (predicted == e.label) ++r.correct;
    log_loss_sum += ClampedLogLoss(e);
  }
  r.accuracy = Ratio(r.correct, r.examples);
  r.log_loss = r.examples == 0 ? 0.0 : log_loss_sum / static_cast<double>(r.examples);
  r.auc_defined = r.positives > 0 && r.negatives > 0;
  if (r.auc_defined) {
    const double pairs = static_cast<double>(r.positives) * static_cast<double>(r.negatives);
    r.auc = static_cast<double>(TwiceMannWhitneyU(sorted)) / (2 * pairs);
  }
  return r;
}

std::string BinaryMetrics::Serialize() const {
  std::string out = Header(kBinaryTag);
  out.reserve(out.size() + sizeof(uint64_t) + examples_.size() * kBinaryExampleBytes);
  AppendValue(static_cast<uint64_t>(examples_.size()), &out);
  for (const Example& e : examples_) {
    AppendValue(e.probability, &out);
    AppendValue(e.label, &out);
  }
  return out;
}

StatusOr<BinaryMetrics> BinaryMetrics::Parse(std::string_view bytes) {
  const char* what = "binary metrics";
  ByteReader reader(bytes);
  RETURN_IF_ERROR(ReadHeader(kBinaryTag, what, &reader));
  ASSIGN_OR_RETURN(const uint64_t count, ReadExampleCount(what, kBinaryExampleBytes, &reader));
  BinaryMetrics metrics;
  metrics.examples_.reserve(count);  // checked against the bytes present
  for (uint64_t i = 0; i < count; ++i) {
    double probability = 0;
    uint8_t label = 0;
    reader.Read(&probability);  // the count check guarantees the bytes
    reader.Read(&label);
    RETURN_IF_ERROR(metrics.Add(label, probability).WithContext("binary metrics bytes: example " + std::to_string(i)));
  }
  return metrics;
}

// ---------------------------------------------------------------------------
// RegressionMetrics

namespace {

using TargetPrediction = RegressionMetrics::Example;

bool ByTargetThenPrediction(const TargetPrediction& a, const TargetPrediction& b) {
  return std::tie(a.target, a.prediction) < std::tie(b.target, b.prediction);
}

}  // namespace

Status RegressionMetrics::Add(double target, double prediction) {
  if (!std::isfinite(target) || !std::isfinite(prediction)) {
    return InvalidArgumentError("regression metrics: target " + std::to_string(target) + " and prediction " +
                                std::to_string(prediction) + " must be finite");
  }
  RETURN_IF_ERROR(CheckRoomFor(examples(), 1));
  examples_.push_back({WithoutNegativeZero(target), WithoutNegativeZero(prediction)});
  return OkStatus();
}

Status RegressionMetrics::Merge(const RegressionMetrics& other) {
  CHECK(&other != this) << "RegressionMetrics merged into itself";
  RETURN_IF_ERROR(CheckRoomFor(examples(), other.examples()));
  examples_.insert(examples_.end(), other.examples_.begin(), other.examples_.end());
  return OkStatus();
}

RegressionResult RegressionMetrics::Result() const {
  RegressionResult r;
  r.examples = examples();
  if (examples_.empty()) return r;
  std::vector<TargetPrediction> sorted = examples_;
  std::sort(sorted.begin(), sorted.end(), ByTargetThenPrediction);

  const double n = static_cast<double>(sorted.size());
  double squared_error_sum = 0;
  double absolute_error_sum = 0;
  double target_sum = 0;
  for (const TargetPrediction& e : sorted) {
    const double error = e.prediction - e.target;
    squared_error_sum += error * error;
    absolute_error_sum += std::abs(error);
    target_sum += e.target;
  }
  r.rmse = std::sqrt(squared_error_sum / n);
  r.mae = absolute_error_sum / n;

  // Two passes: the spread around the mean, not sum(y^2) - n mean^2, which
  // cancels badly.
  const double mean = target_sum / n;
  double spread_sum = 0;
  for (const TargetPrediction& e : sorted) spread_sum += (e.target - mean) * (e.target - mean);
  const bool targets_differ = sorted.front().target != sorted.back().target;
  r.r2_defined = targets_differ && spread_sum > 0;
  if (r.r2_defined) r.r2 = 1 - squared_error_sum / spread_sum;
  return r;
}

std::string RegressionMetrics::Serialize() const {
  std::string out = Header(kRegressionTag);
  out.reserve(out.size() + sizeof(uint64_t) + examples_.size() * kRegressionExampleBytes);
  AppendValue(static_cast<uint64_t>(examples_.size()), &out);
  for (const Example& e : examples_) {
    AppendValue(e.target, &out);
    AppendValue(e.prediction, &out);
  }
  return out;
}

StatusOr<RegressionMetrics> RegressionMetrics::Parse(std::string_view bytes) {
  const char* what = "regression metrics";
  ByteReader reader(bytes);
  RETURN_IF_ERROR(ReadHeader(kRegressionTag, what, &reader));
  ASSIGN_OR_RETURN(const uint64_t count, ReadExampleCount(what, kRegressionExampleBytes, &reader));
  RegressionMetrics metrics;
  metrics.examples_.reserve(count);  // checked against the bytes present
  for (uint64_t i = 0; i < count; ++i) {
    double target = 0;
    double prediction = 0;
    reader.Read(&target);  // the count check guarantees the bytes
    reader.Read(&prediction);
    RETURN_IF_ERROR(
        metrics.Add(target, prediction).WithContext("regression metrics bytes: example " + std::to_string(i)));
  }
  return metrics;
}

// ---------------------------------------------------------------------------
// JSON

namespace {

Status CheckClassNames(const std::vector<std::string>& class_names, int64_t num_classes) {
  if (static_cast<int64_t>(class_names.size()) != num_classes) {
    return InvalidArgumentError("task metrics JSON: " + std::to_string(class_names.size()) + " class names for " +
                                std::to_string(num_classes) + " classes");
  }
  std::set<std::string> seen;
  for (const std::string& name : class_names) {
    if (!seen.insert(name).second) {
      return InvalidArgumentError("task metrics JSON: class name " + JsonQuote(name) + " given twice");
    }
  }
  return OkStatus();
}

}  // namespace

Status AddJsonFields(const ClassificationResult& result, const std::vector<std::string>& class_names,
                     JsonObject* out) {
  RETURN_IF_ERROR(CheckClassNames(class_names, result.num_classes));
  JsonObject per_class;
  JsonObject confusion;
  for (int64_t c = 0; c < result.num_classes; ++c) {
    JsonObject figures;
    figures.Add("precision", result.precision[c])
        .Add("recall", result.recall[c])
        .Add("f1", result.f1[c])
        .Add("support", result.support[c]);
    per_class.Add(class_names[c], figures);
    JsonObject row;
    for (int64_t p = 0; p < result.num_classes; ++p) row.Add(class_names[p], result.confusion[c][p]);
    confusion.Add(class_names[c], row);
  }
  out->Add("examples", result.examples)
      .Add("accuracy", result.accuracy)
      .Add("macro_f1", result.macro_f1)
      .Add("per_class", per_class)
      .Add("confusion", confusion);
  return OkStatus();
}

void AddJsonFields(const BinaryResult& result, JsonObject* out) {
  out->Add("examples", result.examples).Add("positives", result.positives).Add("negatives", result.negatives);
  if (result.auc_defined) {
    out->Add("auc", result.auc);
  } else {
    out->AddNull("auc");
  }
  out->Add("log_loss", result.log_loss).Add("accuracy", result.accuracy);
}

void AddJsonFields(const RegressionResult& result, JsonObject* out) {
  out->Add("examples", result.examples).Add("rmse", result.rmse).Add("mae", result.mae);
  if (result.r2_defined) {
    out->Add("r2", result.r2);
  } else {
    out->AddNull("r2");
  }
}

}  // namespace tessera
