// `tessera predict` over Criteo click-log files (core/criteo_format.h) for a
// model over a sparse table (manifest preprocessing "criteo"): each line
// becomes what training made of it, the 13 integer fields' CriteoNumeric and
// the 26 categorical fields' CriteoId, and each id reads its row of the
// model's table (export/sparse_table_rows.h), zeros for an id the table does
// not hold and nothing for an empty field. The file is read whole when
// opened (its numbers and ids, 26 ids per line), so reading a batch is a
// copy.
#ifndef TESSERA_TOOLS_PREDICT_CRITEO_SOURCE_H_
#define TESSERA_TOOLS_PREDICT_CRITEO_SOURCE_H_

#include <memory>
#include <string>

#include "core/status.h"
#include "tools/predict_source.h"

namespace tessera {

// A source whose Read also binds the batch's rows to model.model (the next
// Infer reads them; the rows stay valid until the next Read), so `model`
// must outlive it and run only the batches it reads. InvalidArgument in
// one line naming the file, line and column for a line that breaks
// Criteo's layout (ParseCriteoRecord), or for a model without a sparse
// table; NotFound for a missing file.
StatusOr<std::unique_ptr<PredictSource>> OpenCriteoSource(const std::string& path, const PredictModel& model);

}  // namespace tessera

#endif  // TESSERA_TOOLS_PREDICT_CRITEO_SOURCE_H_
