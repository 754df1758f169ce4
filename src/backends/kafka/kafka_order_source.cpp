#include "backends/kafka/kafka_order_source.hpp"

#include <spdlog/spdlog.h>

namespace flashsale::kafka {
namespace {
// At most one round of watermark queries (one per owned partition with
// nothing uncommitted) per 250 ms.
constexpr std::int64_t kCaughtUpCheckNs = 250'000'000;
}  // namespace

Result<std::unique_ptr<KafkaOrderSource>> KafkaOrderSource::Create(const KafkaOptions& o,
                                                                   std::string group) {
  std::unique_ptr<KafkaOrderSource> s(new KafkaOrderSource());
  s->topics_ = Topics::For(o);
  s->flush_timeout_ms_ = o.delivery_timeout_ms + 1000;

  Result<ConfPtr> cconf = MakeConf(o);
  if (!cconf) return cconf.error();
  for (const auto& [key, value] : {
           std::pair<const char*, std::string>{"group.id", group},
           {"enable.auto.commit", "false"},
           {"enable.auto.offset.store", "false"},
           {"auto.offset.reset", "earliest"},
           // A consumer killed with -9 holds its partitions until the session
           // times out: 10 s (not the default 45 s) bounds that stall.
           {"session.timeout.ms", "10000"},
           {"heartbeat.interval.ms", "2000"},
           // Throughput: large fetches, but do not sit on a half-empty fetch
           // for the default 500 ms when orders trickle in.
           {"fetch.wait.max.ms", "100"},
           {"fetch.min.bytes", "1"},
           {"max.partition.fetch.bytes", "4194304"},
           {"queued.min.messages", "200000"},
           // Partition-EOF events tell the safe-time tracking our position
           // on partitions that had nothing new since the assignment.
           {"enable.partition.eof", "true"},
       }) {
    if (Status st = SetConf(cconf->get(), key, value); !st.ok()) return st;
  }
  rd_kafka_conf_set_rebalance_cb(cconf->get(), &KafkaOrderSource::Rebalance);
  rd_kafka_conf_set_opaque(cconf->get(), s.get());
  Result<KafkaPtr> consumer = MakeHandle(RD_KAFKA_CONSUMER, std::move(*cconf));
  if (!consumer) return consumer.error();
  s->consumer_ = std::move(*consumer);
  rd_kafka_poll_set_consumer(s->consumer_.get());
  s->consumer_queue_.reset(rd_kafka_queue_get_consumer(s->consumer_.get()));

  Result<ConfPtr> pconf = MakeConf(o);
  if (!pconf) return pconf.error();
  for (const auto& [key, value] : {
           std::pair<const char*, std::string>{"enable.idempotence", "true"},
           {"acks", "all"},
           {"linger.ms", std::to_string(o.linger_ms)},
           {"message.timeout.ms", std::to_string(o.delivery_timeout_ms)},
       }) {
    if (Status st = SetConf(pconf->get(), key, value); !st.ok()) return st;
  }
  rd_kafka_conf_set_dr_msg_cb(pconf->get(), &KafkaOrderSource::DlqReport);
  rd_kafka_conf_set_opaque(pconf->get(), s.get());
  Result<KafkaPtr> dlq = MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
  if (!dlq) return dlq.error();
  s->dlq_ = std::move(*dlq);

  PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), s->topics_.orders.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(s->consumer_.get(), topics.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("subscribe to " + s->topics_.orders, err));
  }
  return s;
}

KafkaOrderSource::~KafkaOrderSource() {
  last_batch_.clear();
  if (consumer_) rd_kafka_consumer_close(consumer_.get());
  if (dlq_ && rd_kafka_flush(dlq_.get(), flush_timeout_ms_) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::error("kafka order source: closing with dead letters not delivered");
  }
  consumer_queue_.reset();
  consumer_.reset();
  dlq_.reset();
}

void KafkaOrderSource::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                 rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* self = static_cast<KafkaOrderSource*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    spdlog::info("kafka order source: assigned {} partitions", parts->cnt);
    rd_kafka_assign(rk, parts);
    return;
  }
  // Revoked: never commit for partitions we no longer own; their new owner
  // reads the uncommitted tail again.
  for (int i = 0; i < parts->cnt; ++i) {
    const std::int32_t p = parts->elems[i].partition;
    self->next_offset_.erase(p);
    self->consumed_next_.erase(p);
    self->uncommitted_newest_.erase(p);
    self->safe_.erase(p);  // published already; its new owner carries on
  }
  spdlog::info("kafka order source: revoked {} partitions", parts->cnt);
  rd_kafka_assign(rk, nullptr);
}

