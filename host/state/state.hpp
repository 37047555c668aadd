// The intent journal (DESIGN.md §2): a local SQLite database that knows every pool and instance
// the host may have created, so `skyhost ls/down` and crash recovery can find them, plus a cache
// of provider offers with a time-to-live.
//
// The host writes an instance's intent *before* the create call and forgets an instance only
// after its termination was confirmed. Every call is one transaction, so a crash between two
// calls leaves the journal as it was after the first; begin()/commit() group several calls into
// one. WAL mode: readers (another skyhost running `ls`) never block the writer or see half of a
// transaction. Pure C++ (sqlite3 C API); the Lua face is bindings/state.cpp, stdlib/sky/state.lua.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace skyhost {

struct PoolRecord {
  std::string id;
  std::string name;
  std::string provider;
  double created = 0;      // unix time, seconds
  std::string state;       // "requested", ... free-form until "destroyed"
  std::string info;        // opaque to the store (the Lua layer keeps JSON here)
  int live_instances = 0;  // instances not yet confirmed terminated (filled by live_pools)
};

struct InstanceRecord {
  int64_t key = 0;  // the journal's own id: the provider's instance id is unknown at intent time
  std::string pool_id;
  std::string provider;
  std::string instance_id;  // "" until the provider returned one
  std::string state;        // "intent", then free-form until "terminated" or "failed"
  double created = 0;
  std::optional<double> terminated;
  std::string info;
};

class StateStore {
 public:
  /// $SKYHOST_STATE_DIR/state.db, else ~/.skyhost/state.db.
  static std::string default_path();

  /// Opens (creating if needed) the database at `path`. Missing directories are created with
  /// mode 0700, a new database file with 0600. Throws std::runtime_error naming the path.
  explicit StateStore(const std::string& path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  const std::string& path() const { return path_; }

  /// Records a pool in state "requested" and returns its id (a new random "sky-xxxxxxxx" when
  /// `pool.id` is empty). Throws if the id exists.
  std::string record_pool(const PoolRecord& pool);
  /// A pool's state transition. Throws for an unknown pool.
  void mark_pool(const std::string& id, const std::string& state);
  /// Before a provider's create call: an instance row in state "intent". Returns its key.
  int64_t record_instance_intent(const std::string& pool_id, const std::string& provider,
                                 const std::string& info = "");
  /// An instance's state transition; `instance_id`/`info` are stored when given. "terminated"
  /// and "failed" (the provider confirmed nothing exists) are final: they stamp `terminated`,
  /// and a final instance cannot go back to a live state.
  void mark_instance(int64_t key, const std::string& state,
                     const std::optional<std::string>& instance_id = std::nullopt,
                     const std::optional<std::string>& info = std::nullopt);
  /// Marks the pool "destroyed". Returns its instances not yet confirmed terminated: while any
  /// remain the pool is still listed by live_pools().
  std::vector<InstanceRecord> finish_pool(const std::string& id);
  /// Deletes a destroyed pool whose instances are all final. Throws otherwise.
  void forget_pool(const std::string& id);

  /// Pools not destroyed, or destroyed with instances not confirmed terminated; oldest first.
  std::vector<PoolRecord> live_pools();
  std::optional<PoolRecord> pool(const std::string& id);
  std::vector<InstanceRecord> instances(const std::string& pool_id);

  /// The cached value if it was stored at most `ttl_s` seconds ago.
  std::optional<std::string> cache_get(const std::string& provider, const std::string& key,
                                       double ttl_s);
  void cache_put(const std::string& provider, const std::string& key, const std::string& json);
  /// Drops cache entries older than `age_s`; returns how many.
  int cache_prune(double age_s);

  /// Groups the calls until the matching commit() into one transaction (nested calls become
  /// savepoints). rollback() undoes them. The destructor rolls back an open transaction.
  void begin();
  void commit();
  void rollback();
  int transaction_depth() const { return depth_; }

  /// The clock stamping rows (unix seconds); tests replace it.
  void set_clock(std::function<double()> clock) { clock_ = std::move(clock); }

  class Stmt;

 private:
  Stmt prepare(const char* sql);
  void exec(const char* sql);
  [[noreturn]] void fail(const std::string& what);
  void create_schema();

  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> stmts_;  // keyed by the SQL literal
  int depth_ = 0;
  std::function<double()> clock_;
};

}  // namespace skyhost
