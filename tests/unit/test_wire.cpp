#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "host/links/wire.hpp"

using namespace skyhost::wire;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// Frame bytes for `type` + `body` as a peer would send them.
std::string frame(Msg type, std::string_view body) {
  Writer w;
  size_t mark = w.begin_frame(type);
  w.put_raw(body.data(), body.size());
  w.end_frame(mark);
  return w.take();
}

}  // namespace

TEST_CASE("wire: fixed-width numbers are little-endian", "[wire]") {
  Writer w;
  w.put_u8(0xab);
  w.put_u32(0x01020304);
  w.put_u64(0x0102030405060708ull);
  CHECK(w.data() == bytes({0xab, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1}));
  Reader r(w.data());
  CHECK(r.get_u8() == 0xab);
  CHECK(r.get_u32() == 0x01020304u);
  CHECK(r.get_u64() == 0x0102030405060708ull);
  CHECK(r.empty());
}

TEST_CASE("wire: doubles round-trip bit for bit", "[wire]") {
  const double values[] = {0.0,
                           -0.0,
                           1.5,
                           -3.25e300,
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::denorm_min(),
                           std::nan("0x123")};
  Writer w;
  for (double v : values) w.put_f64(v);
  Reader r(w.data());
  for (double v : values) {
    double got = r.get_f64();
    CHECK(std::memcmp(&got, &v, sizeof v) == 0);
  }
}

TEST_CASE("wire: varints use LEB128 and cover the whole 64-bit range", "[wire]") {
  Writer w;
  w.put_varint(300);
  CHECK(w.data() == bytes({0xac, 0x02}));

  const uint64_t values[] = {
      0, 1, 127, 128, 16383, 16384, 1ull << 32, 1ull << 63, std::numeric_limits<uint64_t>::max()};
  w.clear();
  for (uint64_t v : values) w.put_varint(v);
  Reader r(w.data());
  for (uint64_t v : values) CHECK(r.get_varint() == v);
  CHECK(r.empty());

  w.clear();
  w.put_varint(std::numeric_limits<uint64_t>::max());
  CHECK(w.size() == 10);
  CHECK(static_cast<uint8_t>(w.data().back()) == 0x01);
}

TEST_CASE("wire: zigzag maps small magnitudes to short encodings", "[wire]") {
  const int64_t values[] = {0,
                            -1,
                            1,
                            -64,
                            63,
                            -65,
                            64,
                            std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max()};
  Writer w;
  w.put_zigzag(-1);
  CHECK(w.data() == bytes({0x01}));
  w.clear();
  w.put_zigzag(63);
  w.put_zigzag(-64);
  CHECK(w.size() == 2);
  w.clear();
  for (int64_t v : values) w.put_zigzag(v);
  Reader r(w.data());
  for (int64_t v : values) CHECK(r.get_zigzag() == v);
  CHECK(r.empty());
}

TEST_CASE("wire: strings are binary-safe and views point into the input", "[wire]") {
  std::string s("a\0b\0\0c", 6);
  Writer w;
  w.put_string(s);
  w.put_string("");
  w.put_raw("xyz", 3);
  Reader r(w.data());
  std::string_view got = r.get_string();
  CHECK(got == s);
  CHECK(got.data() == w.data().data() + 1);
  CHECK(r.get_string().empty());
  CHECK(r.get_raw(3) == "xyz");
  CHECK(r.empty());
}

TEST_CASE("wire: malformed varints are rejected", "[wire]") {
  std::string eleven(10, '\x80');
  eleven.push_back('\x00');
  Reader too_long(eleven);
  CHECK_THROWS_AS(too_long.get_varint(), Error);

  // Ten bytes whose last one carries more than bit 63.
  std::string overflow(9, '\xff');
  overflow.push_back('\x02');
  Reader r(overflow);
  CHECK_THROWS_WITH(r.get_varint(), Catch::Contains("overflow"));

  std::string cut = bytes({0x80, 0x80});  // a Reader does not own its bytes
  Reader truncated(cut);
  CHECK_THROWS_WITH(truncated.get_varint(), Catch::Contains("truncated"));
}

