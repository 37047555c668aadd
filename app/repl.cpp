#include "app/repl.hpp"

#include <editline/readline.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bindings/runtime.hpp"

namespace skyhost {

namespace {

std::string history_path() {
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.skyhost_history";
}

}  // namespace

int run_repl(Runtime& rt) {
  std::printf(
      "skyhost %s — Lua 5.4 with `sky`. Ctrl-D or Ctrl-C to quit (pools are torn down); Ctrl-C "
      "in an unfinished entry drops it.\n",
      SKYHOST_VERSION);
  std::string hist = history_path();
  using_history();
  read_history(hist.c_str());
  std::string pending;
  int seen = rt.interrupts();
  for (;;) {
    char* line = readline(pending.empty() ? "sky> " : "  >> ");
    if (rt.interrupts() != seen) {  // Ctrl-C at the prompt
      std::free(line);
      std::printf("\n");
      if (pending.empty()) break;
      // In a half-typed multi-line entry it only drops that entry.
      pending.clear();
      seen = rt.interrupts();
      continue;
    }
    if (line == nullptr) {  // Ctrl-D
      std::printf("\n");
      break;
    }
    std::string text = line;
    std::free(line);
    if (pending.empty() && text.find_first_not_of(" \t") == std::string::npos) continue;
    pending += pending.empty() ? text : "\n" + text;
    std::string out;
    Runtime::Eval r = rt.eval(pending, out);
    if (r == Runtime::Eval::kIncomplete) continue;
    add_history(pending.c_str());
    write_history(hist.c_str());
    pending.clear();
    if (r == Runtime::Eval::kError) {
      std::fprintf(stderr, "%s\n", out.c_str());
    } else if (!out.empty()) {
      std::printf("%s\n", out.c_str());
    }
    std::fflush(stdout);
    seen = rt.interrupts();  // a Ctrl-C that stopped running code does not end the REPL
  }
  rt.teardown();
  return 0;
}

}  // namespace skyhost
