#include "models/softmax_cross_entropy.h"

#include <cmath>

namespace tessera {

LossResult SoftmaxCrossEntropy(const float* logits, const uint8_t* labels, int64_t batch, int64_t classes,
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
    const int64_t label = labels[b];
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

}  // namespace tessera
