// Evaluation metrics of each task type, computed exactly over a whole
// evaluation set (never sampled), in accumulators that each worker fills for
// the shards it evaluates and the scheduler merges:
//
//   ClassificationMetrics  multi-class: accuracy, per-class precision, recall
//                          and F1, macro-F1, the confusion matrix
//   BinaryMetrics          AUC (Mann-Whitney), log loss, accuracy at 0.5
//   RegressionMetrics      RMSE, MAE, R²
//
// Each has Add (one example), Merge (another accumulator's examples),
// Result (a plain struct), and Serialize/Parse: a compact byte string a
// worker sends to the scheduler. Parse treats its bytes as untrusted: it
// checks every count against the bytes present before allocating, checks
// every value as Add does, and returns InvalidArgument for anything else.
// Serialize writes examples in the order they were added.
//
// Merge order does not matter: Result() is a function of the multiset of
// examples added, whatever the order of the Add and Merge calls, bit for
// bit. Classification keeps integer counts only. Binary and regression keep
// every example (16 bytes each in memory; 9 and 16 on the wire) because AUC
// needs them anyway; Result() sorts a copy of them by a total order (-0.0 is
// stored as 0.0, NaN is refused) and sums in that order, so that double
// rounding does not depend on the order pieces arrived in.
//
// An accumulator holds at most kMaxMetricExamples examples; Add and Merge
// beyond that return OutOfRange (it keeps AUC's count of pairs within a
// uint64).
//
// AddJsonFields writes a result as members of a JsonObject (a metrics line,
// summary.json), per-class figures and the confusion matrix keyed by class
// names; figures with JsonObject's 9 significant digits.
//
// Example (a worker, then the scheduler):
//   ClassificationMetrics metrics(10);
//   for (...) RETURN_IF_ERROR(metrics.AddLogits(label, logits_row));
//   std::string bytes = metrics.Serialize();
//   ...
//   ASSIGN_OR_RETURN(ClassificationMetrics piece, ClassificationMetrics::Parse(bytes));
//   RETURN_IF_ERROR(total.Merge(piece));
//   RETURN_IF_ERROR(AddJsonFields(total.Result(), class_names, &line));
//
// Value types; thread-compatible.
#ifndef TESSERA_CORE_TASK_METRICS_H_
#define TESSERA_CORE_TASK_METRICS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace tessera {

// The most examples one accumulator holds (2^32).
inline constexpr int64_t kMaxMetricExamples = int64_t{1} << 32;

// ---------------------------------------------------------------------------
// Multi-class classification.

// The predicted class of one example: the index of the largest logit, ties
// going to the lowest index. A NaN never wins against a number; a row of
// NaNs only predicts 0. REQUIRES: !logits.empty().
int64_t PredictedClass(std::span<const float> logits);

struct ClassificationResult {
  int64_t num_classes = 0;
  int64_t examples = 0;
  int64_t correct = 0;
  // correct / examples; 0 with no examples.
  double accuracy = 0;
  // Per class c, indexed by class:
  //   precision[c] = tp / (tp + fp), 0 when no example was predicted c;
  //   recall[c]    = tp / (tp + fn), 0 when no example is truly c;
  //   f1[c]        = 2 tp / (2 tp + fp + fn), the harmonic mean of the two,
  //                  0 when both are 0 (so 0 for a class seen nowhere);
  //   support[c]   = tp + fn, the examples whose true class is c.
  std::vector<double> precision;
  std::vector<double> recall;
  std::vector<double> f1;
  std::vector<int64_t> support;
  // The mean of f1 over the classes that occur, as a true class or as a
  // prediction (as scikit-learn's default); a class seen nowhere does not
  // lower it. 0 with no examples.
  double macro_f1 = 0;
  // confusion[t][p]: examples of true class t predicted as class p.
  std::vector<std::vector<int64_t>> confusion;
};

class ClassificationMetrics {
 public:
  // The most classes: a confusion matrix of 4096 x 4096 counts is 128 MiB.
  static constexpr int64_t kMaxClasses = 4096;

  // REQUIRES: 1 <= num_classes <= kMaxClasses.
  explicit ClassificationMetrics(int64_t num_classes);

  int64_t num_classes() const { return num_classes_; }
  int64_t examples() const { return examples_; }

  // One example. InvalidArgument when a class lies outside [0, num_classes);
  // OutOfRange when the accumulator is full.
  Status Add(int64_t true_class, int64_t predicted_class);
  // One example by its logits row: Add(true_class, PredictedClass(logits)).
  // InvalidArgument when logits.size() != num_classes, or as Add.
  Status AddLogits(int64_t true_class, std::span<const float> logits);

  // Adds `other`'s examples. InvalidArgument when its num_classes differs;
  // OutOfRange when the sum would exceed kMaxMetricExamples (nothing added).
  Status Merge(const ClassificationMetrics& other);

  ClassificationResult Result() const;

  // Layout (little-endian): 'C', format version 1, uint32 num_classes K,
  // then K*K int64 counts, row (true class) by row.
  std::string Serialize() const;
  static StatusOr<ClassificationMetrics> Parse(std::string_view bytes);

