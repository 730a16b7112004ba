// The checked tiers (TESSERA_SANITIZE set, a Debug build) exist to run the library's asserts:
// this file is compiled with TESSERA_CHECKED_BUILD there (CMakeLists.txt), and a build that
// defined NDEBUG anyway, compiling every assert out, fails here.
#include <gtest/gtest.h>

#include <cassert>

#if defined(TESSERA_CHECKED_BUILD) && defined(NDEBUG)
#error "a checked build must not define NDEBUG: its asserts would be compiled out"
#endif

namespace {

TEST(CheckedBuild, AssertsAbort) {
#ifndef TESSERA_CHECKED_BUILD
  GTEST_SKIP() << "a release build: asserts are compiled out";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  bool checked = false;
  EXPECT_DEATH(
      {
        checked = true;
        assert(!checked && "asserts are on");
      },
      "asserts are on");
#endif
}

}  // namespace
