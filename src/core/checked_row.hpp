#pragma once
// CheckedRow: the cells of one database row read strictly as domain values.
// A value that does not parse (written behind our back, a schema that drifted
// from ours, or SQLite keeping 'lots' in an INTEGER column) makes error() an
// Internal naming the table, the row's key and the column, never a 0, an empty
// id or PENDING. Shared by the SQLite and PostgreSQL backends, which differ
// only in how a cell's text is reached.
//
// `Cells` provides `std::string_view Text(int col) const` and
// `bool IsNull(int col) const`. `columns` names the result's columns in
// order; the first `key_columns` of them identify the row. Not thread-safe:
// one reader per row, on the thread reading the result.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "core/domain.hpp"
#include "core/numbers.hpp"
#include "core/status.hpp"

namespace flashsale {

template <class Cells>
class CheckedRow {
 public:
  CheckedRow(Cells cells, std::string_view table, std::span<const char* const> columns,
             int key_columns)
      : cells_(std::move(cells)), table_(table), columns_(columns), key_columns_(key_columns) {}

  std::int64_t Int(int col) {
    std::optional<std::int64_t> v = OptionalInt(col);
    if (!v && cells_.IsNull(col)) Corrupt(col, "is NULL");
    return v.value_or(0);
  }
  std::optional<std::int64_t> OptionalInt(int col) {
    if (cells_.IsNull(col)) return std::nullopt;
    std::optional<std::int64_t> v = ParseInt64(cells_.Text(col));
    if (!v) Corrupt(col, "is not an integer");
    return v;
  }
  OrderId Id(int col) {
    std::optional<OrderId> id = OrderId::Parse(cells_.Text(col));
    if (!id) Corrupt(col, "is not an order id");
    return id.value_or(OrderId());
  }
  OrderStatus StatusAt(int col) {
    std::optional<OrderStatus> s = ParseOrderStatus(cells_.Text(col));
    if (!s) Corrupt(col, "is not an order status");
    return s.value_or(OrderStatus::kPending);
  }
  // Any text; nullopt for NULL.
  std::optional<std::string_view> OptionalText(int col) const {
    if (cells_.IsNull(col)) return std::nullopt;
    return cells_.Text(col);
  }
  // OK, or the first value that did not parse.
  [[nodiscard]] const Status& error() const { return error_; }

 private:
  void Corrupt(int col, std::string_view why) {
    if (!error_.ok()) return;
    std::string msg = "corrupt row in " + std::string(table_) + " (";
    for (int key = 0; key < key_columns_; ++key) {
      if (key > 0) msg += ", ";
      msg += std::string(columns_[static_cast<std::size_t>(key)]) + " '" +
             std::string(cells_.Text(key)) + "'";
    }
    msg += "): " + std::string(columns_[static_cast<std::size_t>(col)]) + " '" +
           std::string(cells_.Text(col)) + "' " + std::string(why);
    error_ = Status::Internal(std::move(msg));
  }

  Cells cells_;
  std::string_view table_;
  std::span<const char* const> columns_;
  int key_columns_;
  Status error_;
};

// The columns of an order row, in this order, as both databases select them:
// price in cents, times in Unix ms, idempotency_key, pay_by, paid_at,
// closed_at and payment_ref NULL when none.
inline constexpr const char* kOrderRowColumns[] = {
    "order_id",   "user_id",         "product_id", "quantity", "price",     "status",
    "created_at", "idempotency_key", "pay_by",     "paid_at",  "closed_at", "payment_ref"};

// An order from a row of kOrderRowColumns; an error naming the row if a cell
// does not parse.
template <class Cells>
Result<Order> ReadOrderRow(Cells cells) {
  CheckedRow<Cells> row(std::move(cells), "orders", kOrderRowColumns, 1);
  Order o;
  o.id = row.Id(0);
  o.user = row.Int(1);
  o.product = row.Int(2);
  o.quantity = row.Int(3);
  o.price = row.Int(4);
  o.status = row.StatusAt(5);
  o.created_at = row.Int(6);
  if (std::optional<std::string_view> key = row.OptionalText(7)) o.idempotency_key = *key;
  o.pay_by = row.OptionalInt(8);
  o.paid_at = row.OptionalInt(9);
  o.closed_at = row.OptionalInt(10);
  if (std::optional<std::string_view> ref = row.OptionalText(11)) o.payment_ref = *ref;
  if (!row.error().ok()) return row.error();
  return o;
}

}  // namespace flashsale
