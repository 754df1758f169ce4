// main() of every unit test binary: GoogleTest, with the server's logging
// turned off (the funnel logs each accepted order at info). Set
// FLASHSALE_TEST_LOG=debug (or info, warn, ...) to see it.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* level = std::getenv("FLASHSALE_TEST_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
  return RUN_ALL_TESTS();
}
