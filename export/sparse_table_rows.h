// A sparse table's rows as an exported model carries them (issue 16,
// "Export and serving"): the ids a checkpoint holds, sorted, and each id's
// values (dim floats; the optimizer state a checkpoint keeps beside them is
// left out). `tessera export` gathers them from every server part of a
// checkpoint (ReadCheckpointTableRows); the ONNX model stores them
// (export/onnx_export.h) and serve and predict read them back
// (export/onnx_import.h) to map a batch's ids to rows (BindBatchRows).
// A value type; const methods are thread-safe.
#ifndef TESSERA_EXPORT_SPARSE_TABLE_ROWS_H_
#define TESSERA_EXPORT_SPARSE_TABLE_ROWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/checkpoint.pb.h"

namespace tessera {

struct SparseTableRows {
  std::string name;  // the model.sparse_table's name
  int dim = 0;
  std::vector<uint64_t> ids;  // strictly increasing, never kNoSparseId
  std::vector<float> values;  // [ids.size(), dim]: row k is ids[k]'s

  int64_t count() const { return static_cast<int64_t>(ids.size()); }
  // The row of `id`, or -1 when the table has none (an id training never
  // admitted, or never saw: it reads as zeros, as training reads an
  // unadmitted id; docs/FORMATS.md says why a never-pushed one does too).
  int64_t RowOf(uint64_t id) const;
};

// Table `table` (its index in the job's model.sparse_table) of the
// checkpoint `dir` whose manifest is `m`: the rows of every server part
// (ReadCheckpointSparseTable), merged in id order. DataLoss naming the file
// for a part that is missing, bad, of another table, dim or step, or that
// holds an id another part holds too.
StatusOr<SparseTableRows> ReadCheckpointTableRows(const std::string& dir, const proto::CheckpointManifest& m,
                                                  int table);

// The rows a batch reads: for each of `batch_ids` (sorted, distinct, as
// MakeSparseBatch gives them) its row of `table`, or zeros for an id the
// table does not hold, into rows[batch_ids.size(), dim] (resized).
void GatherBatchRows(const SparseTableRows& table, const std::vector<uint64_t>& batch_ids, std::vector<float>* rows);

}  // namespace tessera

#endif  // TESSERA_EXPORT_SPARSE_TABLE_ROWS_H_
