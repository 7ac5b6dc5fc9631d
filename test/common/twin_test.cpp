#include "common/twin.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flotilla::twin {
namespace {

Json J(const char* text) { return Json::parse(text); }

// Everything observable of a twin, to check that a rejected input changed nothing.
std::string state(const Twin& t) {
  return canonical(t.desired()) + "|" + std::to_string(t.desired_version()) + "|" +
         canonical(t.reported()) + "|" + std::to_string(t.reported_version()) + "|" +
         std::to_string(t.observed_desired());
}

// {"a1":{"a2":...{"a<levels>":{}}}}: `levels` + 1 objects, the document included.
Json nested(int levels) {
  Json doc = Json::object();
  for (int i = levels; i >= 1; --i) doc = Json{{"a" + std::to_string(i), doc}};
  return doc;
}

// {"k":"xxx..."} whose canonical text is exactly `bytes` long.
Json sized(size_t bytes) { return Json{{"k", std::string(bytes - 8, 'x')}}; }

TEST(TwinMergePatch, Rfc7386AppendixA) {
  const char* cases[][3] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", "null", "null"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"a":1,"e":null})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(canonical(merge_patch(J(c[0]), J(c[1]))), c[2]) << c[0] << " + " << c[1];
}

TEST(TwinDesired, PatchMergesDeletesAndBumpsTheVersion) {
  Twin t;
  auto u = t.set_desired(J(R"({"fan":{"speed":3,"mode":"auto"},"led":"on"})"));
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  EXPECT_EQ(u->version, 1u);
  u = t.set_desired(J(R"({"fan":{"mode":null},"led":null,"x":[null,1]})"));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->version, 2u);
  EXPECT_EQ(canonical(t.desired()), R"({"fan":{"speed":3},"x":[null,1]})");
  EXPECT_EQ(t.desired_version(), 2u);
}

TEST(TwinDesired, APatchThatChangesNothingKeepsTheVersion) {
  Twin t;
  ASSERT_TRUE(t.set_desired(J(R"({"a":1,"b":{"c":true}})")).ok());
  for (const char* patch :
       {R"({})", R"({"a":1})", R"({"a":1.0})", R"({"zz":null})", R"({"b":{"c":true}})"}) {
    auto u = t.set_desired(J(patch));
    ASSERT_TRUE(u.ok()) << patch;
    EXPECT_EQ(u->outcome, Outcome::kUnchanged) << patch;
    EXPECT_EQ(t.desired_version(), 1u) << patch;
  }
}

TEST(TwinDesired, ReplaceDropsNullsAndOtherProperties) {
  Twin t;
  ASSERT_TRUE(t.set_desired(J(R"({"a":1,"b":2})")).ok());
  auto u = t.replace_desired(J(R"({"b":3,"c":null,"d":{"e":null}})"));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->version, 2u);
  EXPECT_EQ(canonical(t.desired()), R"({"b":3,"d":{}})");
}

TEST(TwinDesired, StaleIfVersionIsAConflictAndChangesNothing) {
  Twin t;
  ASSERT_TRUE(t.set_desired(J(R"({"a":1})"), 0).ok());
  ASSERT_TRUE(t.set_desired(J(R"({"a":2})"), 1).ok());
  const std::string before = state(t);
  // Two writers both read version 1: the second one loses.
  auto u = t.set_desired(J(R"({"a":3})"), 1);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kConflict);
  EXPECT_EQ(u->reason, "desired version is 2, not 1");
  EXPECT_FALSE(u->changed());
  u = t.replace_desired(J(R"({})"), 7);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kConflict);
  EXPECT_EQ(state(t), before);
  u = t.set_desired(J(R"({"a":3})"), 2);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  EXPECT_EQ(u->version, 3u);
}

TEST(TwinDesired, AgentAdoptsOnlyNewerVersions) {
  Twin agent;
  auto u = agent.adopt_desired(J(R"({"a":1})"), 4);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  EXPECT_EQ(agent.desired_version(), 4u);
  const std::string before = state(agent);
  for (uint64_t v : {4u, 3u, 0u}) {
    u = agent.adopt_desired(J(R"({"a":2})"), v);
    ASSERT_TRUE(u.ok());
    EXPECT_EQ(u->outcome, Outcome::kStale) << v;
    EXPECT_EQ(state(agent), before);
  }
  EXPECT_EQ(u->reason, "desired version 0 is not above 4");
  u = agent.adopt_desired(J(R"({"b":2,"c":null})"), 9);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(canonical(agent.desired()), R"({"b":2})");
  EXPECT_EQ(agent.desired_version(), 9u);
}

