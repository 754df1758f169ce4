#pragma once
// Kafka connection options, topic names and the librdkafka plumbing shared by
// the producer and consumer adapters of this folder (RAII handles, config
// helpers). Plain values and free functions; thread-compatible.

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.hpp"

namespace flashsale::kafka {

struct KafkaOptions {
  std::string bootstrap;           // "host:port[,host:port]"
  std::string topic_prefix;        // "" in production; tests use a unique prefix per test
  int linger_ms = 2;               // producer batching
  int delivery_timeout_ms = 5000;  // message.timeout.ms: after it a message is answered
  std::string client_id = "flashsale";
  // Extra librdkafka properties of the order producer (KafkaOrderQueue), set
  // after its own defaults so they override them (e.g. a smaller
  // queue.buffering.max.messages). The durability settings the funnel relies
  // on (acks, enable.idempotence, delivery.report.only.error) are refused.
  std::vector<std::pair<std::string, std::string>> producer_properties;
};

// The seed's topic names, with the prefix in front. Defined here only.
struct Topics {
  std::string orders;  // product_orders
  std::string status;  // product_status_change_topic
  std::string dlq;     // product_orders.dlq
  static Topics For(const KafkaOptions& o);
};

// Creates the three topics when missing (Admin API): orders with
// `orders_partitions` partitions, status and dlq with 1; "already exists" is
// fine. Returns once the broker's metadata shows every topic with a leader for
// each partition, so producers and consumers can use them at once.
Status EnsureTopics(const KafkaOptions& o, int orders_partitions = 6, int timeout_ms = 10000);

// Messages of the orders topic that consumer group `group` has not committed
// yet (high watermark - committed offset, summed over partitions; a partition
// the group never committed counts from its low watermark). Reads offsets
// only: it does not join the group, so running consumers are not disturbed.
Result<std::int64_t> GroupLag(const KafkaOptions& o, const std::string& group,
                              int timeout_ms = 5000);

// ---- librdkafka plumbing (used by this folder's adapters and tests) ----

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
  void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, KafkaDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, KafkaDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, KafkaDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, KafkaDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, KafkaDeleter>;

// A conf with bootstrap.servers, client.id and logging routed to spdlog.
// Invalid when `o.bootstrap` is empty or a property is refused.
Result<ConfPtr> MakeConf(const KafkaOptions& o);
// Sets one property; Invalid naming the key and librdkafka's reason.
Status SetConf(rd_kafka_conf_t* conf, const char* key, const std::string& value);
// Creates a handle; takes ownership of `conf` in every case.
Result<KafkaPtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf);

// "kafka: <what>: <librdkafka error string>".
std::string ErrorText(std::string_view what, rd_kafka_resp_err_t err);

}  // namespace flashsale::kafka
