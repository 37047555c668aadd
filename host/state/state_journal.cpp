// The journal's rows: pools, instances and the offers cache (host/state/state.hpp).
#include <sqlite3.h>

#include <cstdio>
#include <random>
#include <stdexcept>

#include "host/state/state.hpp"
#include "host/state/state_stmt.hpp"

namespace skyhost {

namespace {

bool is_final(const std::string& state) {
  return state == "terminated" || state == "failed";
}

std::string random_pool_id() {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist;
  char buf[16];
  std::snprintf(buf, sizeof buf, "sky-%08x", dist(rd));
  return buf;
}

}  // namespace

std::string StateStore::record_pool(const PoolRecord& p) {
  std::string id = p.id.empty() ? random_pool_id() : p.id;
  prepare("INSERT INTO pools(id, name, provider, created, state, info) VALUES(?,?,?,?,?,?)")
      .bind(1, id)
      .bind(2, p.name)
      .bind(3, p.provider)
      .bind(4, clock_())
      .bind(5, std::string("requested"))
      .bind(6, p.info)
      .run();
  return id;
}

void StateStore::mark_pool(const std::string& id, const std::string& state) {
  prepare("UPDATE pools SET state = ? WHERE id = ?").bind(1, state).bind(2, id).run();
  if (sqlite3_changes(db_) == 0) throw std::runtime_error("no pool " + id + " in " + path_);
}

int64_t StateStore::record_instance_intent(const std::string& pool_id, const std::string& provider,
                                           const std::string& info) {
  // The foreign key rejects an unknown pool.
  prepare("INSERT INTO instances(pool_id, provider, state, created, info) VALUES(?,?,'intent',?,?)")
      .bind(1, pool_id)
      .bind(2, provider)
      .bind(3, clock_())
      .bind(4, info)
      .run();
  return sqlite3_last_insert_rowid(db_);
}

void StateStore::mark_instance(int64_t key, const std::string& state,
                               const std::optional<std::string>& instance_id,
                               const std::optional<std::string>& info) {
  Tx tx(*this);
  std::string old;
  {
    Stmt q = prepare("SELECT state FROM instances WHERE key = ?");
    q.bind(1, key);
    if (!q.step()) throw std::runtime_error("no instance " + std::to_string(key) + " in " + path_);
    old = q.text(0);
  }
  if (is_final(old) && !is_final(state)) {
    throw std::runtime_error("instance " + std::to_string(key) + " is already " + old +
                             ", it cannot become " + state);
  }
  prepare(
      "UPDATE instances SET state = ?1, instance_id = coalesce(?2, instance_id),"
      " info = coalesce(?3, info),"
      " terminated = CASE WHEN ?4 THEN coalesce(terminated, ?5) ELSE NULL END WHERE key = ?6")
      .bind(1, state)
      .bind(2, instance_id)
      .bind(3, info)
      .bind(4, static_cast<int64_t>(is_final(state)))
      .bind(5, clock_())
      .bind(6, key)
      .run();
  tx.commit();
}

std::vector<InstanceRecord> StateStore::finish_pool(const std::string& id) {
  Tx tx(*this);
  mark_pool(id, "destroyed");
  std::vector<InstanceRecord> live;
  for (auto& i : instances(id)) {
    if (!i.terminated) live.push_back(std::move(i));
  }
  tx.commit();
  return live;
}

void StateStore::forget_pool(const std::string& id) {
  Tx tx(*this);
  auto p = pool(id);
  if (!p) throw std::runtime_error("no pool " + id + " in " + path_);
  if (p->state != "destroyed") throw std::runtime_error("pool " + id + " is not destroyed");
  for (const auto& i : instances(id)) {
    if (!i.terminated) {
      throw std::runtime_error("pool " + id + " has an instance not confirmed terminated");
    }
  }
  prepare("DELETE FROM pools WHERE id = ?").bind(1, id).run();  // cascades to its instances
  tx.commit();
}

namespace {
const char* kPoolColumns =
    "SELECT p.id, p.name, p.provider, p.created, p.state, p.info,"
    " (SELECT count(*) FROM instances i WHERE i.pool_id = p.id AND i.terminated IS NULL)"
    " FROM pools p ";

PoolRecord read_pool(StateStore::Stmt& q) {
  return PoolRecord{q.text(0),
                    q.text(1),
                    q.text(2),
                    q.real(3),
                    q.text(4),
                    q.text(5),
                    static_cast<int>(q.integer(6))};
}
}  // namespace

std::vector<PoolRecord> StateStore::live_pools() {
  static const std::string sql = std::string(kPoolColumns) +
                                 "WHERE p.state <> 'destroyed' OR EXISTS (SELECT 1 FROM instances"
                                 " i WHERE i.pool_id = p.id AND i.terminated IS NULL)"
                                 " ORDER BY p.created, p.id";
  std::vector<PoolRecord> out;
  Stmt q = prepare(sql.c_str());
  while (q.step()) out.push_back(read_pool(q));
  return out;
}

std::optional<PoolRecord> StateStore::pool(const std::string& id) {
  static const std::string sql = std::string(kPoolColumns) + "WHERE p.id = ?";
  Stmt q = prepare(sql.c_str());
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_pool(q);
}

std::vector<InstanceRecord> StateStore::instances(const std::string& pool_id) {
  Stmt q = prepare(
      "SELECT key, pool_id, provider, instance_id, state, created, terminated, info"
      " FROM instances WHERE pool_id = ? ORDER BY key");
  q.bind(1, pool_id);
  std::vector<InstanceRecord> out;
  while (q.step()) {
    InstanceRecord r{q.integer(0), q.text(1), q.text(2),    q.text(3),
                     q.text(4),    q.real(5), std::nullopt, q.text(7)};
    if (!q.is_null(6)) r.terminated = q.real(6);
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<std::string> StateStore::cache_get(const std::string& provider,
                                                 const std::string& key, double ttl_s) {
  Stmt q =
      prepare("SELECT json FROM offers_cache WHERE provider = ? AND key = ? AND fetched_at >= ?");
  q.bind(1, provider).bind(2, key).bind(3, clock_() - ttl_s);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

void StateStore::cache_put(const std::string& provider, const std::string& key,
                           const std::string& json) {
  prepare("INSERT OR REPLACE INTO offers_cache(provider, key, json, fetched_at) VALUES(?,?,?,?)")
      .bind(1, provider)
      .bind(2, key)
      .bind(3, json)
      .bind(4, clock_())
      .run();
}

int StateStore::cache_prune(double age_s) {
  prepare("DELETE FROM offers_cache WHERE fetched_at < ?").bind(1, clock_() - age_s).run();
  return sqlite3_changes(db_);
}

}  // namespace skyhost
