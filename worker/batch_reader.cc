#include "worker/batch_reader.h"

namespace tessera {

void BatchReader::Read(const std::vector<int64_t>& order, int64_t begin, int64_t count, std::vector<float>* x,
                       std::vector<uint8_t>* labels) const {
  const int64_t size = dataset_->example_size();
  x->resize(count * size);
  labels->resize(count);
  // One multiply-add per pixel: (p/255 - mean)/std = p * a + b.
  const float a = 1.0f / (255.0f * std_);
  const float b = -mean_ / std_;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t example = order.empty() ? begin + i : order[begin + i];
    const uint8_t* pixels = dataset_->pixels.data() + example * size;
    float* out = x->data() + i * size;
    for (int64_t p = 0; p < size; ++p) out[p] = static_cast<float>(pixels[p]) * a + b;
    (*labels)[i] = dataset_->labels[example];
  }
}

}  // namespace tessera