void KafkaOrderSource::DlqReport(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  auto* self = static_cast<KafkaOrderSource*>(opaque);
  self->dlq_error_ = ErrorText("dead letter not delivered", msg->err);
  spdlog::error("kafka order source: {}", self->dlq_error_);
  FailedLetter letter;
  letter.value.assign(static_cast<const char*>(msg->payload), msg->len);
  if (msg->key != nullptr) letter.key.assign(static_cast<const char*>(msg->key), msg->key_len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    letter.headers.reset(rd_kafka_headers_copy(headers));
  }
  self->failed_letters_.push_back(std::move(letter));
}

Status KafkaOrderSource::ProduceLetter(std::string_view value, std::string_view key,
                                       HeadersPtr& headers) {
  rd_kafka_headers_t* h = headers.get();
  const rd_kafka_resp_err_t err =
      rd_kafka_producev(dlq_.get(), RD_KAFKA_V_TOPIC(topics_.dlq.c_str()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(h),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Unavailable(ErrorText("dead letter", err));
  (void)headers.release();  // owned by the message now (only on success)
  return Status::Ok();
}

Status KafkaOrderSource::ProduceDeadLetter(const rd_kafka_message_t& msg, std::string_view reason,
                                           bool keep_on_failure) {
  HeadersPtr headers(rd_kafka_headers_new(3));
  const std::string partition = std::to_string(msg.partition);
  const std::string offset = std::to_string(msg.offset);
  rd_kafka_header_add(headers.get(), "error", -1, reason.data(),
                      static_cast<ssize_t>(reason.size()));
  rd_kafka_header_add(headers.get(), "source_partition", -1, partition.data(),
                      static_cast<ssize_t>(partition.size()));
  rd_kafka_header_add(headers.get(), "source_offset", -1, offset.data(),
                      static_cast<ssize_t>(offset.size()));
  const std::string_view value(static_cast<const char*>(msg.payload), msg.len);
  const std::string_view key(msg.key != nullptr ? static_cast<const char*>(msg.key) : "",
                             msg.key != nullptr ? msg.key_len : 0);
  spdlog::warn("kafka order source: message {}:{} sent to {}: {}", msg.partition, msg.offset,
               topics_.dlq, reason);
  Status s = ProduceLetter(value, key, headers);
  if (!s.ok() && keep_on_failure) {
    failed_letters_.push_back(
        FailedLetter{std::string(value), std::string(key), std::move(headers)});
    dlq_error_ = s.message();
  }
  return s;
}

Result<std::vector<Order>> KafkaOrderSource::Poll(std::size_t max, int wait_ms) {
  last_batch_.clear();
  std::vector<Order> orders;
  orders.reserve(std::min<std::size_t>(max, 4096));
  rd_kafka_poll(dlq_.get(), 0);  // serve dead-letter delivery reports
  int timeout = wait_ms;
  while (orders.size() < max) {
    MessagePtr msg(rd_kafka_consumer_poll(consumer_.get(), timeout));
    if (!msg) break;  // waited long enough, or Wake()
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        consumed_next_[msg->partition] = msg->offset;  // the partition's end
        continue;
      }
      spdlog::warn("kafka order source: {}", ErrorText("consume", msg->err));
      if (msg->err == RD_KAFKA_RESP_ERR__FATAL) {
        return Status::Unavailable(ErrorText("consumer", msg->err));
      }
      continue;
    }
    timeout = 0;  // have some: take what is already fetched, then return
    next_offset_[msg->partition] = msg->offset + 1;
    consumed_next_[msg->partition] = msg->offset + 1;
    if (handoff_timeout_ms_ > 0) {
      if (const std::int64_t ts = rd_kafka_message_timestamp(msg.get(), nullptr); ts > 0) {
        UnixMillis& newest = uncommitted_newest_[msg->partition];
        newest = std::max(newest, ts);
      }
    }
    Result<Order> order = decoder_.Decode({static_cast<const char*>(msg->payload), msg->len});
    if (!order) {
      // Never block the partition on a poison message. If librdkafka refuses
      // it now, Commit() produces it again before committing anything.
      (void)ProduceDeadLetter(*msg, order.error().message(), /*keep_on_failure=*/true);
      continue;
    }
    orders.push_back(std::move(*order));
    last_batch_.push_back(std::move(msg));
  }
  // Not only when this poll found nothing: with one hot product every order
  // goes to one partition, and the idle ones must keep up their safe times
  // while it is busy.
  if (handoff_timeout_ms_ > 0 && MonotonicNanos() - last_caught_up_check_ns_ >= kCaughtUpCheckNs) {
    last_caught_up_check_ns_ = MonotonicNanos();
    CheckCaughtUp();
  }
  return orders;
}

