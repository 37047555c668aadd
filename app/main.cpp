// skyhost: the command line. Runs a script, a -e chunk, standard input, or the REPL.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "app/repl.hpp"
#include "bindings/runtime.hpp"

namespace {

// `skyhost --help`: this, the subcommands (Runtime::commands_usage), then kUsageOptions.
const char kUsage[] =
    "usage: skyhost [options] [SCRIPT [ARGS...]]\n"
    "\n"
    "Runs SCRIPT, a Lua program using the `sky` module: remote functions, pools of machines,\n"
    "teardown guaranteed when the script ends, fails or is interrupted.\n"
    "\n"
    "  skyhost SCRIPT [ARGS...]  run a script; its arguments are in `arg`\n"
    "  skyhost -e CODE [ARGS...] run CODE\n"
    "  skyhost - [ARGS...]       run a script read from standard input\n"
    "  skyhost                   interactive REPL (when standard input is a terminal)\n";

const char kUsageOptions[] =
    "\n"
    "options:\n"
    "  -v, --verbose   show tracebacks (local and remote) with errors\n"
    "  -h, --help      show this help\n"
    "  -V, --version   show the version\n"
    "\n"
    "environment:\n"
    "  SKYHOST_WORKER  path of the skyworker binary (default: next to skyhost)\n"
    "  SKYHOST_STDLIB  repository root to load stdlib/ and providers/ from (development)\n"
    "  SKYHOST_CATALOG offer catalog (TSV) to use instead of the built-in snapshot\n"
    "  SKYHOST_STATE_DIR directory of the journal, state.db (default: ~/.skyhost)\n"
    "\n"
    "docs: README.md and docs/ in the skyhost repository\n";

int usage_error(const char* msg) {
  std::fprintf(stderr, "skyhost: %s\nTry 'skyhost --help'.\n", msg);
  return 2;
}

int run(int argc, char** argv) {
  skyhost::Runtime::Options opts;
  opts.program = argv[0];
  int i = 1;
  const char* code = nullptr;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      // The subcommands' lines come from the stdlib; help still prints if it cannot load.
      std::string commands;
      try {
        commands = skyhost::Runtime(opts).commands_usage();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "skyhost: %s\n", e.what());
      }
      std::printf("%s%s%s", kUsage, commands.c_str(), kUsageOptions);
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("skyhost %s\n", SKYHOST_VERSION);
      return 0;
    } else if (a == "-v" || a == "--verbose") {
      opts.verbose = true;
    } else if (a == "-e") {
      if (i + 1 >= argc) return usage_error("-e needs an argument: the code to run");
      code = argv[++i];
      i++;
      break;
    } else if (a == "--") {
      i++;
      break;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error(("unknown option '" + a + "'").c_str());
    } else {
      break;
    }
  }
  try {
    skyhost::Runtime rt(opts);
    if (code != nullptr) {
      return rt.run_code(code, std::vector<std::string>(argv + i, argv + argc));
    }
    // The subcommands (stdlib/sky/commands/init.lua): a script cannot take these names.
    if (i < argc && rt.is_command(argv[i])) {
      return rt.run_command(argv[i], std::vector<std::string>(argv + i + 1, argv + argc));
    }
    if (i < argc) {
      return rt.run_file(argv[i], std::vector<std::string>(argv + i + 1, argv + argc));
    }
    if (isatty(0)) return skyhost::run_repl(rt);
    return rt.run_file("-", {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "skyhost: %s\n", e.what());
    return 1;
  }
}

/// Test seam for tests/e2e/test_teardown.py: SKYHOST_TEST_EXIT_HOLD_MS keeps the process alive
/// that long after everything is torn down, so a test can send a signal "during exit" at a
/// chosen moment instead of by luck. Signals that arrive here are counted and ignored.
void hold_before_exit() {
  const char* hold = std::getenv("SKYHOST_TEST_EXIT_HOLD_MS");
  if (hold == nullptr) return;
  static const char msg[] = "skyhost: exiting\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  long ms = std::strtol(hold, nullptr, 10);
  timespec left{ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  int code = run(argc, argv);
  hold_before_exit();
  return code;
}
