// The hash caches of directory syncs (host/transfer/hash_cache.hpp): what they keep, what they
// refuse to trust, and the host's cache file on a real directory.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "host/transfer/hash_cache.hpp"

using namespace skyhost::tree;
namespace fs = std::filesystem;

namespace {

const std::string kA(64, 'a'), kB(64, 'b');
const std::string kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

Entry file(uint64_t size, const std::string& key, int64_t ctime, const std::string& hash = "") {
  Entry e;
  e.size = size;
  e.key = key;
  e.ctime_ns = ctime;
  e.hash = hash;
  return e;
}

std::string nul(std::initializer_list<const char*> parts) {
  std::string s;
  for (const char* p : parts) s += std::string(p) + '\0';
  return s;
}

}  // namespace

TEST_CASE("a hash cache reads back whole, or not at all", "[transfer]") {
  HashCache c{{"a b/c", {"3 1.5 2.5 7 9", kA}}, {"z", {"0 0 0 1 1", kB}}};
  std::string bytes = encode_cache(c);
  HashCache back;
  REQUIRE(decode_cache(bytes, back));
  REQUIRE(back.size() == 2);
  REQUIRE(back["a b/c"].key == "3 1.5 2.5 7 9");
  REQUIRE(back["z"].hash == kB);
  REQUIRE(decode_cache(encode_cache({}), back));
  REQUIRE(back.empty());
  // One byte changed anywhere, cut short, or longer: refused whole, and `out` left empty.
  for (size_t i = 0; i < bytes.size(); i++) {
    std::string bad = bytes;
    bad[i] = bad[i] == 'b' ? 'a' : 'b';
    INFO(i);
    REQUIRE_FALSE(decode_cache(bad, back));
    REQUIRE(back.empty());
  }
  REQUIRE_FALSE(decode_cache(bytes.substr(0, bytes.size() - 1), back));
  REQUIRE_FALSE(decode_cache(bytes + "x", back));
  REQUIRE_FALSE(decode_cache("", back));
}

TEST_CASE("a cached hash is used only under the same key, and only if it was not racy",
          "[transfer]") {
  Manifest m{{"same", file(3, "k1", 10)}, {"changed", file(3, "k2", 10)}, {"new", file(1, "k", 1)}};
  HashCache c{{"same", {"k1", kA}}, {"changed", {"k-old", kB}}};
  auto rest = from_cache(c, m, {"same", "changed", "new"});
  REQUIRE(rest == std::vector<std::string>{"changed", "new"});
  REQUIRE(m["same"].hash == kA);
  REQUIRE(m["changed"].hash.empty());
  // Kept: hashed files whose ctime is before the mark (a write in the mark's tick or later
  // could have left the key as it was).
  m["changed"].hash = kB;
  HashCache kept = cacheable(m, 10);
  REQUIRE(kept.empty());
  kept = cacheable(m, 11);
  REQUIRE(kept.size() == 2);
  REQUIRE(kept["changed"].key == "k2");
}

TEST_CASE("the node's cache after a plan: sent files as tar left them, untouched ones as before",
          "[transfer]") {
  Manifest src{{"sent", file(3, "", 0, kA)},
               {"kept", file(3, "", 0, kB)},
               {"chmod", file(3, "", 0, kB)},
               {"late", file(3, "", 0, kA)},
               {"touched", file(3, "", 0, kA)}};
  Plan p;
  p.send = {"sent", "late", "touched"};
  p.chmods = {"sent", "late", "touched", "chmod"};
  HashCache before{{"kept", {"k-kept", kB}}, {"chmod", {"k-chmod", kB}}};
  Manifest after{{std::string(kMarkName), file(0, "m", 100)},
                 {"sent", file(3, "k-sent", 50)},
                 {"kept", file(3, "k-kept", 5)},
                 {"chmod", file(3, "k-chmod-new", 60)},
                 {"late", file(3, "k-late", 100)},
                 {"touched", file(3, "k-touched", 50)}};
  after["touched"].mtime_ns = 77;  // written again after tar set its time
  HashCache c = cache_after(before, p, src, after);
  REQUIRE(c.size() == 2);
  REQUIRE(c["sent"].key == "k-sent");
  REQUIRE(c["sent"].hash == kA);
  REQUIRE(c["kept"].hash == kB);
  // Without the mark in the listing after, nothing.
  after.erase(std::string(kMarkName));
  REQUIRE(cache_after(before, p, src, after).empty());
}

