// Private to host/state*.cpp: the prepared-statement wrapper and the transaction guard.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>

#include "host/state/state.hpp"

namespace skyhost {

/// A cached prepared statement, reset when the wrapper goes out of scope.
class StateStore::Stmt {
 public:
  Stmt(StateStore& store, sqlite3_stmt* s) : store_(store), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(s_, i, v)), *this; }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)), *this; }
  Stmt& bind(int i, const std::optional<std::string>& v) {
    if (v) return bind(i, *v);
    return check(sqlite3_bind_null(s_, i)), *this;
  }

  /// True while there is a row to read.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) store_.fail("query failed");
    return false;
  }
  void run() { step(); }

  std::string text(int col) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p != nullptr ? std::string(p, sqlite3_column_bytes(s_, col)) : std::string();
  }
  double real(int col) { return sqlite3_column_double(s_, col); }
  int64_t integer(int col) { return sqlite3_column_int64(s_, col); }
  bool is_null(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) store_.fail("cannot bind a parameter");
  }
  StateStore& store_;
  sqlite3_stmt* s_;
};

/// One transaction around a multi-statement call, rolled back if the call throws.
class Tx {
 public:
  explicit Tx(StateStore& s) : s_(s) { s_.begin(); }
  ~Tx() {
    if (done_) return;
    try {
      s_.rollback();
    } catch (...) {  // the connection is gone; SQLite has rolled back already
    }
  }
  void commit() {
    s_.commit();
    done_ = true;
  }

 private:
  StateStore& s_;
  bool done_ = false;
};

}  // namespace skyhost
