// The CLI's command table and flag parsing. Flags are gflags (so each has a
// type, a default and help text), but parsed here so that every mistake ends
// in one line and exit code 2 rather than gflags' own exit(1), and so each
// command accepts only its own flags.
#ifndef TESSERA_TOOLS_COMMAND_H_
#define TESSERA_TOOLS_COMMAND_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

// Exit codes of every command.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the job or role failed at run time
constexpr int kExitUsage = 2;    // the user's mistake: bad flag, spec, path
constexpr int kExitPermanent = 3;  // a role failed in a way no restart can fix: a full disk, corrupt data
constexpr int kExitInterrupted = 130;

struct ParsedArgs {
  std::vector<std::string> positional;
  std::set<std::string> set_flags;  // flags given explicitly, by gflags name
  bool help = false;
};

struct Command {
  const char* name;
  const char* summary;  // one line for `tessera --help`
  const char* usage;    // "tessera train SPEC [flags]" plus a paragraph
  std::vector<std::string> flags;  // gflags names it accepts
  int (*run)(const ParsedArgs& args);
  // Help for flags this command shares with others (a gflags name is
  // defined once) whose own text would mislead here: the whole line after
  // the flag's name, its default included.
  std::map<std::string, std::string> flag_help = {};
  // Internal commands (children the CLI starts itself) are left out of
  // `tessera --help`.
  bool hidden = false;
  // Flags it accepts that its help leaves out: hooks for tests only.
  std::vector<std::string> hidden_flags = {};
};

// All commands, in the order `tessera --help` lists them.
const std::vector<Command>& Commands();

// Parses argv (after the command name). Accepts --name=value, --name value,
// --bool, --nobool, with '-' or '_' inside names. InvalidArgument naming the
// flag for an unknown flag, a flag of another command or a bad value.
StatusOr<ParsedArgs> ParseArgs(const Command& command, int argc, char** argv);

// Help text for one command: usage, then each flag with its default.
std::string CommandHelp(const Command& command);

// The command called `name`. REQUIRES: it exists.
const Command& FindCommand(const char* name);

// Prints "tessera CMD: message" to stderr and returns kExitUsage.
int UsageError(const Command& command, const std::string& message);

// Flags every command takes (logging).
const std::vector<std::string>& CommonFlags();

// Defined in each cmd_*.cc.
int RunTrain(const ParsedArgs& args);
int RunScheduler(const ParsedArgs& args);
int RunServer(const ParsedArgs& args);
int RunWorker(const ParsedArgs& args);
int RunResume(const ParsedArgs& args);
int RunInspect(const ParsedArgs& args);
int RunExport(const ParsedArgs& args);
int RunServe(const ParsedArgs& args);
int RunPredict(const ParsedArgs& args);
int RunPredictWorker(const ParsedArgs& args);
int RunKeygen(const ParsedArgs& args);

}  // namespace tessera

#endif  // TESSERA_TOOLS_COMMAND_H_