TEST_CASE("wire: every read past the end throws", "[wire]") {
  std::string buf(7, '\x01');
  for (size_t n = 0; n < buf.size(); ++n) {
    Reader r(buf.data(), n);
    if (n < 1) CHECK_THROWS_AS(r.get_u8(), Error);
    if (n < 4) CHECK_THROWS_AS(Reader(buf.data(), n).get_u32(), Error);
    CHECK_THROWS_AS(Reader(buf.data(), n).get_u64(), Error);
    CHECK_THROWS_AS(Reader(buf.data(), n).get_f64(), Error);
    CHECK_THROWS_AS(Reader(buf.data(), n).get_raw(n + 1), Error);
  }
  // A declared string length far beyond the input, including one that would wrap a size_t.
  Writer w;
  w.put_varint(1ull << 40);
  w.put_raw("abc", 3);
  CHECK_THROWS_AS(Reader(w.data()).get_string(), Error);
  w.clear();
  w.put_varint(std::numeric_limits<uint64_t>::max());
  CHECK_THROWS_AS(Reader(w.data()).get_string(), Error);
}

TEST_CASE("wire: frames carry their type and body", "[wire]") {
  Writer w;
  size_t mark = w.begin_frame(Msg::kTask);
  w.put_u64(7);
  w.put_string("args");
  w.end_frame(mark);
  CHECK(w.size() == kHeader + 1 + 8 + 5);
  CHECK(Reader(w.data()).get_u32() == 1 + 8 + 5);

  FrameDecoder d;
  d.feed(w.data().data(), w.size());
  Frame f;
  REQUIRE(d.next(f));
  CHECK(f.type == Msg::kTask);
  Reader body(f.body);
  CHECK(body.get_u64() == 7);
  CHECK(body.get_string() == "args");
  CHECK(body.empty());
  CHECK_FALSE(d.next(f));
  CHECK(d.pending() == 0);
}

TEST_CASE("wire: end_frame needs a begun frame", "[wire]") {
  Writer w;
  w.put_u8(1);
  CHECK_THROWS_AS(w.end_frame(0), Error);
  CHECK_THROWS_AS(w.end_frame(100), Error);
}

TEST_CASE("wire: frame decoder reassembles byte-by-byte feeds", "[wire]") {
  std::string stream = frame(Msg::kLog, "hello") + frame(Msg::kLease, "") +
                       frame(Msg::kResult, std::string(1000, 'r'));
  FrameDecoder d;
  std::vector<std::pair<Msg, std::string>> got;
  for (char c : stream) {
    d.feed(&c, 1);
    Frame f;
    while (d.next(f)) got.emplace_back(f.type, std::string(f.body));
  }
  REQUIRE(got.size() == 3);
  CHECK(got[0] == std::make_pair(Msg::kLog, std::string("hello")));
  CHECK(got[1] == std::make_pair(Msg::kLease, std::string()));
  CHECK(got[2] == std::make_pair(Msg::kResult, std::string(1000, 'r')));
  CHECK(d.pending() == 0);
}

TEST_CASE("wire: several frames in one feed stay valid until the next feed", "[wire]") {
  std::string stream =
      frame(Msg::kDef, "one") + frame(Msg::kTask, "two") + frame(Msg::kCancel, "3");
  std::string partial = frame(Msg::kShutdown, "tail");
  stream += partial.substr(0, 6);
  FrameDecoder d;
  d.feed(stream.data(), stream.size());
  Frame a, b, c, e;
  REQUIRE(d.next(a));
  REQUIRE(d.next(b));
  REQUIRE(d.next(c));
  CHECK_FALSE(d.next(e));
  CHECK(d.pending() == 6);
  // All three bodies are still readable: next() never moves the buffer.
  CHECK(a.body == "one");
  CHECK(b.body == "two");
  CHECK(c.body == "3");
  CHECK(c.type == Msg::kCancel);
  d.feed(partial.data() + 6, partial.size() - 6);
  REQUIRE(d.next(e));
  CHECK(e.type == Msg::kShutdown);
  CHECK(e.body == "tail");
}

