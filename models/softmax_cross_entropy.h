// The losses over the last layer's outputs, one per task (core/task.h):
// softmax cross-entropy over logits [batch, classes] and class labels,
// sigmoid binary cross-entropy over one logit and labels 0 or 1, and the
// squared error of one output against any label. Each sums its loss over the
// batch (the gradients the workers push are sums too) and computes in double
// per example, so the CPU and CUDA twins agree to float rounding.
#ifndef TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_
#define TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_

#include <cstdint>

namespace tessera {

struct LossResult {
  double loss_sum = 0;  // summed over the batch
  int64_t correct = 0;  // classified right (argmax == label; binary: z > 0 == label); regression 0
};

// Computes the summed loss and, when dlogits is not null, the gradient of
// the summed loss: softmax(logits) - onehot(label). Labels are class ids
// held as floats (exact). REQUIRES: every label an integer in [0, classes).
LossResult SoftmaxCrossEntropy(const float* logits, const float* labels, int64_t batch, int64_t classes,
                               float* dlogits);

// Binary cross-entropy of p = sigmoid(z) for logits z[batch] and labels
// 0 or 1: loss = -[y log p + (1 - y) log(1 - p)], computed as
// max(z, 0) - z y + log1p(exp(-|z|)) so that no large |z| overflows; the
// gradient (when dlogits is not null) is sigmoid(z) - y. An example counts
// as correct when (z > 0) == (y == 1): p == 0.5 predicts 0.
LossResult SigmoidBinaryCrossEntropy(const float* logits, const float* labels, int64_t batch, float* dlogits);

// Squared error of outputs z[batch] against labels y[batch]: loss (z - y)^2,
// gradient 2 (z - y), as PyTorch's MSELoss(reduction='sum'). correct is 0.
LossResult MeanSquaredError(const float* outputs, const float* labels, int64_t batch, float* doutputs);

// The sigmoid of z, computed without overflow for any z.
double Sigmoid(double z);

}  // namespace tessera

#endif  // TESSERA_MODELS_SOFTMAX_CROSS_ENTROPY_H_