TEST(TwinReported, ReportBumpsOnlyOnChange) {
  Twin agent;
  auto u = agent.report(J(R"({"temp":21.5,"fw":"1.2"})"), 0);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->version, 1u);
  u = agent.report(J(R"({"temp":21.5})"));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kUnchanged);
  EXPECT_EQ(agent.reported_version(), 1u);
  // Acting on a new desired version is a change of its own.
  ASSERT_TRUE(agent.adopt_desired(J(R"({"fw":"1.3"})"), 1).ok());
  u = agent.report(J(R"({})"), 1);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  EXPECT_EQ(agent.observed_desired(), 1u);
  u = agent.report(J(R"({"fw":"1.3","temp":null})"));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->version, 3u);
  EXPECT_EQ(canonical(agent.reported()), R"({"fw":"1.3"})");
  EXPECT_EQ(agent.observed_desired(), 1u);
}

TEST(TwinReported, StaleOrRepeatedReportedChangesNothing) {
  Twin hub;
  auto u = hub.adopt_reported(J(R"({"temp":22})"), 5, 2);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  const std::string before = state(hub);
  // A replayed older record (sent before the node went offline) and a duplicate.
  for (uint64_t v : {3u, 5u}) {
    u = hub.adopt_reported(J(R"({"temp":18})"), v, 1);
    ASSERT_TRUE(u.ok());
    EXPECT_EQ(u->outcome, Outcome::kStale);
    EXPECT_EQ(state(hub), before);
  }
  u = hub.adopt_reported(J(R"({"temp":23})"), 6, 2);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(canonical(hub.reported()), R"({"temp":23})");
  EXPECT_EQ(hub.reported_version(), 6u);
  EXPECT_EQ(hub.observed_desired(), 2u);
}

TEST(TwinVersions, SupersedeMovesPastAPeerThatIsAhead) {
  Twin hub;  // lost its store: version 0 again
  ASSERT_TRUE(hub.set_desired(J(R"({"a":1})")).ok());
  auto u = hub.supersede_desired(7);  // the agent holds desired version 7
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kChanged);
  EXPECT_EQ(hub.desired_version(), 8u);
  u = hub.supersede_desired(3);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->outcome, Outcome::kUnchanged);
  Twin agent;
  ASSERT_TRUE(agent.adopt_desired(J(R"({"a":0})"), 7).ok());
  EXPECT_EQ(agent.adopt_desired(hub.desired(), hub.desired_version())->outcome, Outcome::kChanged);
  EXPECT_EQ(agent.desired(), hub.desired());

  Twin lost_agent;
  u = lost_agent.supersede_reported(4);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(lost_agent.reported_version(), 5u);
  EXPECT_FALSE(lost_agent.supersede_reported(kMaxVersion).ok());
  EXPECT_FALSE(lost_agent.adopt_reported(J("{}"), kMaxVersion + 1, 0).ok());
  EXPECT_TRUE(lost_agent.adopt_reported(J("{}"), kMaxVersion, 0).ok());
  // At the limit, a change cannot bump any more: an error, nothing changed.
  const std::string before = state(lost_agent);
  EXPECT_FALSE(lost_agent.report(J(R"({"a":1})")).ok());
  EXPECT_EQ(state(lost_agent), before);
}

