// Ephemeral per-pool SSH key pairs, generated in process with OpenSSL (no ssh-keygen).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace skyhost::ssh {

/// An SSH key pair in the two text forms OpenSSH and libssh2 read.
struct KeyPair {
  /// One authorized_keys line without newline: "ssh-ed25519 AAAA... comment".
  std::string public_key;
  /// Unencrypted private key in OpenSSH's "openssh-key-v1" PEM form, which libssh2 1.10
  /// (OpenSSL backend) reads with libssh2_userauth_publickey_frommemory and ssh/sshd read too.
  std::string private_key;
  /// "SHA256:..." fingerprint of the public key, as ssh-keygen -l prints it.
  std::string fingerprint;
};

/// Generates a fresh ed25519 key pair. `comment` ends up in both forms (e.g. "skyhost-pool-42").
/// Throws std::runtime_error if OpenSSL fails.
KeyPair generate_ed25519(std::string_view comment);

/// Same private key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). Debian's libssh2 1.10 with
/// OpenSSL 3 accepts this form from memory too, but OpenSSH 9.2 (ssh, ssh-keygen) does not read
/// ed25519 keys in it, so the OpenSSH form is the one to hand out.
std::string ed25519_private_key_pkcs8(const KeyPair& key);

/// The public key blob stored in clear in an OpenSSH private key text ("openssh-key-v1",
/// encrypted or not); nullopt for other formats. Used to name the key in auth errors.
std::optional<std::string> openssh_public_blob(std::string_view private_key);

}  // namespace skyhost::ssh
