// skyhost.http: host/http's client as Lua sees it — start a request, and after its wait id
// completed (stdlib/sky/internal/sched.lua awaits it), fetch the response. Option checking and the
// shape users meet are stdlib/sky/http.lua.
#include "host/http/http.hpp"

#include <lua.hpp>
#include <memory>

#include "bindings/context.hpp"

namespace skyhost {

namespace {

/// The context's client, created on first use.
HttpClient& client(lua_State* L) {
  Context& ctx = context(L);
  if (!ctx.http) ctx.http = std::make_unique<HttpClient>(ctx.loop);
  return *ctx.http;
}

/// Reads string field `key` of the table at 1 into `out` if present.
void opt_string(lua_State* L, const char* key, std::string& out) {
  lua_getfield(L, 1, key);  // [req, v]
  if (!lua_isnil(L, -1)) {
    size_t len = 0;
    const char* s = lua_tolstring(L, -1, &len);
    if (s == nullptr || lua_type(L, -1) != LUA_TSTRING) {
      luaL_error(L, "http.start: field '%s' must be a string", key);
    }
    out.assign(s, len);
  }
  lua_pop(L, 1);  // [req]
}

/// Reads headers = {{name, value}, ...} of the table at 1.
void read_headers(lua_State* L, HttpHeaders& out) {
  if (lua_getfield(L, 1, "headers") == LUA_TNIL) {  // [req, headers]
    lua_pop(L, 1);
    return;
  }
  luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a list of {name, value}");
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);  // [req, headers, pair]
    luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a list of {name, value}");
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);  // [req, headers, pair, name, value]
    luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING, 1,
                  "header names and values must be strings");
    size_t nl = 0, vl = 0;
    const char* name = lua_tolstring(L, -2, &nl);
    const char* value = lua_tolstring(L, -1, &vl);
    out.emplace_back(std::string(name, nl), std::string(value, vl));
    lua_pop(L, 3);  // [req, headers]
  }
  lua_pop(L, 1);  // [req]
}

/// http.start{method=, url=, headers={{name, value}...}, body=, timeout_ms=, follow=,
///             aws_sigv4=, username=, password=} → wait id
int l_http_start(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  HttpRequest r;
  opt_string(L, "method", r.method);
  opt_string(L, "url", r.url);
  opt_string(L, "body", r.body);
  read_headers(L, r.headers);
  opt_string(L, "aws_sigv4", r.aws_sigv4);
  opt_string(L, "username", r.username);
  opt_string(L, "password", r.password);
  lua_getfield(L, 1, "timeout_ms");  // [req, timeout]
  if (!lua_isnil(L, -1)) {
    lua_Integer ms = luaL_checkinteger(L, -1);
    luaL_argcheck(L, ms > 0, 1, "timeout_ms must be positive");
    r.timeout_ms = static_cast<uint64_t>(ms);
  }
  lua_getfield(L, 1, "follow");  // [req, timeout, follow]
  if (!lua_isnil(L, -1)) r.follow_redirects = lua_toboolean(L, -1);
  lua_pop(L, 2);  // [req]
  return guarded(L, [&] {
    lua_pushinteger(L, static_cast<lua_Integer>(client(L).request(std::move(r))));
    return 1;
  });
}

/// http.result(id) → {status=, headers={{name, value}...}, body=, url=} | nil, err, kind.
/// Only after the id's wait completed; the response is handed out once.
int l_http_result(lua_State* L) {
  auto id = static_cast<WaitId>(luaL_checkinteger(L, 1));
  return guarded(L, [&] {
    std::optional<HttpResponse> r = client(L).take(id);
    if (!r) throw std::logic_error("http request " + std::to_string(id) + " is still in flight");
    if (!r->ok) {
      lua_pushnil(L);
      lua_pushlstring(L, r->error.data(), r->error.size());
      lua_pushstring(L, r->error_kind.c_str());  // [nil, err, kind]
      return 3;
    }
    lua_createtable(L, 0, 4);  // [resp]
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->body.data(), r->body.size());
    lua_setfield(L, -2, "body");
    lua_pushlstring(L, r->effective_url.data(), r->effective_url.size());
    lua_setfield(L, -2, "url");
    lua_createtable(L, static_cast<int>(r->headers.size()), 0);  // [resp, headers]
    lua_Integer i = 0;
    for (const auto& [name, value] : r->headers) {
      lua_createtable(L, 2, 0);  // [resp, headers, pair]
      lua_pushlstring(L, name.data(), name.size());
      lua_rawseti(L, -2, 1);
      lua_pushlstring(L, value.data(), value.size());
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, -2, ++i);  // [resp, headers]
    }
    lua_setfield(L, -2, "headers");  // [resp]
    return 1;
  });
}

/// http.cancel(id) → whether the id was known. Aborts the transfer or drops its response.
int l_http_cancel(lua_State* L) {
  auto id = static_cast<WaitId>(luaL_checkinteger(L, 1));
  Context& ctx = context(L);
  lua_pushboolean(L, ctx.http && ctx.http->cancel(id));
  return 1;
}

/// http.stats() → transfers in flight, responses not fetched yet (leak checks in tests).
int l_http_stats(lua_State* L) {
  Context& ctx = context(L);
  lua_pushinteger(L, ctx.http ? static_cast<lua_Integer>(ctx.http->in_flight()) : 0);
  lua_pushinteger(L, ctx.http ? static_cast<lua_Integer>(ctx.http->unclaimed()) : 0);
  return 2;
}

const luaL_Reg kHttp[] = {
    {"start", l_http_start}, {"result", l_http_result}, {"cancel", l_http_cancel},
    {"stats", l_http_stats}, {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_http(lua_State* L) {
  luaL_newlib(L, skyhost::kHttp);
  return 1;
}
