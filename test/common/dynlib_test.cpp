#include "common/dynlib.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace flotilla {
namespace {

TEST(DynLibTest, BindsAFunctionThatCanBeCalled) {
  auto lib = DynLib::open("libc.so.6");
  ASSERT_TRUE(lib) << lib.error().message();
  decltype(&::strlen) fn = nullptr;
  lib->bind("strlen", fn);
  ASSERT_TRUE(lib->status()) << lib->status().error().message();
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(fn("flotilla"), 8u);
}

TEST(DynLibTest, AMissingLibraryIsAnErrorNamingIt) {
  auto lib = DynLib::open("libflotilla-no-such-library.so.7");
  ASSERT_FALSE(lib);
  EXPECT_NE(lib.error().message().find("Failed to load 'libflotilla-no-such-library.so.7'"),
            std::string::npos)
      << lib.error().message();
}

TEST(DynLibTest, MissingSymbolsAreAllNamedAndLeftNull) {
  auto lib = DynLib::open("libc.so.6");
  ASSERT_TRUE(lib) << lib.error().message();
  decltype(&::strlen) found = nullptr;
  decltype(&::strlen) absent1 = &::strlen;
  decltype(&::strlen) absent2 = &::strlen;
  lib->bind("flotilla_absent_one", absent1);
  lib->bind("strlen", found);
  lib->bind("flotilla_absent_two", absent2);
  EXPECT_NE(found, nullptr);
  EXPECT_EQ(absent1, nullptr);
  EXPECT_EQ(absent2, nullptr);
  auto st = lib->status();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("'libc.so.6': it lacks flotilla_absent_one, "
                                      "flotilla_absent_two"),
            std::string::npos)
      << st.error().message();
}

}  // namespace
}  // namespace flotilla
