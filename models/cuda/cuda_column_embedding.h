// The CUDA twin of ColumnEmbedding (models/column_embedding.h): the numeric
// features copied and each categorical id's row gathered in one kernel;
// Backward scatters without atomics as CudaEmbedding does (the ids read back
// to the host and grouped by row, then one thread per (row, k) adds the dy
// floats of its uses in the CPU layer's order), so the gradient is bitwise
// the CPU's, and dx passes the numeric features' dy through (ids: zero).
// As every CUDA layer: device pointers only, work enqueued on the context's
// stream; not thread-safe.
#ifndef TESSERA_MODELS_CUDA_CUDA_COLUMN_EMBEDDING_H_
#define TESSERA_MODELS_CUDA_CUDA_COLUMN_EMBEDDING_H_

#include <memory>

#include "models/column_embedding.h"
#include "models/cuda/cuda_context.h"
#include "models/layer.h"

namespace tessera::cuda {

// The CUDA layer of `cpu` (whose shapes, layout and parameters it takes).
std::unique_ptr<Layer> CreateCudaColumnEmbedding(const ColumnEmbedding& cpu, std::shared_ptr<CudaContext> context);

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_CUDA_COLUMN_EMBEDDING_H_
