// Softmax cross-entropy over logits [batch, classes] and integer labels.
#ifndef TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_
#define TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_

#include <cstdint>

namespace tessera {

struct LossResult {
  double loss_sum = 0;  // summed over the batch
  int64_t correct = 0;  // argmax == label
};

// Computes the summed loss and, when dlogits is not null, the gradient of
// the summed loss: softmax(logits) - onehot(label). REQUIRES: labels < classes.
LossResult SoftmaxCrossEntropy(const float* logits, const uint8_t* labels, int64_t batch, int64_t classes,
                               float* dlogits);

}  // namespace tessera

#endif  // TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_
