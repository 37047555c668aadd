// host/state: the intent journal on a real SQLite file in a temporary directory.
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "host/state/state.hpp"

using namespace skyhost;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/skyhost-state-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

int mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

/// A raw query through a connection of its own: what another process would see.
std::string query(const std::string& db, const char* sql) {
  sqlite3* c = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &c, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(c, sql, -1, &s, nullptr) == SQLITE_OK);
  std::string out;
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (!out.empty()) out += ";";
    const unsigned char* t = sqlite3_column_text(s, 0);
    out += t != nullptr ? reinterpret_cast<const char*>(t) : "NULL";
  }
  sqlite3_finalize(s);
  sqlite3_close(c);
  return out;
}

PoolRecord rec(const std::string& id, const std::string& name, const std::string& provider,
               const std::string& info = "") {
  PoolRecord p;
  p.id = id;
  p.name = name;
  p.provider = provider;
  p.info = info;
  return p;
}

/// A pool and its `n` intents in one transaction, as the host records a pool it provisions.
std::string pool_with_intents(StateStore& s, int n) {
  s.begin();
  std::string id = s.record_pool(rec("", "job", "local"));
  for (int i = 0; i < n; i++)
    s.record_instance_intent(id, "local", "{\"node\":" + std::to_string(i) + "}");
  s.commit();
  return id;
}

}  // namespace

