#pragma once
// FUZZ_CHECK: an invariant of a fuzz target. Aborts (so libFuzzer records the
// input as a crash) with file, line and the condition; active in every build.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
