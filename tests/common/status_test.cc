#include "common/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace volguard {
namespace {

Status fail(const std::string& why) { return Status(Code::kInvalidArgument, "bad", why); }

Result<int> number(bool ok, int value = 7) {
  if (!ok) return fail("no number");
  return value;
}

Result<std::unique_ptr<int>> boxed(bool ok) {
  if (!ok) return fail("no box");
  return std::make_unique<int>(42);
}

int calls = 0;
Status counted(bool ok) {
  ++calls;
  return ok ? Status::ok() : fail("counted");
}

Status two_steps(bool first, bool second, int* reached) {
  RETURN_IF_ERROR(counted(first));
  *reached = 1;
  RETURN_IF_ERROR(counted(second));
  *reached = 2;
  return Status::ok();
}

// In a function returning Result<T>: the Status converts.
Result<int> sum(bool a, bool b) {
  ASSIGN_OR_RETURN(const int x, number(a, 3));
  int y = 0;
  ASSIGN_OR_RETURN(y, number(b, 4));  // assigns to an existing object
  RETURN_IF_ERROR(counted(true));
  return x + y;
}

// Move-only values are moved out, not copied.
Result<int> unbox(bool ok) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> p, boxed(ok));
  ASSIGN_OR_RETURN(auto q, boxed(ok));  // two on adjacent lines: distinct temporaries
  return *p + *q;
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtTheFirstErrorAndEvaluatesOnce) {
  int reached = 0;
  calls = 0;
  EXPECT_TRUE(two_steps(true, true, &reached).is_ok());
  EXPECT_EQ(reached, 2);
  EXPECT_EQ(calls, 2);
  reached = 0;
  calls = 0;
  const Status s = two_steps(false, true, &reached);
  EXPECT_EQ(s.message(), "counted");
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(calls, 1);
}

TEST(StatusMacrosTest, AssignOrReturnDeclaresAssignsAndPropagates) {
  EXPECT_EQ(*sum(true, true), 7);
  const auto first = sum(false, true);
  ASSERT_FALSE(first.is_ok());
  EXPECT_EQ(first.status().message(), "no number");
  EXPECT_EQ(sum(true, false).status().reason(), "bad");
  EXPECT_EQ(*unbox(true), 84);
  EXPECT_EQ(unbox(false).status().message(), "no box");
}

TEST(StatusTest, ToStringAndResultStatus) {
  EXPECT_EQ(Status::ok().to_string(), "OK");
  EXPECT_EQ(fail("x").to_string(), "INVALID_ARGUMENT bad: x");
  EXPECT_TRUE(number(true).status().is_ok());
  EXPECT_EQ(http_status_of(Code::kNotFound), 404);
}

}  // namespace
}  // namespace volguard