TEST_CASE("wire: frame decoder refuses bad lengths", "[wire]") {
  SECTION("zero length") {
    FrameDecoder d;
    std::string s = bytes({0, 0, 0, 0, 1});
    d.feed(s.data(), s.size());
    Frame f;
    CHECK_THROWS_WITH(d.next(f), Catch::Contains("length 0"));
  }
  SECTION("above the limit, before the body arrives") {
    FrameDecoder d;
    Writer w;
    w.put_u32(kMaxFrame + 1);
    d.feed(w.data().data(), w.size());
    Frame f;
    CHECK_THROWS_WITH(d.next(f), Catch::Contains("exceeds"));
  }
  SECTION("an incomplete header is just pending") {
    FrameDecoder d;
    d.feed("\x05\x00", 2);
    Frame f;
    CHECK_FALSE(d.next(f));
    CHECK(d.pending() == 2);
  }
}

TEST_CASE("wire: a frame limit is configurable and reported with sizes", "[wire]") {
  FrameDecoder d(4096);
  CHECK(d.max() == 4096);
  std::string ok = frame(Msg::kResult, std::string(4095, 'x'));
  std::string big = frame(Msg::kResult, std::string(4096, 'x'));
  d.feed(ok.data(), ok.size());
  Frame f;
  REQUIRE(d.next(f));
  CHECK(f.body.size() == 4095);
  d.feed(big.data(), 4);  // the header alone is enough to refuse it
  CHECK_THROWS_WITH(d.next(f), "wire: frame of 4.0 KiB (4097 bytes) exceeds the limit of 4 KiB");
  FrameDecoder e(1u << 20);
  Writer w;
  w.put_u32((3u << 20) / 2);
  e.feed(w.data().data(), w.size());
  CHECK_THROWS_WITH(e.next(f), "wire: frame of 1.5 MiB (1572864 bytes) exceeds the limit of 1 MiB");
  FrameDecoder above(0xffffffff);
  CHECK(above.max() == kMaxFrame);
}

TEST_CASE("wire: a header alone reserves nothing; the buffer grows with what arrives", "[wire]") {
  FrameDecoder d;
  Writer w;
  w.put_u32(kMaxFrame);  // announces 1 GiB, the most allowed
  w.put_u8(static_cast<uint8_t>(Msg::kResult));
  d.feed(w.data().data(), w.size());
  Frame f;
  CHECK_FALSE(d.next(f));
  CHECK(d.capacity() < 1024);
  std::string chunk(256 * 1024, 'x');
  size_t fed = w.size();
  for (int i = 0; i < 64; ++i) {  // 16 MiB in reads of 256 KiB
    d.feed(chunk.data(), chunk.size());
    fed += chunk.size();
    CHECK_FALSE(d.next(f));
    CHECK(d.capacity() <= 2 * fed);
  }
  CHECK(d.pending() == fed);
}

TEST_CASE("wire: a large frame is reassembled and its memory given back", "[wire]") {
  std::string body(20 << 20, 'b');
  std::string stream = frame(Msg::kResult, body) + frame(Msg::kLog, "after");
  FrameDecoder d;
  std::vector<std::string> got;
  for (size_t at = 0; at < stream.size(); at += 256 * 1024) {
    d.feed(stream.data() + at, std::min<size_t>(256 * 1024, stream.size() - at));
    Frame f;
    while (d.next(f)) got.emplace_back(f.body);
    // Announced ends cap the growth: never much more than the frame itself.
    CHECK(d.capacity() <= body.size() + 512 * 1024);
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0] == body);
  CHECK(got[1] == "after");
  d.feed("", 0);
  CHECK(d.capacity() < 1024 * 1024);
}

TEST_CASE("wire: sizes for messages", "[wire]") {
  CHECK(size_text(0) == "0 bytes");
  CHECK(size_text(1) == "1 byte");
  CHECK(size_text(1023) == "1023 bytes");
  CHECK(size_text(1024) == "1 KiB");
  CHECK(size_text(1536) == "1.5 KiB (1536 bytes)");
  CHECK(size_text(1u << 30) == "1 GiB");
  CHECK(size_text(3u << 20) == "3 MiB");
  CHECK(size_text(1181116006) == "1.1 GiB (1181116006 bytes)");
}

