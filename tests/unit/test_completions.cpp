// host/core/completions.hpp: results kept by wait id until the driver takes them.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "host/core/completions.hpp"

using skyhost::Completions;
using skyhost::Loop;
using skyhost::WaitId;

TEST_CASE("completions: a finished operation's result is taken once, after its wait completes") {
  Loop loop;
  Completions<std::string> done(loop);
  WaitId a = done.begin();
  WaitId b = done.begin();
  REQUIRE(a != b);
  CHECK_FALSE(done.take(a).has_value());  // not finished yet

  done.finish(b, "second");
  std::vector<WaitId> completed;
  loop.poll(false, completed);
  REQUIRE(completed == std::vector<WaitId>{b});

  auto r = done.take(b);
  REQUIRE(r.has_value());
  CHECK(*r == "second");
  CHECK_FALSE(done.take(b).has_value());  // taken
  CHECK_FALSE(done.take(a).has_value());  // still running
}
