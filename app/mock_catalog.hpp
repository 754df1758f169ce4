#pragma once
// The mock catalog of the seed: products 10000000.. with random stock 0–10
// and a random price 0–100 with 2 decimals; open sale window, limit 1.

#include <cstdint>
#include <optional>
#include <vector>

#include "core/domain.hpp"

namespace flashsale::app {

inline constexpr ProductId kFirstMockProduct = 10'000'000;

std::vector<Product> MockCatalog(std::int64_t count, std::optional<std::uint64_t> seed);

}  // namespace flashsale::app
