// Transfers as the Lua driver sees them: each file or tree transfer runs under a wait id of the
// loop and ends in a TransferResult kept until taken (host/core/completions.hpp), so the bindings
// only check arguments, start one and push its result.
#pragma once

#include <optional>
#include <string>

#include "host/core/completions.hpp"
#include "host/transfer/sync.hpp"
#include "host/transfer/transfer.hpp"

namespace skyhost {

struct TransferResult {
  std::string error;               // "" on success
  std::optional<SyncReport> sync;  // what a tree transfer did
};

class Transfers {
 public:
  explicit Transfers(Loop& loop) : loop_(loop), done_(loop) {}

  /// put_file (transfer.hpp); `only_if_missing` keeps a file already there; `lanes` 0: as many
  /// sessions as put_file chooses.
  WaitId put(Link& link, const std::string& local, const std::string& remote, bool only_if_missing,
             int lanes = 0) {
    WaitId id = done_.begin();
    put_file(link, loop_.uv(), local, remote, file_done(id), only_if_missing, lanes);
    return id;
  }
  WaitId get(Link& link, const std::string& remote, const std::string& local, int lanes = 0) {
    WaitId id = done_.begin();
    get_file(link, loop_.uv(), remote, local, file_done(id), lanes);
    return id;
  }
  /// put_tree / get_tree (sync.hpp).
  WaitId put_dir(Link& link, const std::string& local, const std::string& remote) {
    WaitId id = done_.begin();
    put_tree(link, loop_.uv(), local, remote, tree_done(id));
    return id;
  }
  WaitId get_dir(Link& link, const std::string& remote, const std::string& local) {
    WaitId id = done_.begin();
    get_tree(link, loop_.uv(), remote, local, tree_done(id));
    return id;
  }

  std::optional<TransferResult> take(WaitId id) { return done_.take(id); }

 private:
  TransferDone file_done(WaitId id) {
    return [this, id](const std::string& err) { done_.finish(id, TransferResult{err, {}}); };
  }
  SyncDone tree_done(WaitId id) {
    return [this, id](const std::string& err, const SyncReport& r) {
      done_.finish(id, TransferResult{err, r});
    };
  }

  Loop& loop_;
  Completions<TransferResult> done_;
};

}  // namespace skyhost
