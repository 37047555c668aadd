#include "host/transfer/transfer_util.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

namespace skyhost::transfer_detail {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Digest::Digest() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw std::bad_alloc();
  }
}

Digest::~Digest() {
  EVP_MD_CTX_free(ctx_);
}

std::string Digest::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, md, &n);
  std::string out;
  char b[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    out += b;
  }
  return out;
}

std::string remote_sha256(const std::string& path) {
  std::string q = quote(path);
  return "{ openssl dgst -sha256 -r " + q + " 2>/dev/null || sha256sum " + q + "; }";
}

std::string digest_of(const std::string& out) {
  std::string word = out.substr(0, out.find_first_of(" \t\n"));
  bool hex = word.size() == 64 && word.find_first_not_of("0123456789abcdef") == std::string::npos;
  return hex ? word : "";
}

namespace {

struct HashJob {
  uv_work_t req{};
  std::string path, hex, error;
  std::function<void(const std::string&, const std::string&)> done;
};

}  // namespace

std::string sha256_file(const std::string& path, std::string& hex) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::strerror(errno);
  std::string error;
  try {
    Digest d;
    std::vector<char> buf(1 << 20);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) d.update({buf.data(), n});
    if (std::ferror(f)) error = "read error";
    hex = d.hex();
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::fclose(f);
  return error;
}

void hash_file(uv_loop_t* loop, std::string path,
               std::function<void(const std::string& hex, const std::string& error)> done) {
  auto* j = new HashJob;
  j->path = std::move(path);
  j->done = std::move(done);
  j->req.data = j;
  auto work = [](uv_work_t* r) {
    auto* j = static_cast<HashJob*>(r->data);
    j->error = sha256_file(j->path, j->hex);
  };
  auto after = [](uv_work_t* r, int status) {
    auto* j = static_cast<HashJob*>(r->data);
    if (status != 0 && j->error.empty()) j->error = uv_strerror(status);
    j->done(j->hex, j->error);
    delete j;
  };
  if (int rc = uv_queue_work(loop, &j->req, work, after); rc != 0) {
    j->done("", uv_strerror(rc));
    delete j;
  }
}

}  // namespace skyhost::transfer_detail
