#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "host/core/loop.hpp"
#include "host/transfer/transfer_util.hpp"

using namespace skyhost::transfer_detail;

TEST_CASE("sha256 as sha256sum prints it", "[transfer]") {
  Digest d;
  d.update("ab");
  d.update("c");
  REQUIRE(d.hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE(digest_of("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  f\n") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE(digest_of("sha256sum: f: No such file or directory\n").empty());
  REQUIRE(digest_of("BA7816BF  f").empty());
  REQUIRE(digest_of("").empty());
}

TEST_CASE("remote paths are quoted for the shell", "[transfer]") {
  REQUIRE(quote("a b") == "'a b'");
  REQUIRE(quote("it's") == "'it'\\''s'");
}

TEST_CASE("a local file is hashed off the loop thread, a missing one is an error", "[transfer]") {
  skyhost::Loop loop;
  char path[] = "/tmp/skyhost-hash-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  std::string big(3u << 20, 'x');  // several reads of 1 MiB
  big += "abc";
  REQUIRE(write(fd, big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  close(fd);
  Digest d;
  d.update(big);
  std::string want = d.hex();

  std::string hex, error = "not called";
  hash_file(loop.uv(), path, [&](const std::string& h, const std::string& e) {
    hex = h;
    error = e;
  });
  while (error == "not called") uv_run(loop.uv(), UV_RUN_ONCE);
  REQUIRE(error.empty());
  REQUIRE(hex == want);

  std::remove(path);
  error = "not called";
  hash_file(loop.uv(), path, [&](const std::string& h, const std::string& e) {
    hex = h;
    error = e;
  });
  while (error == "not called") uv_run(loop.uv(), UV_RUN_ONCE);
  REQUIRE(error == "No such file or directory");
  REQUIRE(hex.empty());
}
