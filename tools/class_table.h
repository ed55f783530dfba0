// The table of figures per class that `tessera train` prints when a job
// ends, from summary.json's "classification" object.
#ifndef TESSERA_TOOLS_CLASS_TABLE_H_
#define TESSERA_TOOLS_CLASS_TABLE_H_

#include <string>

namespace tessera {

// One line per class (name, precision, recall, F1, support), in class order,
// then the macro F1; "" when `summary_json` has no usable "classification".
std::string ClassTable(const std::string& summary_json);

}  // namespace tessera

#endif  // TESSERA_TOOLS_CLASS_TABLE_H_
