// A plugin that needs a library the loader cannot find (tests: a missing dependency).
#include <skyhost/plugin.hpp>

int sky_test_missing_value();  // in libsky_test_missing.so, built where no loader looks

int64_t uses_missing() {
  return sky_test_missing_value();
}
SKY_PLUGIN(uses_missing);
