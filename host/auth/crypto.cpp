// RS256 with OpenSSL 3's EVP interface: the key is read from memory, never from a file path, and
// no passphrase callback can prompt on the terminal (an encrypted key is an error).
#include "host/auth/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <climits>
#include <memory>

namespace skyhost::auth {

namespace {

constexpr int kMinRsaBits = 2048;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

/// A passphrase callback that gives none: OpenSSL's default would prompt on the terminal.
int no_passphrase(char*, int, int, void*) {
  return -1;
}

/// The last OpenSSL error as text (and the queue cleared), or `fallback` if there is none.
std::string openssl_error(const char* fallback) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::unique_ptr<BIO, BioFree> memory_bio(std::string_view pem) {
  if (pem.size() > INT_MAX) return nullptr;
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

Signature sign_rs256(std::string_view pem, std::string_view data) {
  ERR_clear_error();
  auto bio = memory_bio(pem);
  if (!bio) return {{}, "key too large or out of memory"};
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    return {{}, "not a readable PEM private key (" + openssl_error("no key found") + ")"};
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return {{}, "the key is not an RSA key"};
  if (EVP_PKEY_get_bits(key.get()) < kMinRsaBits) {
    return {{},
            "the RSA key has " + std::to_string(EVP_PKEY_get_bits(key.get())) +
                " bits; RS256 needs at least 2048"};
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, nullptr, 0) != 1) {
    return {{}, openssl_error("signing failed")};
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return {{}, openssl_error("signing failed")};
  }
  sig.resize(len);
  return {std::move(sig), {}};
}

bool verify_rs256(std::string_view pem, std::string_view data, std::string_view signature) {
  ERR_clear_error();
  auto bio = memory_bio(pem);
  if (!bio) return false;
  KeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    bio = memory_bio(pem);
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  }
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    ERR_clear_error();
    return false;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                             data.size()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace skyhost::auth
