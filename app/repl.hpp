#pragma once

namespace skyhost {

class Runtime;

/// The interactive REPL: libedit line editing, history kept in ~/.skyhost_history, values of
/// expressions printed, multi-line input while a statement is incomplete. Pools opened here stay
/// open across lines and are torn down on exit, Ctrl-D or Ctrl-C at the prompt.
int run_repl(Runtime& rt);

}  // namespace skyhost
