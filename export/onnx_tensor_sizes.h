// A check ONNX's own checker leaves out: every constant tensor of a graph
// (initializers, sparse initializers, the tensors of Constant nodes' and
// other nodes' attributes, in subgraphs too) holds exactly the elements its
// dims say. ONNX's shape inference reads constant inputs (a Reshape's
// shape, Unsqueeze's and ReduceSum's axes) by its dims without checking the
// bytes behind them, and crashed on an int64 shape of 3 bytes; CheckOnnxModel
// (export/onnx_export.h) runs this first. Functions only: thread-safe.
#ifndef TESSERA_EXPORT_ONNX_TENSOR_SIZES_H_
#define TESSERA_EXPORT_ONNX_TENSOR_SIZES_H_

#include <onnx/onnx_pb.h>

#include "core/status.h"

namespace tessera {

// InvalidArgument naming the first tensor whose dims are negative or
// overflow, or whose data (raw_data bytes, or the typed field's count)
// is not its dims' element count; sparse initializers are refused.
Status CheckTensorSizes(const onnx::GraphProto& graph);

}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_TENSOR_SIZES_H_