TEST_CASE("state: opening creates private directories, file, schema, WAL", "[state]") {
  TempDir tmp;
  std::string path = tmp.path + "/a/b/state.db";
  {
    StateStore s(path);
    CHECK(s.path() == path);
  }
  CHECK(mode_of(tmp.path + "/a") == 0700);
  CHECK(mode_of(tmp.path + "/a/b") == 0700);
  CHECK(mode_of(path) == 0600);
  CHECK(query(path, "PRAGMA journal_mode") == "wal");
  CHECK(query(path, "PRAGMA user_version") == "1");
  CHECK(query(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") ==
        "instances;offers_cache;pools");
  StateStore again(path);  // reopening an existing journal
  CHECK(again.live_pools().empty());
}

TEST_CASE("state: default path from SKYHOST_STATE_DIR, else HOME", "[state]") {
  const char* old_dir = std::getenv("SKYHOST_STATE_DIR");
  std::string saved = old_dir != nullptr ? old_dir : "";
  setenv("SKYHOST_STATE_DIR", "/x/y", 1);
  CHECK(StateStore::default_path() == "/x/y/state.db");
  unsetenv("SKYHOST_STATE_DIR");
  CHECK(StateStore::default_path() == std::string(std::getenv("HOME")) + "/.skyhost/state.db");
  if (old_dir != nullptr) setenv("SKYHOST_STATE_DIR", saved.c_str(), 1);
}

TEST_CASE("state: a pool's journal from intent to forgotten", "[state]") {
  TempDir tmp;
  StateStore s(tmp.path + "/state.db");
  double now = 1000;
  s.set_clock([&] { return now; });

  std::string id = s.record_pool(rec("", "train", "aws", "{\"region\":\"us-east-1\"}"));
  CHECK(id.rfind("sky-", 0) == 0);
  CHECK(id.size() == 12);
  int64_t a = s.record_instance_intent(id, "aws");
  int64_t b = s.record_instance_intent(id, "aws");
  auto pools = s.live_pools();
  REQUIRE(pools.size() == 1);
  CHECK(pools[0].state == "requested");
  CHECK(pools[0].info == "{\"region\":\"us-east-1\"}");
  CHECK(pools[0].created == 1000);
  CHECK(pools[0].live_instances == 2);

  now = 1010;
  s.mark_pool(id, "provisioning");
  s.mark_instance(a, "launched", std::string("i-aaa"));
  s.mark_instance(b, "failed");  // the create call failed: nothing exists
  s.mark_pool(id, "ready");
  auto insts = s.instances(id);
  REQUIRE(insts.size() == 2);
  CHECK(insts[0].instance_id == "i-aaa");
  CHECK(insts[0].state == "launched");
  CHECK_FALSE(insts[0].terminated.has_value());
  CHECK(insts[1].state == "failed");
  CHECK(insts[1].terminated == 1010);
  CHECK(s.pool(id)->state == "ready");
  CHECK(s.pool(id)->live_instances == 1);

  s.mark_pool(id, "draining");
  s.mark_instance(a, "terminated");
  auto left = s.finish_pool(id);
  CHECK(left.empty());
  CHECK(s.live_pools().empty());
  CHECK(s.pool(id)->state == "destroyed");
  s.forget_pool(id);
  CHECK_FALSE(s.pool(id).has_value());
  CHECK(query(s.path(), "SELECT count(*) FROM instances") == "0");
}

TEST_CASE("state: a destroyed pool with unconfirmed instances stays listed", "[state]") {
  TempDir tmp;
  StateStore s(tmp.path + "/state.db");
  std::string id = s.record_pool(rec("p-1", "job", "ssh"));
  int64_t k = s.record_instance_intent(id, "ssh");
  s.mark_instance(k, "running", std::string("host-1"), std::string("{\"ip\":\"10.0.0.1\"}"));
  auto left = s.finish_pool(id);
  REQUIRE(left.size() == 1);
  CHECK(left[0].instance_id == "host-1");
  CHECK(left[0].info == "{\"ip\":\"10.0.0.1\"}");
  auto live = s.live_pools();
  REQUIRE(live.size() == 1);  // an orphan for `skyhost down`
  CHECK(live[0].state == "destroyed");
  CHECK_THROWS_WITH(s.forget_pool(id), Catch::Contains("not confirmed terminated"));
  s.mark_instance(k, "terminated");
  CHECK(s.live_pools().empty());
}

TEST_CASE("state: misuse is refused and changes nothing", "[state]") {
  TempDir tmp;
  StateStore s(tmp.path + "/state.db");
  std::string id = s.record_pool(rec("p-1", "job", "local"));
  CHECK_THROWS(s.record_pool(rec("p-1", "again", "local")));
  CHECK_THROWS_WITH(s.record_instance_intent("nope", "local"), Catch::Contains("FOREIGN KEY"));
  CHECK_THROWS_WITH(s.mark_pool("nope", "ready"), Catch::Contains("no pool nope"));
  CHECK_THROWS_WITH(s.mark_instance(999, "running"), Catch::Contains("no instance 999"));
  int64_t k = s.record_instance_intent(id, "local");
  s.mark_instance(k, "terminated");
  CHECK_THROWS_WITH(s.mark_instance(k, "running"), Catch::Contains("already terminated"));
  CHECK(s.instances(id)[0].state == "terminated");
  CHECK_THROWS_WITH(s.forget_pool(id), Catch::Contains("not destroyed"));
  CHECK(s.transaction_depth() == 0);
  CHECK_THROWS_AS(s.commit(), std::logic_error);
}

TEST_CASE("state: offers cache with a time to live", "[state]") {
  TempDir tmp;
  StateStore s(tmp.path + "/state.db");
  double now = 5000;
  s.set_clock([&] { return now; });
  CHECK_FALSE(s.cache_get("aws", "us-east-1/H100", 60).has_value());
  s.cache_put("aws", "us-east-1/H100", "[1]");
  now = 5059.5;
  CHECK(s.cache_get("aws", "us-east-1/H100", 60) == "[1]");
  CHECK_FALSE(s.cache_get("gcp", "us-east-1/H100", 60).has_value());
  now = 5061;
  CHECK_FALSE(s.cache_get("aws", "us-east-1/H100", 60).has_value());
  CHECK(s.cache_get("aws", "us-east-1/H100", 3600) == "[1]");  // TTL is the reader's choice
  s.cache_put("aws", "us-east-1/H100", "[2]");                 // replaces, restamps
  CHECK(s.cache_get("aws", "us-east-1/H100", 1) == "[2]");
  s.cache_put("aws", "old", "[]");
  now = 9000;
  s.cache_put("aws", "new", "[]");
  CHECK(s.cache_prune(100) == 2);
  CHECK(s.cache_get("aws", "new", 0) == "[]");
}

TEST_CASE("state: transactions are all or nothing, and invisible until committed", "[state]") {
  TempDir tmp;
  std::string path = tmp.path + "/state.db";
  StateStore a(path);
  StateStore b(path);  // a second connection: another skyhost running `ls`
  a.begin();
  std::string id = a.record_pool(rec("p-1", "job", "local"));
  a.record_instance_intent(id, "local");
  CHECK(b.live_pools().empty());  // mid-way, the reader sees the state before
  a.begin();                      // nested: a savepoint
  a.record_instance_intent(id, "local");
  a.rollback();  // undoes only the inner part
  a.commit();
  REQUIRE(b.live_pools().size() == 1);
  CHECK(b.instances(id).size() == 1);

  a.begin();
  a.mark_pool(id, "ready");
  a.rollback();
  CHECK(b.pool(id)->state == "requested");

  {
    StateStore c(path);  // closed with a transaction open: nothing of it remains
    c.begin();
    c.record_pool(rec("p-2", "job", "local"));
  }
  CHECK_FALSE(b.pool("p-2").has_value());
  CHECK(query(path, "PRAGMA integrity_check") == "ok");
}

TEST_CASE("state: a writer killed at any point leaves whole transactions only", "[state]") {
  TempDir tmp;
  std::string path = tmp.path + "/state.db";
  { StateStore init(path); }
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      StateStore s(path);
      for (;;) pool_with_intents(s, 4);
    } catch (...) {
    }
    _exit(1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));

  StateStore s(path);
  auto pools = s.live_pools();
  INFO(pools.size() << " pools written before the kill");
  CHECK(pools.size() > 0);
  for (const auto& p : pools) CHECK(p.live_instances == 4);
  CHECK(query(path, "SELECT count(*) FROM instances WHERE pool_id NOT IN (SELECT id FROM pools)") ==
        "0");
  CHECK(query(path, "PRAGMA integrity_check") == "ok");
  pool_with_intents(s, 4);  // and the journal is writable again
}

TEST_CASE("state: readers run beside a writer and see whole pools", "[state]") {
  TempDir tmp;
  std::string path = tmp.path + "/state.db";
  { StateStore init(path); }
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, torn{0}, errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; r++) {
    readers.emplace_back([&] {
      try {
        StateStore s(path);
        while (!stop.load()) {
          for (const auto& p : s.live_pools()) {
            if (p.live_instances != 3) torn++;
          }
          reads++;
        }
      } catch (...) {
        errors++;
      }
    });
  }
  while (reads < 3 && errors == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    StateStore w(path);
    for (int i = 0; i < 60; i++) pool_with_intents(w, 3);
  }
  int during = reads;
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(errors == 0);
  CHECK(torn == 0);
  CHECK(during > 3);
  StateStore check(path);
  CHECK(check.live_pools().size() == 60);
}