void KafkaOrderSource::TrackSafeTimes(std::int64_t handoff_timeout_ms) {
  handoff_timeout_ms_ = handoff_timeout_ms;
}

void KafkaOrderSource::CheckCaughtUp() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  PartitionListPtr parts(raw);
  for (int i = 0; i < parts->cnt; ++i) {
    const std::int32_t p = parts->elems[i].partition;
    // Polled but not committed: not persisted yet, as far as we know.
    if (next_offset_.contains(p)) continue;
    const auto next = consumed_next_.find(p);
    if (next == consumed_next_.end()) continue;  // position unknown yet
    // w before the query: the broker answers after w, so everything appended
    // before w is below `high`.
    const UnixMillis w = NowMillis();
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(consumer_.get(), topics_.orders.c_str(), p, &low, &high,
                                         1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    if (high <= next->second) {
      UnixMillis& safe = safe_[p];
      safe = std::max(safe, w - handoff_timeout_ms_);
    }
  }
}

Result<int> KafkaOrderSource::PartitionCount(int timeout_ms) {
  TopicPtr topic(rd_kafka_topic_new(consumer_.get(), topics_.orders.c_str(), nullptr));
  if (!topic) return Status::Unavailable(ErrorText("topic handle", rd_kafka_last_error()));
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_metadata(consumer_.get(), 0, topic.get(), &md, timeout_ms);
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("metadata of " + topics_.orders, e));
  }
  const int partitions = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR
                             ? md->topics[0].partition_cnt
                             : 0;
  rd_kafka_metadata_destroy(md);
  if (partitions <= 0) return Status::Unavailable("kafka: " + topics_.orders + ": no partitions");
  return partitions;
}

Status KafkaOrderSource::DeadLetter(std::size_t index, std::string_view reason) {
  if (index >= last_batch_.size()) {
    return Status::Invalid("kafka order source: DeadLetter index out of range");
  }
  // The caller retries on failure (OrderConsumer::DeadLetterOrWait): not kept.
  return ProduceDeadLetter(*last_batch_[index], reason, /*keep_on_failure=*/false);
}

Status KafkaOrderSource::Commit() {
  // Dead letters first: the commit skips their originals for good.
  std::vector<FailedLetter> retry;
  retry.swap(failed_letters_);
  dlq_error_.clear();
  for (FailedLetter& l : retry) {
    if (Status s = ProduceLetter(l.value, l.key, l.headers); !s.ok()) {
      dlq_error_ = s.message();
      failed_letters_.push_back(std::move(l));
    }
  }
  if (rd_kafka_resp_err_t err = rd_kafka_flush(dlq_.get(), flush_timeout_ms_);
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("dead letters not flushed, nothing committed", err));
  }
  if (!dlq_error_.empty() || !failed_letters_.empty()) {
    return Status::Unavailable(dlq_error_ + " (nothing committed)");
  }
  if (next_offset_.empty()) return Status::Ok();
  PartitionListPtr offsets(
      rd_kafka_topic_partition_list_new(static_cast<int>(next_offset_.size())));
  for (const auto& [partition, next] : next_offset_) {
    rd_kafka_topic_partition_list_add(offsets.get(), topics_.orders.c_str(), partition)->offset =
        next;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer_.get(), offsets.get(), 0);
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("commit", err));
  }
  for (int i = 0; i < offsets->cnt; ++i) {
    if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable(
          ErrorText("commit of partition " + std::to_string(offsets->elems[i].partition),
                    offsets->elems[i].err));
    }
  }
  next_offset_.clear();
  // Committed, so persisted: see the class comment.
  for (const auto& [partition, newest] : uncommitted_newest_) {
    UnixMillis& safe = safe_[partition];
    safe = std::max(safe, newest - handoff_timeout_ms_);
  }
  uncommitted_newest_.clear();
  return Status::Ok();
}

void KafkaOrderSource::Wake() { rd_kafka_queue_yield(consumer_queue_.get()); }

std::int64_t KafkaOrderSource::Lag() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
  PartitionListPtr parts(raw);
  if (parts->cnt == 0) return 0;
  rd_kafka_position(consumer_.get(), parts.get());  // consumed position (last + 1)
  std::int64_t lag = 0;
  for (int i = 0; i < parts->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = parts->elems[i];
    int64_t low = RD_KAFKA_OFFSET_INVALID;
    int64_t high = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_get_watermark_offsets(consumer_.get(), p.topic, p.partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    std::int64_t from = p.offset >= 0 ? p.offset : low;
    if (from < 0) continue;  // nothing consumed and no cached low mark: unknown
    if (high > from) lag += high - from;
  }
  return lag;
}

}  // namespace flashsale::kafka
