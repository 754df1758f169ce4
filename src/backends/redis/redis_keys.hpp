#pragma once
// Redis key names of distributed mode, spelled here only. Always the
// hash-tagged form item:{<id>}:... (see the header of reserve_stock.lua).

#include <string>
#include <string_view>

#include "core/domain.hpp"

namespace flashsale::redis::keys {

inline std::string Item(ProductId id, std::string_view suffix) {
  return "item:{" + std::to_string(id) + "}:" + std::string(suffix);
}
inline std::string Meta(ProductId id) { return Item(id, "meta"); }
inline std::string Stock(ProductId id) { return Item(id, "stock"); }
inline std::string SoldOut(ProductId id) { return Item(id, "sold_out"); }
inline std::string Buyers(ProductId id) { return Item(id, "buyers"); }
inline std::string Order(const OrderId& order) { return "order:" + order.str(); }

}  // namespace flashsale::redis::keys
