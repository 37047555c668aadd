// host/auth/crypto.cpp: RS256 signatures — what OpenSSL verifies, deterministic, and the keys it
// refuses (not PEM, not RSA, too short, encrypted). tests/gcp/test_auth.py checks the same
// signatures against python3-jwt.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "host/auth/crypto.hpp"

using skyhost::auth::sign_rs256;
using skyhost::auth::verify_rs256;

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

/// PEM text of `key`: the private key as PKCS#8 (optionally encrypted), or the public key.
std::string pem_of(EVP_PKEY* key, bool public_only, const char* passphrase = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (public_only) {
    PEM_write_bio_PUBKEY(bio, key);
  } else if (passphrase != nullptr) {
    PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_128_cbc(), passphrase,
                                  static_cast<int>(std::char_traits<char>::length(passphrase)),
                                  nullptr, nullptr);
  } else {
    PEM_write_bio_PKCS8PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

const KeyPtr& rsa2048() {
  static KeyPtr key(EVP_RSA_gen(2048));
  return key;
}

}  // namespace

TEST_CASE("sign_rs256: OpenSSL verifies the signature; it is deterministic", "[crypto]") {
  std::string priv = pem_of(rsa2048().get(), false);
  std::string pub = pem_of(rsa2048().get(), true);
  const std::string data = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0";
  auto a = sign_rs256(priv, data);
  REQUIRE(a.ok());
  CHECK(a.bytes.size() == 256);
  CHECK(sign_rs256(priv, data).bytes == a.bytes);
  CHECK(verify_rs256(pub, data, a.bytes));
  CHECK(verify_rs256(priv, data, a.bytes));
  CHECK_FALSE(verify_rs256(pub, data + "x", a.bytes));
  std::string tampered = a.bytes;
  tampered[10] = static_cast<char>(tampered[10] ^ 1);
  CHECK_FALSE(verify_rs256(pub, data, tampered));
  CHECK_FALSE(verify_rs256("not a key", data, a.bytes));
}

TEST_CASE("sign_rs256: keys it refuses, with the reason", "[crypto]") {
  auto bad = sign_rs256("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "x");
  CHECK_FALSE(bad.ok());
  CHECK(bad.error.find("not a readable PEM private key") != std::string::npos);
  CHECK(bad.bytes.empty());

  CHECK(sign_rs256("", "x").error.find("not a readable PEM") != std::string::npos);

  KeyPtr ec(EVP_EC_gen("P-256"));
  REQUIRE(ec);
  CHECK(sign_rs256(pem_of(ec.get(), false), "x").error == "the key is not an RSA key");

  KeyPtr small(EVP_RSA_gen(1024));
  REQUIRE(small);
  CHECK(sign_rs256(pem_of(small.get(), false), "x").error.find("1024 bits") != std::string::npos);

  // An encrypted key is refused without prompting for a passphrase.
  auto enc = sign_rs256(pem_of(rsa2048().get(), false, "secret"), "x");
  CHECK_FALSE(enc.ok());
  CHECK(enc.error.find("not a readable PEM private key") != std::string::npos);
}
