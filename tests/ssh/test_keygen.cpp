// Ephemeral ed25519 keys: format checked against OpenSSH's own tools, accepted by a real sshd.
#include <catch2/catch.hpp>
#include <vector>

#include "host/ssh/crypto_util.hpp"
#include "host/ssh/keygen.hpp"
#include "host/ssh/session.hpp"
#include "tests/ssh/testbed.hpp"

using namespace skyhost::ssh;
using namespace skyhost::ssh::test;

namespace {

// Connects to h1 with `key` in memory and runs `echo ok`; returns the result.
RunResult run_with_key(const std::string& key) {
  Loop loop;
  SessionOptions o = options_for(1);
  o.private_key = key;
  Session s(loop.get(), o);
  Status st = Status::failure("not run");
  bool connected = false, ran = false;
  RunResult res;
  s.connect([&](const Status& x) {
    st = x;
    connected = true;
  });
  s.run("echo ok", {}, [&](RunResult r) {
    res = std::move(r);
    ran = true;
  });
  REQUIRE(loop.run_until([&] { return ran; }, 20));
  INFO(st.error);
  REQUIRE(connected);
  return res;
}

}  // namespace

TEST_CASE("keygen: OpenSSH-format ed25519 key pair", "[keygen]") {
  KeyPair kp = generate_ed25519("skyhost-test");
  REQUIRE(kp.public_key.rfind("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", 0) == 0);
  REQUIRE(kp.public_key.size() > 80);
  REQUIRE(kp.public_key.substr(kp.public_key.size() - 13) == " skyhost-test");
  REQUIRE(kp.private_key.rfind("-----BEGIN OPENSSH PRIVATE KEY-----\n", 0) == 0);
  REQUIRE(kp.private_key.find("-----END OPENSSH PRIVATE KEY-----\n") != std::string::npos);
  REQUIRE(kp.fingerprint.rfind("SHA256:", 0) == 0);

  KeyPair other = generate_ed25519("skyhost-test");
  REQUIRE(other.public_key != kp.public_key);
  REQUIRE(other.private_key != kp.private_key);

  // the public blob stored in clear in the private key is the public key
  auto blob = openssh_public_blob(kp.private_key);
  REQUIRE(blob);
  REQUIRE(kp.public_key.find(base64_encode(*blob)) != std::string::npos);
  REQUIRE(fingerprint_sha256(*blob) == kp.fingerprint);
}

TEST_CASE("keygen: ssh-keygen reads our private key and agrees on the fingerprint", "[keygen]") {
  KeyPair kp = generate_ed25519("skyhost-crosscheck");
  std::string path = temp_path("key");
  write_file(path, kp.private_key);
  write_file(path + ".pub", kp.public_key + "\n");
  sh("chmod 600 '" + path + "'");
  // OpenSSH's own parser derives the same public key and fingerprint
  std::string derived = sh("ssh-keygen -y -f '" + path + "' 2>&1");
  REQUIRE(derived.rfind(kp.public_key.substr(0, kp.public_key.rfind(' ')), 0) == 0);
  std::string fp = sh("ssh-keygen -l -f '" + path + ".pub' 2>&1");
  REQUIRE(fp.find(kp.fingerprint) != std::string::npos);
  sh("rm -f '" + path + "' '" + path + ".pub'");
}

TEST_CASE("keygen: base64 round trip", "[keygen]") {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                std::string("\0\xff", 2)}) {
    auto back = base64_decode(base64_encode(s));
    REQUIRE(back);
    REQUIRE(*back == s);
  }
  REQUIRE(base64_encode("foobar") == "Zm9vYmFy");
  REQUIRE_FALSE(base64_decode("Zm9v YmFy"));
  REQUIRE_FALSE(base64_decode("abc"));
}

TEST_CASE("keygen: a real sshd accepts the generated key, libssh2 takes both PEM forms",
          "[keygen][sshd]") {
  KeyPair kp = generate_ed25519("skyhost-test-accepted");
  // before it is authorized: refused
  RunResult refused = run_with_key(kp.private_key);
  REQUIRE_FALSE(refused.exit.ok());
  REQUIRE(refused.exit.error.find("authentication as root failed") != std::string::npos);

  sh("echo '" + kp.public_key + "' >> '" + state_dir() + "/authorized_keys'");
  RunResult ok = run_with_key(kp.private_key);
  INFO(ok.exit.error);
  REQUIRE(ok.exit.ok());
  REQUIRE(ok.out == "ok\n");

  // Debian's libssh2 1.10 + OpenSSL 3 also accepts the PKCS#8 form of an ed25519 key
  std::string pkcs8 = ed25519_private_key_pkcs8(kp);
  REQUIRE(pkcs8.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
  RunResult ok8 = run_with_key(pkcs8);
  INFO(ok8.exit.error);
  REQUIRE(ok8.exit.ok());
}
