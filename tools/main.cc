// tessera: one binary for every role and tool. See `tessera --help`.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstring>
#include <iostream>

#include "tools/command.h"

namespace {

void PrintTopHelp() {
  std::cout << "usage: tessera COMMAND [args] [flags]\n\n"
               "Tessera: distributed training on a parameter server.\n\ncommands:\n";
  for (const tessera::Command& c : tessera::Commands()) {
    if (c.hidden) continue;
    std::cout << "  " << c.name << std::string(12 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  std::cout << "\n'tessera COMMAND --help' explains a command and its flags.\n";
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintTopHelp();
    return argc < 2 ? tessera::kExitUsage : tessera::kExitOk;
  }
  for (const tessera::Command& c : tessera::Commands()) {
    if (c.name != std::string(argv[1])) continue;
    auto parsed = tessera::ParseArgs(c, argc - 2, argv + 2);
    if (!parsed.ok()) return tessera::UsageError(c, parsed.status().message());
    if (parsed->help) {
      std::cout << tessera::CommandHelp(c);
      return tessera::kExitOk;
    }
    return c.run(*parsed);
  }
  std::cerr << "tessera: unknown command '" << argv[1] << "' (see 'tessera --help')" << std::endl;
  return tessera::kExitUsage;
}
