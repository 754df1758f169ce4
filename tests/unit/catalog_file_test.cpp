// catalog_file_test: the catalog files of `flashsale seed` (app/catalog_file.*),
// JSON and CSV, for the waiting room: the nested object (JSON), the two
// optional columns (CSV), and each refusal naming its entry or line and field.
// Pure parsing; no files but one.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "catalog_file.hpp"
#include "temp_dir.hpp"

namespace flashsale::app {
namespace {

TEST(CatalogFileJson, WaitingRoomObjectNullOrAbsent) {
  Result<std::vector<Product>> got = ParseCatalogJson(R"([
    {"product_id": 1, "price": 10.5, "stock": 3,
     "waiting_room": {"admit_per_s": 50, "pass_ttl_s": 120}},
    {"product_id": 2, "price": 1, "stock": 3, "waiting_room": null},
    {"product_id": 3, "price": 1, "stock": 3, "payment_window_s": 60},
    {"product_id": 4, "price": 1, "stock": 3,
     "waiting_room": {"pass_ttl_s": 86400, "admit_per_s": 1000000}}
  ])");
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0].waiting_room, (WaitingRoom{.admit_per_s = 50, .pass_ttl_s = 120}));
  EXPECT_EQ((*got)[0].price, 1050);
  EXPECT_EQ((*got)[1].waiting_room, std::nullopt);
  EXPECT_EQ((*got)[2].waiting_room, std::nullopt);
  EXPECT_EQ((*got)[2].payment_window_s, 60);
  EXPECT_EQ((*got)[3].waiting_room,
            (WaitingRoom{.admit_per_s = kMaxAdmitPerS, .pass_ttl_s = kMaxPassTtlS}));
}

TEST(CatalogFileJson, BadWaitingRoomsNameEntryAndField) {
  struct Case {
    std::string room;
    std::string says;  // a part of the error message
  };
  const Case cases[] = {
      {"1", "'waiting_room' must be an object"},
      {"\"x\"", "'waiting_room' must be an object"},
      {"[]", "'waiting_room' must be an object"},
      {"{}", "missing 'waiting_room.admit_per_s'"},
      {R"({"admit_per_s": 5})", "missing 'waiting_room.pass_ttl_s'"},
      {R"({"pass_ttl_s": 5})", "missing 'waiting_room.admit_per_s'"},
      {R"({"admit_per_s": 0, "pass_ttl_s": 5})", "'waiting_room.admit_per_s' must be an integer"},
      {R"({"admit_per_s": 1000001, "pass_ttl_s": 5})", "'waiting_room.admit_per_s'"},
      {R"({"admit_per_s": 5, "pass_ttl_s": 86401})", "'waiting_room.pass_ttl_s'"},
      {R"({"admit_per_s": 5.5, "pass_ttl_s": 5})", "'waiting_room.admit_per_s'"},
      {R"({"admit_per_s": "5", "pass_ttl_s": 5})", "'waiting_room.admit_per_s'"},
      {R"({"admit_per_s": 5, "pass_ttl_s": 5, "x": 1})", "unknown field 'waiting_room.x'"},
  };
  for (const Case& c : cases) {
    const std::string text = R"([{"product_id": 1, "price": 1, "stock": 1},
      {"product_id": 2, "price": 1, "stock": 1, "waiting_room": )" +
                             c.room + "}]";
    SCOPED_TRACE(text);
    Result<std::vector<Product>> got = ParseCatalogJson(text);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().message().find("entry 1: "), std::string::npos) << got.error().message();
    EXPECT_NE(got.error().message().find(c.says), std::string::npos) << got.error().message();
  }
  // JSON spells it as the object only, not as the CSV columns.
  Result<std::vector<Product>> flat = ParseCatalogJson(
      R"([{"product_id": 1, "price": 1, "stock": 1, "waiting_room_admit_per_s": 5,
           "waiting_room_pass_ttl_s": 5}])");
  ASSERT_FALSE(flat);
  EXPECT_NE(flat.error().message().find("unknown field 'waiting_room_"), std::string::npos)
      << flat.error().message();
}

TEST(CatalogFileCsv, WaitingRoomColumnsBothOrNeither) {
  Result<std::vector<Product>> got = ParseCatalogCsv(
      "product_id,price,stock,waiting_room_admit_per_s,waiting_room_pass_ttl_s\n"
      "1,10.50,3,50,120\n"
      "2,1,3,,\n");
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].waiting_room, (WaitingRoom{.admit_per_s = 50, .pass_ttl_s = 120}));
  EXPECT_EQ((*got)[1].waiting_room, std::nullopt);
  // The columns are optional: a file without them has no waiting rooms.
  got = ParseCatalogCsv("product_id,price,stock\n1,1,1\n");
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->front().waiting_room, std::nullopt);
}

TEST(CatalogFileCsv, BadWaitingRoomsNameLineAndField) {
  struct Case {
    std::string header_tail;
    std::string cells;
    std::string says;
  };
  const std::string both = ",waiting_room_admit_per_s,waiting_room_pass_ttl_s";
  const Case cases[] = {
      {both, "5,", "needs both 'waiting_room_admit_per_s' and 'waiting_room_pass_ttl_s'"},
      {both, ",5", "needs both"},
      {",waiting_room_admit_per_s", "5", "needs both"},
      {both, "0,5", "'waiting_room_admit_per_s' must be 1..1000000"},
      {both, "1000001,5", "'waiting_room_admit_per_s' must be 1..1000000"},
      {both, "5,0", "'waiting_room_pass_ttl_s' must be 1..86400"},
      {both, "5,86401", "'waiting_room_pass_ttl_s' must be 1..86400"},
      {both, "x,5", "'waiting_room_admit_per_s' must be an integer"},
      {both, "5,1.5", "'waiting_room_pass_ttl_s' must be an integer"},
  };
  for (const Case& c : cases) {
    // Line 2 is valid (the new columns empty), line 3 the case.
    const std::size_t extra = std::count(c.header_tail.begin(), c.header_tail.end(), ',');
    const std::string text = "product_id,price,stock" + c.header_tail + "\n1,1,1" +
                             std::string(extra, ',') + "\n2,1,1," + c.cells + "\n";
    SCOPED_TRACE(text);
    Result<std::vector<Product>> got = ParseCatalogCsv(text);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().message().find("line 3: "), std::string::npos) << got.error().message();
    EXPECT_NE(got.error().message().find(c.says), std::string::npos) << got.error().message();
  }
}

TEST(CatalogFile, ReadCatalogFileCarriesTheWaitingRoom) {
  testutil::TempDir dir;
  const std::string path = dir.File("catalog.json");
  std::ofstream(path) << R"([{"product_id": 9, "price": 1, "stock": 1,
                              "waiting_room": {"admit_per_s": 2, "pass_ttl_s": 3}}])";
  Result<std::vector<Product>> got = ReadCatalogFile(path);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->front().waiting_room, (WaitingRoom{.admit_per_s = 2, .pass_ttl_s = 3}));
}

}  // namespace
}  // namespace flashsale::app