TEST(TwinLimits, SizeExactly32KiBIsAcceptedOneMoreByteIsNot) {
  ASSERT_EQ(canonical(sized(kMaxDocumentBytes)).size(), 32768u);
  Twin t;
  auto u = t.set_desired(sized(kMaxDocumentBytes));
  ASSERT_TRUE(u.ok()) << u.error().message();
  const std::string before = state(t);
  u = t.set_desired(sized(kMaxDocumentBytes + 1));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message(), "desired: 32769 bytes, more than the limit of 32768");
  EXPECT_EQ(state(t), before);
  // The size counts after applying: adding a property to a full document fails...
  EXPECT_FALSE(t.set_desired(J(R"({"b":1})")).ok());
  EXPECT_EQ(state(t), before);
  // ...and a patch larger than the limit is fine when what it leaves fits.
  Json patch = sized(kMaxDocumentBytes);
  patch["k"] = nullptr;
  patch["padding-that-is-deleted"] = nullptr;
  EXPECT_TRUE(t.set_desired(patch).ok());
  EXPECT_EQ(canonical(t.desired()), "{}");

  Twin agent;
  EXPECT_TRUE(agent.report(sized(kMaxDocumentBytes)).ok());
  EXPECT_FALSE(agent.report(J(R"({"b":1})")).ok());
  EXPECT_FALSE(Twin().adopt_reported(sized(kMaxDocumentBytes + 1), 1, 0).ok());
  EXPECT_FALSE(Twin().adopt_desired(sized(kMaxDocumentBytes + 1), 1).ok());
}

TEST(TwinLimits, DepthTenIsAcceptedElevenIsNot) {
  Twin t;
  EXPECT_TRUE(t.set_desired(nested(9)).ok());  // 10 objects
  const std::string before = state(t);
  auto u = t.set_desired(nested(10));  // 11 objects
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message(), "desired.a1.a2.a3.a4.a5.a6.a7.a8.a9.a10: nesting deeper than 10");
  EXPECT_EQ(state(t), before);
  // Arrays are levels too.
  Json arrays = Json::array();
  for (int i = 0; i < 9; ++i) arrays = Json::array({arrays});  // 10 arrays
  EXPECT_TRUE(validate(Json{{"x", arrays[0]}}, "reported").ok());
  auto st = validate(Json{{"x", arrays}}, "reported");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "reported.x[0][0][0][0][0][0][0][0][0]: nesting deeper than 10");
}

TEST(TwinLimits, KeysMustBeShortNonEmptyWithoutControlCharacters) {
  EXPECT_TRUE(validate(Json{{std::string(kMaxKeyBytes, 'k'), 1}}, "desired").ok());
  struct Case {
    Json doc;
    std::string error;
  };
  const Case cases[] = {
      {Json{{"a", {{"", 1}}}}, "desired.a.\"\": empty key"},
      {Json{{std::string(129, 'k'), 1}},
       "desired." + std::string(40, 'k') + "...: key of 129 bytes is longer than 128"},
      {Json{{"a", {{"b\nc", 1}}}}, "desired.a.b\\x0ac: control character in key"},
      {Json{{"del\x7f", 1}}, "desired.del\\x7f: control character in key"},
      {Json{{"a", {{"b", Json::array({1, "x", "\xff"})}}}},
       "desired.a.b[2]: string is not valid UTF-8"},
      {Json{{"nan", std::nan("")}}, "desired.nan: number is not finite"},
      {J("[1]"), "desired: not a JSON object (got array)"},
      {J("null"), "desired: not a JSON object (got null)"},
  };
  for (const auto& c : cases) {
    Twin t;
    ASSERT_TRUE(t.set_desired(J(R"({"keep":1})")).ok());
    const std::string before = state(t);
    auto u = t.set_desired(c.doc);
    ASSERT_FALSE(u.ok()) << c.error;
    EXPECT_EQ(u.error().message(), c.error);
    EXPECT_EQ(state(t), before);
    EXPECT_FALSE(t.replace_desired(c.doc).ok());
    EXPECT_FALSE(t.adopt_desired(c.doc, 9).ok());
    EXPECT_FALSE(t.report(c.doc).ok());
    EXPECT_FALSE(t.adopt_reported(c.doc, 9, 0).ok());
    EXPECT_EQ(state(t), before);
  }
}

