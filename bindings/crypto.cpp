// skyhost.crypto: the signatures cloud credentials need (host/auth/crypto.cpp).
//
//   crypto.sign_rs256(pem, data) → signature bytes | nil, err
//   crypto.verify_rs256(pem, data, signature) → boolean
//
// The key's text is never part of a message.
#include "host/auth/crypto.hpp"

#include <lua.hpp>
#include <string_view>

namespace skyhost {

namespace {

std::string_view check_view(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, idx, &len);
  return {s, len};
}

/// crypto.sign_rs256(pem, data) → RSASSA-PKCS1-v1_5 SHA-256 signature, or nil, reason.
int l_crypto_sign_rs256(lua_State* L) {
  std::string_view pem = check_view(L, 1);
  std::string_view data = check_view(L, 2);
  auth::Signature sig = auth::sign_rs256(pem, data);
  if (!sig.ok()) {
    lua_pushnil(L);
    lua_pushlstring(L, sig.error.data(), sig.error.size());  // [pem, data, nil, err]
    return 2;
  }
  lua_pushlstring(L, sig.bytes.data(), sig.bytes.size());  // [pem, data, sig]
  return 1;
}

/// crypto.verify_rs256(pem, data, signature) → true if the signature holds.
int l_crypto_verify_rs256(lua_State* L) {
  bool ok = auth::verify_rs256(check_view(L, 1), check_view(L, 2), check_view(L, 3));
  lua_pushboolean(L, ok);  // [pem, data, sig, ok]
  return 1;
}

const luaL_Reg kCrypto[] = {
    {"sign_rs256", l_crypto_sign_rs256},
    {"verify_rs256", l_crypto_verify_rs256},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_crypto(lua_State* L) {
  luaL_newlib(L, skyhost::kCrypto);
  return 1;
}