 private:
  int64_t& Cell(int64_t true_class, int64_t predicted_class);
  int64_t Cell(int64_t true_class, int64_t predicted_class) const;

  int64_t num_classes_;
  int64_t examples_ = 0;
  std::vector<int64_t> confusion_;  // num_classes_ x num_classes_, row-major
};

// ---------------------------------------------------------------------------
// Binary classification.

// Log loss clamps each probability to [kLogLossEpsilon, 1 - kLogLossEpsilon].
inline constexpr double kLogLossEpsilon = 1e-7;

struct BinaryResult {
  int64_t examples = 0;
  int64_t positives = 0;  // label 1
  int64_t negatives = 0;  // label 0
  // AUC is the Mann-Whitney statistic: over every (positive, negative) pair,
  // 1 when the positive scores higher, 1/2 on a tie, 0 otherwise; divided
  // by positives * negatives. Undefined when either class is absent: then
  // auc_defined is false and auc is 0 (never NaN).
  bool auc_defined = false;
  double auc = 0;
  // The mean of -[y log p + (1 - y) log(1 - p)], p clamped to
  // [1e-7, 1 - 1e-7] (kLogLossEpsilon); 0 with no examples.
  double log_loss = 0;
  // Predicted 1 when p > 0.5: p == 0.5 predicts 0, as argmax ties go to
  // the lowest class. accuracy = correct / examples, 0 with no examples.
  int64_t correct = 0;
  double accuracy = 0;
};

class BinaryMetrics {
 public:
  int64_t examples() const { return static_cast<int64_t>(examples_.size()); }

  // One example: its label (0 or 1) and predicted probability of 1 (the
  // sigmoid of its logit). InvalidArgument for another label or a
  // probability outside [0, 1] or NaN; OutOfRange when full.
  Status Add(int64_t label, double probability);

  // Adds `other`'s examples; OutOfRange when the sum would exceed
  // kMaxMetricExamples (nothing added). REQUIRES: &other != this.
  Status Merge(const BinaryMetrics& other);

  // Sorts a copy of the examples: O(n log n) time, 16 bytes per example.
  BinaryResult Result() const;

  // Layout (little-endian): 'B', format version 1, uint64 count n, then n
  // examples of a float64 probability and a uint8 label.
  std::string Serialize() const;
  static StatusOr<BinaryMetrics> Parse(std::string_view bytes);

  // One example as held.
  struct Example {
    double probability;
    uint8_t label;
  };

 private:
  std::vector<Example> examples_;
};

// ---------------------------------------------------------------------------
// Regression.

struct RegressionResult {
  int64_t examples = 0;
  // sqrt(mean((prediction - target)^2)) and mean(|prediction - target|);
  // 0 with no examples. Values beyond about 1e154 overflow the squares
  // (RMSE is then infinity, R² NaN).
  double rmse = 0;
  double mae = 0;
  // 1 - sum((target - prediction)^2) / sum((target - mean target)^2).
  // Undefined when the targets have zero variance (every target equal,
  // fewer than two examples, or a spread so small that its squares are 0
  // in double): then r2_defined is false and r2 is 0.
  bool r2_defined = false;
  double r2 = 0;
};

class RegressionMetrics {
 public:
  int64_t examples() const { return static_cast<int64_t>(examples_.size()); }

  // One example. InvalidArgument when either value is not finite;
  // OutOfRange when full.
  Status Add(double target, double prediction);

  // Adds `other`'s examples; OutOfRange when the sum would exceed
  // kMaxMetricExamples (nothing added). REQUIRES: &other != this.
  Status Merge(const RegressionMetrics& other);

  // Sorts a copy of the examples (by target, then prediction) and sums in
  // double in that order: O(n log n) time, 16 bytes per example.
  RegressionResult Result() const;

  // Layout (little-endian): 'R', format version 1, uint64 count n, then n
  // examples of float64 target and float64 prediction.
  std::string Serialize() const;
  static StatusOr<RegressionMetrics> Parse(std::string_view bytes);

  // One example as held.
  struct Example {
    double target;
    double prediction;
  };

 private:
  std::vector<Example> examples_;
};

// ---------------------------------------------------------------------------
// JSON.

// Adds "examples", "accuracy", "macro_f1", "per_class" ({NAME: {"precision",
// "recall", "f1", "support"}, ...}) and "confusion" ({TRUE_NAME:
// {PREDICTED_NAME: count, ...}, ...}) to *out. InvalidArgument (and nothing
// added) unless class_names has num_classes distinct names.
Status AddJsonFields(const ClassificationResult& result, const std::vector<std::string>& class_names,
                     JsonObject* out);
// Adds "examples", "positives", "negatives", "auc" (null when undefined),
// "log_loss", "accuracy".
void AddJsonFields(const BinaryResult& result, JsonObject* out);
// Adds "examples", "rmse", "mae", "r2" (null when undefined).
void AddJsonFields(const RegressionResult& result, JsonObject* out);

}  // namespace tessera

#endif  // TESSERA_CORE_TASK_METRICS_H_
