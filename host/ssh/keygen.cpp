#include "host/ssh/keygen.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>

#include "host/ssh/crypto_util.hpp"

namespace skyhost::ssh {
namespace {

constexpr std::string_view kKeyType = "ssh-ed25519";
constexpr std::string_view kPemBegin = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
constexpr std::string_view kPemEnd = "-----END OPENSSH PRIVATE KEY-----\n";

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct CtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// A std::string that is wiped when it goes away (it holds private key bytes).
struct Secret {
  std::string bytes;
  ~Secret() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void put_string(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("ed25519 key generation: ") + what);
}

Pkey new_key() {
  std::unique_ptr<EVP_PKEY_CTX, CtxDeleter> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) fail("EVP_PKEY_keygen_init failed");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) fail("EVP_PKEY_keygen failed");
  return Pkey(raw);
}

std::string raw_public(EVP_PKEY* key) {
  std::string pub(32, '\0');
  size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(pub.data()), &len) != 1 ||
      len != 32) {
    fail("cannot read the public key");
  }
  return pub;
}

void raw_private(EVP_PKEY* key, Secret& seed) {
  seed.bytes.assign(32, '\0');
  size_t len = seed.bytes.size();
  if (EVP_PKEY_get_raw_private_key(key, reinterpret_cast<unsigned char*>(seed.bytes.data()),
                                   &len) != 1 ||
      len != 32) {
    fail("cannot read the private key");
  }
}

// The body of an "openssh-key-v1" file (PROTOCOL.key in OpenSSH), unencrypted.
void openssh_key_v1(std::string_view pub, std::string_view seed, std::string_view comment,
                    Secret& out) {
  std::string pub_blob;
  put_string(pub_blob, kKeyType);
  put_string(pub_blob, pub);

  Secret priv;  // the "private section": two equal check words, key, comment, padding
  uint32_t check = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&check), sizeof check) != 1) fail("RAND_bytes");
  put_u32(priv.bytes, check);
  put_u32(priv.bytes, check);
  put_string(priv.bytes, kKeyType);
  put_string(priv.bytes, pub);
  put_u32(priv.bytes, 64);  // ed25519 "private key" is seed || public key
  priv.bytes.append(seed);
  priv.bytes.append(pub);
  put_string(priv.bytes, comment);
  for (char pad = 1; priv.bytes.size() % 8 != 0; ++pad) priv.bytes.push_back(pad);

  out.bytes.append("openssh-key-v1");
  out.bytes.push_back('\0');
  put_string(out.bytes, "none");  // cipher
  put_string(out.bytes, "none");  // kdf
  put_string(out.bytes, "");      // kdf options
  put_u32(out.bytes, 1);          // number of keys
  put_string(out.bytes, pub_blob);
  put_string(out.bytes, priv.bytes);
}

std::string pem_wrap(std::string_view b64) {
  std::string out(kPemBegin);
  for (size_t i = 0; i < b64.size(); i += 70) {
    out.append(b64.substr(i, 70));
    out.push_back('\n');
  }
  out.append(kPemEnd);
  return out;
}

}  // namespace

KeyPair generate_ed25519(std::string_view comment) {
  Pkey key = new_key();
  std::string pub = raw_public(key.get());
  Secret seed;
  raw_private(key.get(), seed);

  std::string pub_blob;
  put_string(pub_blob, kKeyType);
  put_string(pub_blob, pub);

  Secret body;
  openssh_key_v1(pub, seed.bytes, comment, body);
  Secret b64{base64_encode(body.bytes)};

  KeyPair kp;
  kp.public_key = std::string(kKeyType) + " " + base64_encode(pub_blob);
  if (!comment.empty()) kp.public_key += " " + std::string(comment);
  kp.private_key = pem_wrap(b64.bytes);
  kp.fingerprint = fingerprint_sha256(pub_blob);
  return kp;
}

namespace {

// Reads the SSH wire encoding (uint32 big-endian lengths) of an openssh-key-v1 body.
struct Reader {
  std::string_view rest;
  bool ok = true;
  uint32_t u32() {
    if (rest.size() < 4) return ok = false, 0;
    auto b = reinterpret_cast<const unsigned char*>(rest.data());
    rest.remove_prefix(4);
    return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | uint32_t(b[3]);
  }
  std::string_view str() {
    uint32_t n = u32();
    if (!ok || rest.size() < n) return ok = false, std::string_view();
    std::string_view s = rest.substr(0, n);
    rest.remove_prefix(n);
    return s;
  }
};

// Body of an "-----BEGIN OPENSSH PRIVATE KEY-----" text, positioned after the key count.
std::optional<std::string> openssh_body(std::string_view pem) {
  auto begin = pem.find(kPemBegin);
  auto end = pem.find("-----END OPENSSH PRIVATE KEY-----");
  if (begin == std::string_view::npos || end == std::string_view::npos || end < begin) {
    return std::nullopt;
  }
  std::string b64;
  for (char c : pem.substr(begin + kPemBegin.size(), end - begin - kPemBegin.size())) {
    if (c != '\n' && c != '\r' && c != ' ') b64.push_back(c);
  }
  return base64_decode(b64);
}

}  // namespace

std::optional<std::string> openssh_public_blob(std::string_view private_key) {
  auto body = openssh_body(private_key);
  if (!body) return std::nullopt;
  Secret raw{std::move(*body)};
  Reader r{raw.bytes};
  if (r.rest.substr(0, 15) != std::string_view("openssh-key-v1\0", 15)) return std::nullopt;
  r.rest.remove_prefix(15);
  r.str();  // cipher
  r.str();  // kdf
  r.str();  // kdf options
  if (r.u32() != 1 || !r.ok) return std::nullopt;
  std::string_view pub = r.str();
  if (!r.ok) return std::nullopt;
  return std::string(pub);
}

std::string ed25519_private_key_pkcs8(const KeyPair& kp) {
  auto body = openssh_body(kp.private_key);
  if (!body) fail("not an OpenSSH private key");
  Secret raw{std::move(*body)};
  Reader r{raw.bytes};
  if (r.rest.substr(0, 15) != std::string_view("openssh-key-v1\0", 15)) fail("bad magic");
  r.rest.remove_prefix(15);
  if (r.str() != "none") fail("encrypted keys are not supported");
  r.str();  // kdf
  r.str();  // kdf options
  if (r.u32() != 1) fail("expected exactly one key");
  r.str();  // public blob
  Reader priv{r.str()};
  priv.u32();  // check words
  priv.u32();
  if (priv.str() != kKeyType) fail("not an ed25519 key");
  priv.str();  // public key
  std::string_view seed = priv.str();
  if (!r.ok || !priv.ok || seed.size() != 64) fail("malformed OpenSSH private key");
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                        reinterpret_cast<const unsigned char*>(seed.data()), 32));
  if (!key) fail("EVP_PKEY_new_raw_private_key failed");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("PEM_write_bio_PrivateKey failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<size_t>(len));
  OPENSSL_cleanse(data, static_cast<size_t>(len));
  return out;
}

}  // namespace skyhost::ssh