TEST_CASE("a writer with refs sends large strings from where they are, in order") {
  std::string big(Writer::kRefMin, 'b'), small = "tiny";
  Writer w;
  w.set_refs(true);
  size_t mark = w.begin_frame(Msg::kResult);
  w.put_string(small);
  w.put_string(big);
  w.put_u8(7);
  w.end_frame(mark);
  REQUIRE(w.refs().size() == 1);
  REQUIRE(w.refs()[0].p == big.data());  // not copied
  REQUIRE(w.size() == w.data().size() + big.size());
  REQUIRE_THROWS_AS(w.take(), Error);  // the buffer alone is not the content

  std::string flat;
  w.segments([&](const char* p, size_t n) { flat.append(p, n); });
  Writer copy;  // the same frame, everything copied
  size_t m2 = copy.begin_frame(Msg::kResult);
  copy.put_string(small);
  copy.put_string(big);
  copy.put_u8(7);
  copy.end_frame(m2);
  REQUIRE(flat == copy.data());  // the header counts the referenced bytes

  FrameDecoder d;
  d.feed(flat.data(), flat.size());
  Frame f;
  REQUIRE(d.next(f));
  Reader r(f.body);
  REQUIRE(r.get_string() == small);
  REQUIRE(r.get_string() == big);
  REQUIRE(r.get_u8() == 7);
}

TEST_CASE("appending and truncating a writer keep its refs in place") {
  std::string big(Writer::kRefMin + 3, 'x');
  Writer body;
  body.set_refs(true);
  body.put_string(big);
  body.put_u8(1);
  Writer out;
  out.put_u8(9);
  size_t mark = out.begin_frame(Msg::kResult);
  out.append(std::move(body));
  REQUIRE(body.size() == 0);
  REQUIRE(out.refs().size() == 1);
  REQUIRE(out.refs()[0].at > mark);
  out.end_frame(mark);
  std::string flat;
  out.segments([&](const char* p, size_t n) { flat.append(p, n); });
  REQUIRE(flat.size() == out.size());
  REQUIRE(flat.substr(flat.size() - 1 - big.size(), big.size()) == big);
  out.truncate(mark);  // a frame that failed to fill: nothing of it stays
  REQUIRE(out.refs().empty());
  REQUIRE(out.size() == 1);
  REQUIRE(out.take() == std::string(1, '\x09'));
}

TEST_CASE("bytes read into the decoder's space form frames as fed ones do") {
  std::string a = frame(Msg::kLog, "first"), b = frame(Msg::kResult, std::string(300000, 'q'));
  std::string stream = a + b + a;
  FrameDecoder d;
  size_t at = 0;
  std::vector<std::string> got;
  while (at < stream.size()) {
    std::string_view room = d.space(1000);
    REQUIRE(room.size() >= 1000);
    size_t n = std::min({room.size(), stream.size() - at, size_t{70000}});
    std::memcpy(const_cast<char*>(room.data()), stream.data() + at, n);
    d.commit(n);
    at += n;
    Frame f;
    while (d.next(f)) got.emplace_back(f.body);
  }
  REQUIRE(got == std::vector<std::string>{"first", std::string(300000, 'q'), "first"});
  REQUIRE(d.capacity() <= 2 * stream.size());  // still bounded by what arrived
}

TEST_CASE("take hands a large frame's buffer over, and the frames behind it stay") {
  std::string big_body(6u << 20, 'z');
  big_body[0] = 'A';
  big_body.back() = 'Z';
  std::string small = frame(Msg::kLog, "after");
  std::string stream = frame(Msg::kResult, big_body) + small + small.substr(0, 3);
  FrameDecoder d;
  d.feed(stream.data(), stream.size());
  Frame f;
  REQUIRE(d.next(f));
  std::string_view part = f.body.substr(1);
  const char* where = part.data();
  Payload p = d.take(part);
  REQUIRE(p.data() == where);  // the same memory: no copy
  REQUIRE(std::string_view(p) == std::string_view(big_body).substr(1));
  REQUIRE(d.next(f));  // the next frame moved to a buffer of its own
  REQUIRE(f.body == "after");
  REQUIRE_FALSE(d.next(f));
  REQUIRE(d.pending() == 3);
  d.feed(small.data() + 3, small.size() - 3);
  REQUIRE(d.next(f));
  REQUIRE(f.body == "after");

  Payload copied = d.take(f.body);  // a small frame is copied
  REQUIRE(copied == "after");
  REQUIRE(copied.data() != f.body.data());
}
