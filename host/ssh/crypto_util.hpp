// Small OpenSSL-backed helpers shared by the SSH transport: base64, key fingerprints and the
// HMAC-SHA1 that OpenSSH uses for hashed known_hosts names.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace skyhost::ssh {

/// Standard base64 (with padding, no line breaks).
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; whitespace is not allowed. nullopt on malformed input.
std::optional<std::string> base64_decode(std::string_view text);

/// "SHA256:<unpadded base64>" of a public key blob, as `ssh-keygen -l` prints it.
std::string fingerprint_sha256(std::string_view key_blob);

/// HMAC-SHA1(key, data): OpenSSH's hashed known_hosts entries are |1|salt|HMAC(salt, host).
std::string hmac_sha1(std::string_view key, std::string_view data);

}  // namespace skyhost::ssh
