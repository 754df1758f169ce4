// Micro-benchmarks of the hot path, one line per workload:
//   BM_ParsePurchaseRequest   lean HTTP parse of a pipelined-size POST /purchase
//   BM_ReadPurchaseBody       strict JSON validation of the purchase body
//   BM_SoldOutFromL1          funnel answer for a sold-out product (L1 hit)
//   BM_ReserveInMemory        one reservation in the embedded stock store
//   BM_CheckPass              a waiting room's pass verified (HMAC-SHA256)
// Run: build/release/bench/funnel_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "backends/embedded/local_status_broadcast.hpp"
#include "backends/embedded/memory_idempotency_store.hpp"
#include "backends/embedded/memory_stock_store.hpp"
#include "core/admission.hpp"
#include "funnel/purchase_funnel.hpp"
#include "http/http_parser.hpp"
#include "http/json_body.hpp"

namespace flashsale {
namespace {

constexpr std::string_view kRequest =
    "POST /purchase HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
    "Content-Length: 52\r\n\r\n{\"user_id\": 42, \"product_id\": 10000000, \"amount\": 1}";

void BM_ParsePurchaseRequest(benchmark::State& state) {
  http::HttpRequest req;
  for (auto _ : state) {
    http::ParseResult r = http::ParseRequest(kRequest, req);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParsePurchaseRequest);

void BM_ReadPurchaseBody(benchmark::State& state) {
  static constexpr http::FieldSpec kSpec[] = {{"user_id", http::FieldType::kInt, true, 0},
                                              {"product_id", http::FieldType::kInt, true, 1},
                                              {"amount", http::FieldType::kInt, true, 1}};
  http::JsonBodyReader reader;
  http::BodyValues values;
  std::vector<http::FieldError> errors;
  const std::string_view body = R"({"user_id": 42, "product_id": 10000000, "amount": 1})";
  for (auto _ : state) {
    bool ok = reader.Read(body, kSpec, values, errors);
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_ReadPurchaseBody);

// Hands nothing off: the benchmarks below never reach a hand-off.
class NullQueue final : public OrderQueue {
 public:
  void HandOff(Order, HandOffCallback done) override { done(Status::Ok()); }
  void Flush() override {}
};

void BM_SoldOutFromL1(benchmark::State& state) {
  embedded::MemoryStockStore stock;
  stock.Load({Product{1, 100, 0, std::nullopt, std::nullopt, 1}}, {});
  embedded::MemoryIdempotencyStore idempotency;
  embedded::LocalStatusBroadcast broadcast;
  NullQueue queue;
  FunnelMetrics metrics;
  PurchaseFunnel funnel(stock, queue, idempotency, broadcast, metrics, {});
  PurchaseRequest req{7, 1, 1, {}};
  funnel.Buy(req, [](const PurchaseReply&) {});  // sets L1
  for (auto _ : state) {
    funnel.Buy(req, [](const PurchaseReply& r) { benchmark::DoNotOptimize(r.outcome); });
  }
}
BENCHMARK(BM_SoldOutFromL1)->Threads(1)->Threads(2);

void BM_ReserveInMemory(benchmark::State& state) {
  embedded::MemoryStockStore stock;
  stock.Load({Product{1, 100, INT64_MAX / 2, std::nullopt, std::nullopt, INT64_MAX / 2}}, {});
  Reservation r{1, 7, 1, OrderId(), 0};
  for (auto _ : state) {
    ++r.user;
    stock.Reserve(r, [](Result<ReserveResult> res) { benchmark::DoNotOptimize(res); });
  }
}
BENCHMARK(BM_ReserveInMemory);

}  // namespace
}  // namespace flashsale

// A waiting room's pass checked on POST /purchase (issue 10): parse, one
// HMAC-SHA256 under the pre-keyed secret, compare.
static void BM_CheckPass(benchmark::State& state) {
  const flashsale::AdmissionTokens tokens("bench-waiting-room-secret");
  const flashsale::UnixMillis now = flashsale::NowMillis();
  const std::string pass = tokens.Pass(1001, 424242, now + 60'000);
  for (auto _ : state) {
    benchmark::DoNotOptimize(tokens.CheckPass(pass, 424242, 1001, now));
  }
}
BENCHMARK(BM_CheckPass)->Threads(1)->Threads(2);

BENCHMARK_MAIN();
