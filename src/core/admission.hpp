#pragma once
// The waiting room's rule and its tokens (README "Admission control").
//
// A product with a waiting room hands out queue positions 1, 2, 3, ... in
// order of joining. Positions are admitted in order at admit_per_s from the
// sale's start: the admission frontier `admitted` (a real number; positions
// <= floor(admitted) are admitted) grows by admit_per_s per second of sale
// time, but never past the positions handed out, so a quiet queue does not
// bank admissions for a crowd that joins later. Every store (in memory,
// Redis) advances the frontier with AdvanceFrontier(), on joins, polls and a
// periodic tick, so instances that share a store admit in one order.
//
// An admitted ticket gets a pass: a token signed with HMAC-SHA256 under the
// waiting-room secret, bound to user, product and expiry, which any instance
// verifies without a lookup. Tickets are signed the same way (another
// prefix), so GET /queue/{ticket} needs no lookup to know whose place it is.
//
// Pure functions and immutable objects: thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/domain.hpp"
#include "core/signatures.hpp"
#include "core/status.hpp"

namespace flashsale {

// A waiting room's shared state, as one store call left it.
struct QueueState {
  WaitingRoom room;
  std::optional<UnixMillis> starts_at;
  std::int64_t joined = 0;       // positions handed out: 1 .. joined
  double admitted = 0;           // the admission frontier
  UnixMillis as_of = 0;          // when the frontier was last advanced
  std::uint64_t generation = 0;  // changes when the queue is reset (embedded restart)
  bool sold_out = false;         // the product has no units left: nobody more is admitted
  // Positions this call moved the frontier past (the admitted metric: summed
  // over instances, each position is counted once, by whoever advanced it).
  std::int64_t newly_admitted = 0;

  [[nodiscard]] std::int64_t AdmittedCount() const { return static_cast<std::int64_t>(admitted); }
};

// Moves the frontier of `s` to `now`. Before starts_at nothing is admitted.
void AdvanceFrontier(QueueState& s, UnixMillis now);

// When `position` was admitted (REQUIRES: position <= AdmittedCount()): the
// frontier's crossing time, assuming it grew at the full rate since. Never
// earlier than the true crossing (a capped frontier grew slower), so a pass
// may last a little longer, never shorter, than pass_ttl_s.
UnixMillis AdmittedAt(const QueueState& s, std::int64_t position);

// Seconds until `position` is admitted at the room's rate (0 when admitted),
// counting the wait for the sale to start.
std::int64_t EstimatedWaitS(const QueueState& s, std::int64_t position, UnixMillis now);

// One place in a product's queue, as GET /queue/{ticket} sees it.
struct QueueTicket {
  ProductId product = 0;
  UserId user = 0;
  std::int64_t position = 0;
  std::uint64_t generation = 0;
};

// Why a pass was refused; the index of flashsale_pass_rejected_total{reason}.
enum class PassRejection : std::uint8_t {
  kMissing,
  kMalformed,
  kForged,  // not signed with this server's secret
  kExpired,
  kOtherUser,
  kOtherProduct,
};
std::string_view ToString(PassRejection r);

// Signs and checks passes and tickets under the waiting-room secret.
//   pass:   "<product>.<user>.<expires_at ms>.<32 hex MAC>"
//   ticket: "<product>.<user>.<position>.<generation>.<32 hex MAC>"
class AdmissionTokens {
 public:
  static constexpr std::size_t kMacLength = 32;
  explicit AdmissionTokens(std::string_view secret) : mac_(secret) {}

  [[nodiscard]] std::string Pass(ProductId product, UserId user, UnixMillis expires_at) const;
  // nullopt when the pass is valid for `user` buying `product` at `now`.
  [[nodiscard]] std::optional<PassRejection> CheckPass(std::string_view pass, UserId user,
                                                       ProductId product, UnixMillis now) const;

  [[nodiscard]] std::string Ticket(const QueueTicket& t) const;
  // nullopt unless `text` is a ticket signed with this secret.
  [[nodiscard]] std::optional<QueueTicket> ParseTicket(std::string_view text) const;

 private:
  [[nodiscard]] std::string Mac(std::string_view kind, std::string_view fields) const;
  // `fields` + "." + its MAC: the token of `kind`.
  [[nodiscard]] std::string Signed(std::string_view kind, std::string fields) const;
  const KeyedHmacSha256 mac_;
};

// Where a product's queue lives: in memory (embedded) or in Redis, in the
// product's hash slot (distributed). Thread-safe.
class WaitingRoomStore {
 public:
  enum class JoinOutcome {
    kJoined,         // a new position
    kAlreadyJoined,  // the user's existing position (same ticket)
    kAddressFull,    // the address holds max_places places in this queue already
    kNoWaitingRoom,  // the product exists and has no waiting room
    kUnknownProduct,
  };
  struct Joined {
    JoinOutcome outcome = JoinOutcome::kUnknownProduct;
    std::int64_t position = 0;  // kJoined, kAlreadyJoined
    QueueState state;           // kJoined, kAlreadyJoined, kAddressFull
  };

  virtual ~WaitingRoomStore() = default;

  // True when calls may wait on the network: the HTTP layer then runs them
  // on its blocking pool, not on an I/O thread.
  [[nodiscard]] virtual bool blocking() const = 0;

  // Joins `user` to `product`'s queue from `address` (a key of the client's
  // address), at most `max_places` places per address (0 = no cap). Advances
  // the frontier first (a join after a quiet spell does not find banked
  // admissions). Allowed before starts_at.
  virtual Result<Joined> Join(ProductId product, UserId user, std::string_view address,
                              std::int64_t max_places, UnixMillis now) = 0;

  // Advances the frontier to `now` and returns the state; nullopt when the
  // product is unknown or has no waiting room.
  virtual Result<std::optional<QueueState>> Advance(ProductId product, UnixMillis now) = 0;
};

}  // namespace flashsale
