// The embedding: one Lua state with the sky stdlib on one loop. The CLI and REPL (host/app)
// talk to Lua only through this class.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct lua_State;

namespace skyhost {

struct Context;

class Runtime {
 public:
  struct Options {
    bool verbose = false;
    std::string program;  // argv[0], for arg[-1]
  };
  explicit Runtime(Options opts);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Runs a script file ("-" reads standard input) with `args` as `arg`. Returns the exit code.
  int run_file(const std::string& path, const std::vector<std::string>& args);
  /// Runs `code` (skyhost -e). Returns the exit code.
  int run_code(const std::string& code, const std::vector<std::string>& args);
  /// Runs a subcommand written in Lua (`skyhost offers ...`, `skyhost check`):
  /// require("sky.commands").run(name, args...). Returns its exit code.
  int run_command(const std::string& name, const std::vector<std::string>& args);
  /// Whether `word` names a subcommand (the list is stdlib/sky/commands/init.lua's M.LIST).
  bool is_command(const std::string& word);
  /// The subcommands' lines of `skyhost --help`.
  std::string commands_usage();

  enum class Eval { kOk, kIncomplete, kError };
  /// One REPL entry: an expression prints its values, a statement runs; output in `out`.
  Eval eval(const std::string& code, std::string& out);

  /// Closes every open pool (end of a REPL session). Safe to call more than once.
  void teardown();
  /// SIGINT/SIGTERM received so far.
  int interrupts() const;

 private:
  int run_loaded(int load_status, const std::string& script, const std::vector<std::string>& args);
  Options opts_;
  std::unique_ptr<Context> ctx_;
  lua_State* L_ = nullptr;
};

}  // namespace skyhost
