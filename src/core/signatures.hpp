#pragma once
// HMAC-SHA256 signatures of the order lifecycle (README "Order lifecycle"):
// the payment webhook's Flashsale-Signature header, and the cancel tokens
// handed to buyers. Pure functions over OpenSSL's libcrypto; thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/domain.hpp"

namespace flashsale {

// Lowercase hex of HMAC-SHA256(key, message).
std::string HmacSha256Hex(std::string_view key, std::string_view message);

// Equal strings, in time that does not depend on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

enum class SignatureCheck {
  kValid,
  kMissing,    // no header, or no t= / v1= in it
  kMalformed,  // t is not an integer
  kStale,      // |now - t| > kPaymentSignatureToleranceS: a replay, or a wrong clock
  kMismatch,   // no v1 matches HMAC-SHA256(secret, "<t>." + body)
};
std::string_view ToString(SignatureCheck c);

inline constexpr std::int64_t kPaymentSignatureToleranceS = 300;

// Checks `Flashsale-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (the
// webhook scheme of payment providers: several v1 values let a secret be
// rotated) against the raw request body.
SignatureCheck CheckPaymentSignature(std::string_view secret, std::string_view header,
                                     std::string_view body, std::int64_t now_s);

// The header value that CheckPaymentSignature accepts (tests, tools).
std::string SignPayment(std::string_view secret, std::string_view body, std::int64_t t);

// HMAC-SHA256 under one key, computed many times: the key's inner and outer
// SHA-256 states are absorbed once, so a MAC costs two short digests (about
// 0.5 µs instead of 6 µs for OpenSSL 3's one-shot HMAC(), which looks the
// algorithm up on every call: it was on every ACCEPTED answer). Thread-safe:
// the keyed states are read-only after construction; each call works on a
// per-thread scratch context.
class KeyedHmacSha256 {
 public:
  explicit KeyedHmacSha256(std::string_view key);
  ~KeyedHmacSha256();
  KeyedHmacSha256(const KeyedHmacSha256&) = delete;
  KeyedHmacSha256& operator=(const KeyedHmacSha256&) = delete;
  // The 32-byte MAC of `message`, as lowercase hex.
  [[nodiscard]] std::string Hex(std::string_view message) const;

 private:
  struct States;
  std::unique_ptr<States> states_;
};

// A buyer's proof that they placed the order: 32 hex digits of
// HMAC-SHA256(secret, "cancel:" + order id). Derived, not stored, so the
// ACCEPTED answer, its Idempotency-Key replays and every instance agree on it
// without a lookup; unguessable without the secret. Thread-safe.
class OrderTokens {
 public:
  static constexpr std::size_t kTokenLength = 32;
  explicit OrderTokens(std::string_view secret) : mac_(secret) {}
  [[nodiscard]] std::string CancelToken(const OrderId& order) const;
  [[nodiscard]] bool CheckCancelToken(const OrderId& order, std::string_view token) const;

 private:
  const KeyedHmacSha256 mac_;
};

// 32 random bytes as 64 hex digits (a generated secret).
std::string RandomSecretHex();

}  // namespace flashsale
