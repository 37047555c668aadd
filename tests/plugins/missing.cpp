int sky_test_missing_value() {
  return 42;
}