TEST(TwinParse, RejectsMalformedTextWithAReason) {
  EXPECT_TRUE(parse(R"({"a": [1, {"b": "c"}]})", "desired").ok());
  auto bad = parse(R"({"a": )", "desired");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("desired: invalid JSON: parse error", 0), 0u)
      << bad.error().message();
  EXPECT_FALSE(parse(R"({"a":1e400})", "desired").ok());
  EXPECT_FALSE(parse("{\"a\":\"\xc3\"}", "desired").ok());
  EXPECT_FALSE(parse("", "desired").ok());
  EXPECT_EQ(parse(R"("text")", "patch").error().message(), "patch: not a JSON object (got string)");
  EXPECT_EQ(parse(R"({"a":{"\u0001":1}})", "reported").error().message(),
            "reported.a.\\x01: control character in key");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(parse(deep, "patch").error().message(), "patch: nesting deeper than 10");
  EXPECT_EQ(parse(canonical(nested(10)), "desired").error().message(),
            "desired.a1.a2.a3.a4.a5.a6.a7.a8.a9.a10: nesting deeper than 10");
  const std::string huge = "{\"k\":\"" + std::string(kMaxTextBytes, 'x') + "\"}";
  EXPECT_EQ(parse(huge, "patch").error().message(),
            "patch: 262152 bytes of JSON, more than the limit of 262144");
}

TEST(TwinDelta, DesiredFieldsThatDifferFromReported) {
  struct Case {
    const char* desired;
    const char* reported;
    const char* delta;
  };
  const Case cases[] = {
      {R"({})", R"({"a":1})", R"({})"},
      {R"({"a":1})", R"({})", R"({"a":1})"},
      {R"({"a":1})", R"({"a":1.0})", R"({})"},
      {R"({"a":1,"b":2})", R"({"a":1,"b":3,"c":4})", R"({"b":2})"},
      {R"({"a":{"x":1,"y":2}})", R"({"a":{"x":1,"y":3}})", R"({"a":{"y":2}})"},
      {R"({"a":{"x":1}})", R"({"a":{"x":1,"z":0}})", R"({})"},
      {R"({"a":{"x":1}})", R"({"a":5})", R"({"a":{"x":1}})"},
      {R"({"a":{}})", R"({})", R"({"a":{}})"},
      {R"({"a":{}})", R"({"a":{"q":1}})", R"({})"},
      {R"({"a":[1,2]})", R"({"a":[1]})", R"({"a":[1,2]})"},
      {R"({"a":[1,{"b":1}]})", R"({"a":[1,{"b":1}]})", R"({})"},
      {R"({"a":"on"})", R"({"a":true})", R"({"a":"on"})"},
      {R"({"a":null})", R"({"a":1})", R"({})"},
  };
  for (const auto& c : cases) {
    const Json d = delta(J(c.desired), J(c.reported));
    EXPECT_EQ(canonical(d), c.delta) << c.desired << " vs " << c.reported;
    // Applying the delta to reported makes every desired property equal.
    EXPECT_EQ(canonical(delta(J(c.desired), merge_patch(J(c.reported), d))), "{}") << c.desired;
  }
  Twin t;
  ASSERT_TRUE(t.set_desired(J(R"({"fan":{"speed":3},"led":"on"})")).ok());
  ASSERT_TRUE(t.adopt_reported(J(R"({"fan":{"speed":1,"rpm":900},"led":"on"})"), 1, 1).ok());
  EXPECT_EQ(canonical(t.delta()), R"({"fan":{"speed":3}})");
}

TEST(TwinCanonical, SortedCompactAndStable) {
  const Json doc = J(R"({ "b": 1, "a": {"z": [3, 2], "y": "\u00e9"}, "A": 0.5 })");
  EXPECT_EQ(canonical(doc), "{\"A\":0.5,\"a\":{\"y\":\"\xc3\xa9\",\"z\":[3,2]},\"b\":1}");
  auto again = parse(canonical(doc), "desired");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(canonical(*again), canonical(doc));
}

TEST(TwinRestore, RoundTripsWhatIsStored) {
  Twin t;
  ASSERT_TRUE(t.set_desired(J(R"({"a":{"b":[1,2]}})")).ok());
  ASSERT_TRUE(t.adopt_reported(J(R"({"c":"d"})"), 4, 1).ok());
  auto back = Twin::restore(canonical(t.desired()), t.desired_version(), canonical(t.reported()),
                            t.reported_version(), t.observed_desired());
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(state(*back), state(t));
  EXPECT_FALSE(Twin::restore("{", 1, "{}", 1, 0).ok());
  EXPECT_FALSE(Twin::restore("{}", 1, canonical(sized(kMaxDocumentBytes + 1)), 1, 0).ok());
  EXPECT_FALSE(Twin::restore("{}", kMaxVersion + 1, "{}", 1, 0).ok());
}

}  // namespace
}  // namespace flotilla::twin
