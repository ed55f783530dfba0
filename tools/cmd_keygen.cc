// `tessera keygen`: writes a CurveZMQ key pair (core/curve_keys.h).
#include <gflags/gflags.h>

#include <iostream>

#include "core/curve_keys.h"
#include "tools/command.h"

DECLARE_string(out);
DECLARE_string(name);

namespace tessera {

int RunKeygen(const ParsedArgs& args) {
  const Command& self = FindCommand("keygen");
  if (!args.positional.empty()) return UsageError(self, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_out.empty()) return UsageError(self, "--out DIR is required");
  const std::string name = FLAGS_name.empty() ? "node" : FLAGS_name;
  auto keys = GenerateCurveKeyPair();
  if (!keys.ok()) return UsageError(self, keys.status().message());
  if (Status s = WriteCurveKeyPair(*keys, FLAGS_out, name); !s.ok()) return UsageError(self, s.message());
  std::cout << "wrote " << FLAGS_out << "/" << name << ".secret (mode 0600) and " << FLAGS_out << "/" << name
            << ".pub, public key " << keys->public_key << std::endl;
  return kExitOk;
}

}  // namespace tessera