TEST_CASE("a listing with stats gives keys and times, then the node's cache", "[transfer]") {
  std::string text = nul({"d 755 4096 1.0 2.0 5 7 sub", "",
                          "f 644 3 1700000000.1234567890 1700000001.5 12 7 sub/a b", ""}) +
                     "#cache" + '\0' + std::string("rest\0of it", 10);
  std::string_view rest;
  std::string_view listing = cut_listing(text, "#cache", rest);
  REQUIRE(rest == std::string_view("rest\0of it", 10));
  Manifest m;
  REQUIRE(parse_listing(listing, m, true) == "");
  REQUIRE(m["sub/a b"].key == "3 1700000000.1234567890 1700000001.5 12 7");
  REQUIRE(m["sub/a b"].mtime_ns == 1700000000123456789);
  REQUIRE(m["sub/a b"].ctime_ns == 1700000001500000000);
  REQUIRE(m["sub"].key.empty());
  // A link's target equal to the marker is not the marker: only a record's head is.
  std::string with_link = nul({"l 777 6 1 1 1 1 ln", "#cache"});
  REQUIRE(cut_listing(with_link, "#cache", rest) == with_link);
  REQUIRE(rest.empty());
  for (const std::string& bad : {nul({"f 644 3 x 1 1 1 a", ""}), nul({"f 644 3 1 1 -1 1 a", ""}),
                                 nul({"f 644 3 1 1 1 a", ""}), nul({"f 644 3 1.x 1 1 1 a", ""})}) {
    Manifest b;
    INFO(bad);
    REQUIRE(parse_listing(bad, b, true) != "");
  }
}

TEST_CASE("the host's cache: a second hashing of an unchanged tree reads nothing", "[transfer]") {
  char tmpl[] = "/tmp/skyhost-hc-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  fs::path root = tmpl;
  setenv("SKYHOST_STATE_DIR", (root / "state").c_str(), 1);
  fs::create_directories(root / "src");
  std::ofstream(root / "src/a") << "abc";
  std::ofstream(root / "src/.skyhost-sync.cache") << "the sync's own name: never an entry";
  auto run = [&](int64_t scanned, HashCount& n) {
    Manifest m;
    REQUIRE(scan((root / "src").string(), m, false) == "");
    REQUIRE(m.size() == 1);
    REQUIRE(hash_cached((root / "src").string(), m, {"a"}, scanned, n) == "");
    return m["a"].hash;
  };
  HashCount first, racy, again, corrupt;
  // Files changed within two seconds of the scan are not cached: hashed again next time.
  REQUIRE(run(clock_ns(), racy) == kAbc);
  REQUIRE(racy.files == 1);
  run(clock_ns(), first);
  REQUIRE(first.files == 1);
  int64_t later = clock_ns() + 3000000000;  // as if scanned three seconds later
  run(later, first);
  run(later, again);
  REQUIRE(again.files == 0);
  // A corrupt cache file: hashed again, with the right result.
  std::string path = local_cache_path((root / "src").string());
  REQUIRE(fs::exists(path));
  std::ofstream(path, std::ios::app) << "x";
  REQUIRE(run(later, corrupt) == kAbc);
  REQUIRE(corrupt.files == 1);
  unsetenv("SKYHOST_STATE_DIR");
  fs::remove_all(root);
}
