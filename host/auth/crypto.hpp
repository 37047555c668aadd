// Signatures that cloud credentials need: RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3),
// which a Google service-account key signs its token requests with (RFC 7523).
#pragma once

#include <string>
#include <string_view>

namespace skyhost::auth {

/// What sign_rs256 gives: the signature bytes, or an empty signature and a message saying why.
struct Signature {
  std::string bytes;
  std::string error;
  bool ok() const { return error.empty(); }
};

/// Signs `data` with the RSA private key in `pem` (PKCS#8 "BEGIN PRIVATE KEY", as service-account
/// JSON holds it, or PKCS#1 "BEGIN RSA PRIVATE KEY"). Refuses encrypted keys, keys that are not
/// RSA and RSA keys under 2048 bits. Deterministic: the same key and data give the same bytes.
Signature sign_rs256(std::string_view pem, std::string_view data);

/// Checks an RS256 signature of `data` under the public key in `pem` ("BEGIN PUBLIC KEY") or the
/// public half of a private key. False for a bad signature and for an unreadable key.
bool verify_rs256(std::string_view pem, std::string_view data, std::string_view signature);

}  // namespace skyhost::auth
