#include "models/softmax_cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace tessera {

LossResult SoftmaxCrossEntropy(const float* logits, const float* labels, int64_t batch, int64_t classes,
                               float* dlogits) {
  LossResult result;
  for (int64_t b = 0; b < batch; ++b) {
    const float* z = logits + b * classes;
    int64_t best = 0;
    float max = z[0];
    for (int64_t c = 1; c < classes; ++c) {
      if (z[c] > max) {
        max = z[c];
        best = c;
      }
    }
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c] - max));
    const double log_sum = std::log(sum);
    const int64_t label = static_cast<int64_t>(labels[b]);
    result.loss_sum += log_sum - static_cast<double>(z[label] - max);
    if (best == label) ++result.correct;
    if (dlogits != nullptr) {
      float* g = dlogits + b * classes;
      for (int64_t c = 0; c < classes; ++c) {
        g[c] = static_cast<float>(std::exp(static_cast<double>(z[c] - max) - log_sum));
      }
      g[label] -= 1.0f;
    }
  }
  return result;
}

double Sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

LossResult SigmoidBinaryCrossEntropy(const float* logits, const float* labels, int64_t batch, float* dlogits) {
  LossResult result;
  for (int64_t b = 0; b < batch; ++b) {
    const double z = logits[b];
    const double y = labels[b];
    result.loss_sum += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
    if ((z > 0) == (y == 1.0)) ++result.correct;
    if (dlogits != nullptr) dlogits[b] = static_cast<float>(Sigmoid(z) - y);
  }
  return result;
}

LossResult MeanSquaredError(const float* outputs, const float* labels, int64_t batch, float* doutputs) {
  LossResult result;
  for (int64_t b = 0; b < batch; ++b) {
    const double d = static_cast<double>(outputs[b]) - static_cast<double>(labels[b]);
    result.loss_sum += d * d;
    if (doutputs != nullptr) doutputs[b] = static_cast<float>(2.0 * d);
  }
  return result;
}

}  // namespace tessera
