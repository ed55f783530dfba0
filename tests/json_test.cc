#include "core/json.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tessera {
namespace {

TEST(JsonObjectTest, ScalarsInOneLine) {
  JsonObject o;
  o.Add("s", "x").Add("i", 3).Add("n", int64_t{-7}).Add("d", 0.1).Add("t", true).Add("f", false).AddNull("z");
  EXPECT_EQ(o.ToString(), R"({"s": "x", "i": 3, "n": -7, "d": 0.1, "t": true, "f": false, "z": null})");
  EXPECT_EQ(o.ToCompactString(), R"({"s":"x","i":3,"n":-7,"d":0.1,"t":true,"f":false,"z":null})");
}

TEST(JsonObjectTest, EmptyObject) {
  EXPECT_EQ(JsonObject().ToString(), "{}");
  EXPECT_EQ(JsonObject().ToCompactString(), "{}");
}

TEST(JsonObjectTest, DoublesHaveNineSignificantDigits) {
  JsonObject o;
  o.Add("a", 2.0 / 3).Add("b", 1e-12).Add("c", 46108.948213).Add("d", 0.5f);
  EXPECT_EQ(o.ToString(), R"({"a": 0.666666667, "b": 1e-12, "c": 46108.9482, "d": 0.5})");
}

TEST(JsonObjectTest, Float32sAreShortestRoundTrip) {
  JsonObject o;
  o.AddFloat32("one", 0.1f).AddFloat32s("data", {0.1f, -1.0f, 0.003921569f});
  EXPECT_EQ(o.ToCompactString(), R"({"one":0.1,"data":[0.1,-1,0.003921569]})");
  // The same float as a double is widened to nine digits.
  EXPECT_EQ(JsonObject().Add("one", 0.1f).ToString(), R"({"one": 0.100000001})");
}

TEST(JsonObjectTest, NanAndInfinityAreNull) {
  const double inf = std::numeric_limits<double>::infinity();
  JsonObject o;
  o.Add("nan", std::nan("")).Add("inf", -inf).Add("list", std::vector<double>{1.5, inf});
  o.AddFloat32("f", std::numeric_limits<float>::quiet_NaN())
      .AddFloat32s("fs", {std::numeric_limits<float>::infinity()});
  EXPECT_EQ(o.ToString(), R"({"nan": null, "inf": null, "list": [1.5, null], "f": null, "fs": [null]})");
}

TEST(JsonObjectTest, StringsAreEscaped) {
  EXPECT_EQ(JsonObject().Add("k\"ey", "a\\b\n\t\r\x01" "é").ToString(),
            "{\"k\\\"ey\": \"a\\\\b\\n\\t\\r\\u0001é\"}");
}

TEST(JsonObjectTest, Arrays) {
  JsonObject o;
  o.Add("ints", std::vector<int64_t>{1, 2, 3})
      .Add("strings", std::vector<std::string>{"1", "b"})
      .Add("empty", std::vector<std::string>{})
      .Add("doubles", std::vector<double>{0.25});
  EXPECT_EQ(o.ToString(), R"({"ints": [1, 2, 3], "strings": ["1", "b"], "empty": [], "doubles": [0.25]})");
  EXPECT_EQ(o.ToCompactString(), R"({"ints":[1,2,3],"strings":["1","b"],"empty":[],"doubles":[0.25]})");
}

TEST(JsonObjectTest, Float64sAreShortestRoundTrip) {
  JsonObject o;
  o.AddFloat64("loss", 0.9254321078392698).AddFloat64("tenth", 0.1).AddFloat64("two", 2.0).AddFloat64("small", 1e-7);
  o.Add("nine_digits", 0.9254321078392698);
  EXPECT_EQ(o.ToString(), R"({"loss": 0.9254321078392698, "tenth": 0.1, "two": 2, "small": 1e-07, )"
                          R"("nine_digits": 0.925432108})");
  JsonObject special;
  special.AddFloat64("nan", std::nan("")).AddFloat64("inf", -std::numeric_limits<double>::infinity());
  EXPECT_EQ(special.ToString(), R"({"nan": null, "inf": null})");
}

TEST(JsonObjectTest, ArraysOfMixedElementsTakeTheLayoutOfTheirParent) {
  JsonArray shape;
  shape.Add("N").Add(1).Add(int64_t{28});
  JsonArray mixed;
  mixed.Add(JsonObject().Add("a", 1)).Add("b");
  JsonObject o;
  o.Add("shape", shape).Add("mixed", mixed).Add("empty", JsonArray());
  EXPECT_EQ(o.ToString(), R"({"shape": ["N", 1, 28], "mixed": [{"a": 1}, "b"], "empty": []})");
  EXPECT_EQ(o.ToCompactString(), R"({"shape":["N",1,28],"mixed":[{"a":1},"b"],"empty":[]})");
  EXPECT_EQ(o.ToPrettyString(), "{\n  \"shape\": [\"N\", 1, 28],\n  \"mixed\": [{\"a\": 1}, \"b\"],\n  \"empty\": []\n}\n");
}

TEST(JsonObjectTest, NestedObjectsTakeTheLayoutOfTheirParent) {
  JsonObject inner;
  inner.Add("name", "a").Add("shape", std::vector<int64_t>{-1, 10});
  JsonObject o;
  o.Add("one", inner).Add("list", std::vector<JsonObject>{inner, JsonObject().Add("name", "b")});
  EXPECT_EQ(o.ToString(), R"({"one": {"name": "a", "shape": [-1, 10]}, )"
                          R"("list": [{"name": "a", "shape": [-1, 10]}, {"name": "b"}]})");
  EXPECT_EQ(o.ToCompactString(),
            R"({"one":{"name":"a","shape":[-1,10]},"list":[{"name":"a","shape":[-1,10]},{"name":"b"}]})");
}

TEST(JsonObjectTest, PrettyHasOneTopLevelKeyPerLine) {
  JsonObject o;
  o.Add("name", "x").Add("by_epoch", std::vector<int64_t>{6, 4}).Add("inner", JsonObject().Add("a", 1));
  EXPECT_EQ(o.ToPrettyString(), "{\n"
                                "  \"name\": \"x\",\n"
                                "  \"by_epoch\": [6, 4],\n"
                                "  \"inner\": {\"a\": 1}\n"
                                "}\n");
}

TEST(JsonObjectTest, KeysKeepTheirOrderAndAreNotDeduplicated) {
  EXPECT_EQ(JsonObject().Add("b", 1).Add("a", 2).Add("b", 3).ToString(), R"({"b": 1, "a": 2, "b": 3})");
}

}  // namespace
}  // namespace tessera
