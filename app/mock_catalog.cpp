#include "mock_catalog.hpp"

#include <random>

namespace flashsale::app {

std::vector<Product> MockCatalog(std::int64_t count, std::optional<std::uint64_t> seed) {
  std::mt19937_64 rng(seed ? *seed : std::random_device{}());
  std::uniform_int_distribution<std::int64_t> stock(0, 10);
  std::uniform_int_distribution<std::int64_t> cents(0, 10'000);
  std::vector<Product> out;
  out.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    Product p;
    p.id = kFirstMockProduct + i;
    p.stock = stock(rng);
    p.price = cents(rng);
    p.limit_per_user = 1;
    out.push_back(p);
  }
  return out;
}

}  // namespace flashsale::app
