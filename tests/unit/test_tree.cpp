#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "host/transfer/tree.hpp"

using namespace skyhost::tree;
namespace fs = std::filesystem;

namespace {

std::string nul(std::initializer_list<const char*> parts) {
  std::string s;
  for (const char* p : parts) {
    s += p;
    s += '\0';
  }
  return s;
}

void put(const fs::path& p, const std::string& text, fs::perms mode = fs::perms(0644)) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  fs::permissions(p, mode);
}

const std::string kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("a node's listing and hashes are parsed", "[transfer]") {
  Manifest m;
  REQUIRE(parse_listing(nul({"d 755 4096 sub", "", "f 640 3 sub/a b.txt", "", "l 777 5 ln", "sub/a",
                             "p 644 0 fifo", ""}),
                        m) == "");
  REQUIRE(m.size() == 4);
  REQUIRE(m["sub"].type == 'd');
  REQUIRE(m["sub/a b.txt"].mode == 0640);
  REQUIRE(m["sub/a b.txt"].size == 3);
  REQUIRE(m["ln"].target == "sub/a");
  REQUIRE(m["fifo"].type == 'o');
  REQUIRE(parse_hashes(kAbc + "  ./sub/a b.txt" + std::string(1, '\0'), m) == "");
  REQUIRE(m["sub/a b.txt"].hash == kAbc);
  // Hashes of files the listing did not name, or malformed, are refused.
  REQUIRE(parse_hashes(kAbc + "  ./other" + std::string(1, '\0'), m) != "");
  REQUIRE(parse_hashes("abc  ./sub/a b.txt" + std::string(1, '\0'), m) != "");
  REQUIRE(parse_hashes(kAbc + "  ./sub", m) != "");
}

TEST_CASE("a listing with unsafe paths or bad fields is refused whole", "[transfer]") {
  for (const std::string& bad :
       {nul({"f 644 1 ../etc/passwd", ""}), nul({"f 644 1 /etc/passwd", ""}),
        nul({"f 644 1 a/./b", ""}), nul({"f 644 1 a//b", ""}), nul({"f 644 1 a/..", ""}),
        nul({"f 644 1 ", ""}), nul({"f 99 1 a", ""}), nul({"f 10000 1 a", ""}),
        nul({"f 644 x a", ""}), nul({"f 644 99999999999999999999999 a", ""}),
        nul({"f 644 1 a", "", "f 644 1 a", ""}), nul({"ff 644 1 a", ""}), nul({"f 644 1 d/a", ""}),
        nul({"l 777 1 d", "/etc", "f 644 1 d/passwd", ""}), std::string("f 644 1 a\0", 10),
        std::string("f 644 1 a")}) {
    Manifest m;
    INFO(bad);
    REQUIRE(parse_listing(bad, m) != "");
  }
}

TEST_CASE("a plan moves only what differs, and reuses content already there", "[transfer]") {
  Manifest src, dst;
  src["keep"] = {'f', 0644, 3, "h1", "", "", 0, 0};
  src["changed"] = {'f', 0644, 3, "h2", "", "", 0, 0};
  src["renamed-to"] = {'f', 0644, 4, "h3", "", "", 0, 0};
  src["chmod"] = {'f', 0755, 3, "h4", "", "", 0, 0};
  src["d"] = {'d', 0755, 0, "", "", "", 0, 0};
  src["link"] = {'l', 0777, 0, "", "keep", "", 0, 0};
  src["was-dir"] = {'f', 0644, 1, "h5", "", "", 0, 0};
  dst["keep"] = {'f', 0644, 3, "h1", "", "", 0, 0};
  dst["changed"] = {'f', 0644, 3, "hX", "", "", 0, 0};
  dst["renamed-from"] = {'f', 0644, 4, "h3", "", "", 0, 0};
  dst["chmod"] = {'f', 0644, 3, "h4", "", "", 0, 0};
  dst["link"] = {'l', 0777, 0, "", "elsewhere", "", 0, 0};
  dst["was-dir"] = {'d', 0755, 0, "", "", "", 0, 0};
  dst["gone"] = {'f', 0644, 9, "h9", "", "", 0, 0};
  Plan p = plan(src, dst);
  REQUIRE(p.send == std::vector<std::string>{"changed", "was-dir"});
  REQUIRE(p.send_bytes == 4);
  REQUIRE(p.copies.size() == 1);
  REQUIRE(p.copies[0].from == "renamed-from");
  REQUIRE(p.copies[0].to == "renamed-to");
  REQUIRE(p.mkdirs == std::vector<std::string>{"d"});
  REQUIRE(p.links == std::vector<std::string>{"link"});
  std::vector<std::string> removed = p.remove;
  std::sort(removed.begin(), removed.end());
  REQUIRE(removed == std::vector<std::string>{"gone", "link", "renamed-from", "was-dir"});
  REQUIRE(std::find(p.chmods.begin(), p.chmods.end(), "chmod") != p.chmods.end());
  REQUIRE(std::find(p.chmods.begin(), p.chmods.end(), "keep") == p.chmods.end());
  REQUIRE(plan(src, src).empty());
  // Only files of a size the source has are worth hashing.
  REQUIRE(worth_hashing(src, dst) ==
          std::vector<std::string>{"changed", "chmod", "keep", "renamed-from"});
}

TEST_CASE("a local tree is scanned and its files sent as a tar that tar reads", "[transfer]") {
  char tmpl[] = "/tmp/skyhost-tree-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  fs::path root = tmpl;
  fs::path src = root / "src", out = root / "out";
  std::string long_name = std::string(120, 'n') + "/" + std::string(90, 'm');
  put(src / "a.txt", "abc", fs::perms(0600));
  put(src / "sub/run.sh", "#!/bin/sh\n", fs::perms(0755));
  put(src / long_name, std::string(70000, 'z'));
  put(src / "empty", "");
  fs::create_symlink("a.txt", src / "ln");
  Manifest m;
  REQUIRE(scan(src.string(), m) == "");
  REQUIRE(m["a.txt"].hash == kAbc);
  REQUIRE(m["a.txt"].mode == 0600);
  REQUIRE(m["sub"].type == 'd');
  REQUIRE(m["ln"].type == 'l');
  REQUIRE(m["ln"].target == "a.txt");
  REQUIRE(m[long_name].size == 70000);
  std::vector<std::string> files{"a.txt", "sub/run.sh", long_name, "empty"};
  std::string tar = (root / "t.tar").string();
  REQUIRE(write_tar(src.string(), m, files, tar) == "");
  fs::create_directories(out);
  std::string cmd = "tar -xpf " + tar + " -C " + out.string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  Manifest back;
  REQUIRE(scan(out.string(), back) == "");
  for (const auto& f : files) {
    INFO(f);
    REQUIRE(back[f].hash == m[f].hash);
    REQUIRE(back[f].mode == m[f].mode);
  }
  REQUIRE(scan((root / "missing").string(), back) != "");
  fs::remove_all(root);
}
