#include "host/state/state.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "host/state/state_stmt.hpp"

namespace skyhost {

namespace {

constexpr int kSchemaVersion = 1;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS pools(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  provider TEXT NOT NULL,
  created REAL NOT NULL,
  state TEXT NOT NULL,
  info TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS instances(
  key INTEGER PRIMARY KEY,
  pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
  provider TEXT NOT NULL,
  instance_id TEXT,
  state TEXT NOT NULL,
  created REAL NOT NULL,
  terminated REAL,
  info TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS instances_by_pool ON instances(pool_id);
CREATE TABLE IF NOT EXISTS offers_cache(
  provider TEXT NOT NULL,
  key TEXT NOT NULL,
  json TEXT NOT NULL,
  fetched_at REAL NOT NULL,
  PRIMARY KEY(provider, key)) WITHOUT ROWID;
)sql";

/// mkdir -p, each directory it creates with mode 0700 (the journal names machines and pools).
void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir + " exists and is not a directory");
    return;
  }
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_dirs(dir.substr(0, slash));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
  }
}

double wall_clock() {
  auto t = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(t).count();
}

}  // namespace

std::string StateStore::default_path() {
  const char* dir = std::getenv("SKYHOST_STATE_DIR");
  if (dir != nullptr && *dir != '\0') return std::string(dir) + "/state.db";
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    const passwd* pw = getpwuid(getuid());
    home = pw != nullptr ? pw->pw_dir : "/tmp";
  }
  return std::string(home) + "/.skyhost/state.db";
}

StateStore::StateStore(const std::string& path) : path_(path), clock_(wall_clock) {
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) make_dirs(path.substr(0, slash));
  // Create the file ourselves so that it is private from the start; SQLite gives the -wal and
  // -shm files the same mode.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  ::close(fd);
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string err = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + path + ": " + err);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    // FULL: a committed intent survives a power cut, or a machine could run unrecorded.
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    create_schema();
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

StateStore::~StateStore() {
  if (depth_ > 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  for (auto& [sql, s] : stmts_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

void StateStore::fail(const std::string& what) {
  throw std::runtime_error(path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

void StateStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = path_ + ": " + (err != nullptr ? err : "error");
    sqlite3_free(err);
    throw std::runtime_error(msg);
  }
}

StateStore::Stmt StateStore::prepare(const char* sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
      fail("cannot prepare a statement");
    }
    it = stmts_.emplace(sql, s).first;
  }
  return Stmt(*this, it->second);
}

void StateStore::create_schema() {
  auto version = [this] {
    Stmt q = prepare("PRAGMA user_version");
    return q.step() ? static_cast<int>(q.integer(0)) : 0;
  };
  // A journal already set up is opened without the write lock, so readers never queue for it.
  if (version() == kSchemaVersion) return;
  Tx tx(*this);
  if (version() > kSchemaVersion) {
    throw std::runtime_error(path_ + " was written by a newer skyhost (schema " +
                             std::to_string(version()) + ")");
  }
  exec(kSchema);
  exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  tx.commit();
}

void StateStore::begin() {
  // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then writes
  // can fail with SQLITE_BUSY without waiting for busy_timeout.
  if (depth_ == 0) {
    exec("BEGIN IMMEDIATE");
  } else {
    exec(("SAVEPOINT s" + std::to_string(depth_)).c_str());
  }
  depth_++;
}

void StateStore::commit() {
  if (depth_ == 0) throw std::logic_error("commit without begin");
  depth_--;
  exec(depth_ == 0 ? "COMMIT" : ("RELEASE s" + std::to_string(depth_)).c_str());
}

void StateStore::rollback() {
  if (depth_ == 0) throw std::logic_error("rollback without begin");
  depth_--;
  if (depth_ == 0) {
    exec("ROLLBACK");
  } else {
    std::string sp = "s" + std::to_string(depth_);
    exec(("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str());
  }
}

}  // namespace skyhost
