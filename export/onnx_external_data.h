// ONNX external data (the ONNX standard's way past protobuf's 2 GiB): a
// model whose initializers hold more than a threshold (2 GiB by default)
// keeps its largest ones in a file beside model.onnx, `model.onnx.data`,
// each initializer naming it with data_location EXTERNAL and the
// external_data entries "location", "offset" and "length" (bytes, decimal).
// onnxruntime and ONNX's own tools read such a model from its directory.
// docs/FORMATS.md, "External data", is the contract.
//
// The export moves tensors out (MoveInitializersToExternalData) after the
// checker has seen the whole model and writes the file
// (WriteExternalDataFile); the import reads them back in
// (LoadExternalData), checking every entry against the file before a byte
// is read, so a bad or truncated file is one InvalidArgument line, never a
// crash. Functions only: thread-safe on distinct models.
#ifndef TESSERA_EXPORT_ONNX_EXTERNAL_DATA_H_
#define TESSERA_EXPORT_ONNX_EXTERNAL_DATA_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

inline constexpr char kExternalDataFileName[] = "model.onnx.data";
// Initializers beyond this many bytes in all go to external data: protobuf
// cannot write or read a message over 2 GiB, and the graph needs some room.
inline constexpr uint64_t kDefaultExternalDataThreshold = (uint64_t{2} << 30) - (uint64_t{64} << 20);

// Moves the largest initializers of `model`, one at a time, into external
// data until those left hold at most `threshold` bytes; none when they
// already do. Each moved tensor's bytes are appended to *pieces (in file
// order; their offsets follow one another from 0) and the tensor refers to
// kExternalDataFileName. Returns the external data's total bytes.
// REQUIRES: every initializer keeps its values in raw_data (as the exporter
// writes them).
uint64_t MoveInitializersToExternalData(onnx::ModelProto* model, uint64_t threshold,
                                        std::vector<std::string>* pieces);

// Writes `pieces` one after the other to `path` (a new file) and syncs it.
// Unavailable on an I/O error.
Status WriteExternalDataFile(const std::string& path, const std::vector<std::string>& pieces);

// Reads every external initializer of `model` (loaded from the directory
// `model_dir`) into raw_data, so the model is whole in memory. Each must
// name a "location" that is a relative path inside model_dir (no "..", no
// absolute path, no link out of it) and an "offset" and "length" (decimal;
// length defaults to the tensor's size) that lie inside that file and
// give exactly the bytes its dims and type take. InvalidArgument naming the
// tensor, the file and what was expected against what was found otherwise.
Status LoadExternalData(onnx::ModelProto* model, const std::string& model_dir);

}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_EXTERNAL_DATA_H_
