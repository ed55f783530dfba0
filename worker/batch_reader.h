// BatchReader: turns example positions of a phase's order into normalized
// float batches ((pixel/255 - mean) / std) and labels.
// Not thread-safe; borrows *dataset, which must outlive it.
#ifndef TESSERA_WORKER_BATCH_READER_H_
#define TESSERA_WORKER_BATCH_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/status.h"
#include "models/model.h"

namespace tessera {

// Checks that every value `data`'s pixels become under (mean, std) is an
// input `model` takes (Model::ValidateInputValues: ids for an embedding
// first layer). InvalidArgument naming `what`, the pixel byte and the value.
Status CheckDatasetInputs(const ImageDataset& data, float mean, float std, const Model& model, const std::string& what);

class BatchReader {
 public:
  BatchReader(const ImageDataset* dataset, float mean, float std) : dataset_(dataset), mean_(mean), std_(std) {}

  // Fills x[count, example_size] and labels[count] (the class ids as floats) with examples
  // order[begin .. begin+count) (or begin .. begin+count when order is empty).
  void Read(const std::vector<int64_t>& order, int64_t begin, int64_t count, std::vector<float>* x,
            std::vector<float>* labels) const;

 private:
  const ImageDataset* dataset_;
  float mean_, std_;
};

}  // namespace tessera

#endif  // TESSERA_WORKER_BATCH_READER_H_
