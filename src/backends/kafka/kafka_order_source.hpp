#pragma once
// KafkaOrderSource: the OrderSource of distributed mode (`flashsale consume`),
// over the orders topic in consumer group `group` (the prefix is not applied
// to the group). Offsets are committed only by Commit(), synchronously, for
// what Poll() returned (at-least-once: after a restart or a rebalance the
// uncommitted tail is read again; the database ignores duplicate order ids).
//
// Dead letters: a message that does not decode is produced at once to the dlq
// topic with its original bytes and key and the headers `error`,
// `source_partition`, `source_offset` (SPEC §5), logged, and skipped;
// DeadLetter(i) does the same for order i of the last Poll(). Commit() first
// waits until every dead letter is durably delivered (retrying failed ones);
// if that fails it returns the error and commits nothing.
//
// Thread safety: one consumer thread calls Poll/Commit/Lag/DeadLetter (the
// OrderSource contract; rebalance callbacks also run on it, inside Poll).
// Wake() is safe from any thread.
// Invariant: next_offset_ holds, per partition currently owned, 1 + the offset
// of the last message Poll() consumed and not yet committed.
//
// Safe times (TrackSafeTimes; distributed mode's stranded-reservation sweep):
// per owned partition p, T_p such that every order created before T_p that
// will ever be in p has been persisted (and committed). With H the hand-off
// timeout (the producers' delivery timeout plus a margin):
//  - after a commit, T_p = max(T_p, newest timestamp committed in p - H);
//  - when p has nothing uncommitted (checked at most every 250 ms, inside
//    Poll), a watermark query started at wall time w that answers
//    high <= our next offset makes T_p = max(T_p, w - H).
// Why: the producer (KafkaOrderQueue) produces an order right after its
// reservation, at c >= created_at (the gap is a Redis round trip, inside the
// margin of H), and the message is appended by c + delivery timeout or never
// (message.timeout.ms; a request already on the wire at the deadline is
// appended within the margin too). Messages of a partition are appended in
// offset order, and the timestamp t of a message (CreateTime: its produce
// time; or LogAppendTime) is <= its append time a. So an order created
// before t - H is appended before a, at a lower offset: persisted once this
// message is. Likewise everything appended before w lies below the high
// watermark the broker answered after w: persisted when our position reached
// it. Clocks of the API hosts and this one must agree within the margin.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/kafka/kafka_options.hpp"
#include "backends/kafka/order_codec.hpp"
#include "core/clock.hpp"
#include "core/order_repository.hpp"

namespace flashsale::kafka {

class KafkaOrderSource final : public OrderSource {
 public:
  static Result<std::unique_ptr<KafkaOrderSource>> Create(
      const KafkaOptions& o, std::string group = "flash_customers_group");
  // Leaves the group (nothing committed that Commit() did not commit) and
  // flushes pending dead letters (<= delivery_timeout_ms).
  ~KafkaOrderSource() override;

  Result<std::vector<Order>> Poll(std::size_t max, int wait_ms) override;
  Status Commit() override;
  void Wake() override;
  std::int64_t Lag() override;
  Status DeadLetter(std::size_t index, std::string_view reason) override;

  // Turns on safe-time tracking with hand-off timeout `handoff_timeout_ms`
  // (see the class comment). REQUIRES: before the first Poll().
  void TrackSafeTimes(std::int64_t handoff_timeout_ms);
  // The safe time (Unix ms) of each owned partition that has one. Consumer
  // thread only.
  [[nodiscard]] const std::map<std::int32_t, UnixMillis>& SafeTimes() const { return safe_; }
  // Partitions of the orders topic, from the broker's metadata. Any thread.
  Result<int> PartitionCount(int timeout_ms);

 private:
  // A dead letter whose delivery failed, kept to be produced again by Commit().
  struct FailedLetter {
    std::string value;
    std::string key;
    HeadersPtr headers;
  };

  KafkaOrderSource() = default;
  static void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* parts, void* opaque);
  static void DlqReport(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
  // Produces `msg`'s bytes and key to the dlq with the SPEC §5 headers. When
  // librdkafka refuses it at once and `keep_on_failure`, Commit() retries it.
  Status ProduceDeadLetter(const rd_kafka_message_t& msg, std::string_view reason,
                           bool keep_on_failure);
  // Takes `headers` only on success.
  Status ProduceLetter(std::string_view value, std::string_view key, HeadersPtr& headers);

  // Constant after Create().
  Topics topics_;
  int flush_timeout_ms_ = 5000;
  KafkaPtr consumer_;
  QueuePtr consumer_queue_;  // for Wake()
  KafkaPtr dlq_;

  // Consumer thread only.
  OrderDecoder decoder_;
  std::map<std::int32_t, std::int64_t> next_offset_;
  std::vector<MessagePtr> last_batch_;  // the messages of the last Poll()'s orders, same order
  std::vector<FailedLetter> failed_letters_;
  std::string dlq_error_;

  // Safe times (consumer thread only). 0: not tracked.
  std::int64_t handoff_timeout_ms_ = 0;
  // Per owned partition: the next offset to read (from messages and
  // partition-EOF events), the newest timestamp polled and not committed yet,
  // and the safe time.
  std::map<std::int32_t, std::int64_t> consumed_next_;
  std::map<std::int32_t, UnixMillis> uncommitted_newest_;
  std::map<std::int32_t, UnixMillis> safe_;
  std::int64_t last_caught_up_check_ns_ = 0;
  // Raises the safe time of every partition the broker says we have read to
  // the end (nothing uncommitted).
  void CheckCaughtUp();
};

}  // namespace flashsale::kafka
