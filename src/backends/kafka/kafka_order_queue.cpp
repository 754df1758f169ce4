#include "backends/kafka/kafka_order_queue.hpp"

#include <spdlog/spdlog.h>

#include "backends/kafka/order_codec.hpp"
#include "core/numbers.hpp"

namespace flashsale::kafka {
namespace {

// Travels with one message through librdkafka (the message opaque).
struct Pending {
  OrderQueue::HandOffCallback done;
};

void Answer(OrderQueue::HandOffCallback& done, const Status& s) {
  try {
    done(s);
  } catch (const std::exception& e) {
    spdlog::error("kafka: hand-off callback threw: {}", e.what());
  }
}

}  // namespace

Result<std::unique_ptr<KafkaOrderQueue>> KafkaOrderQueue::Create(const KafkaOptions& o) {
  Result<ConfPtr> conf = MakeConf(o);
  if (!conf) return conf.error();
  rd_kafka_conf_t* c = conf->get();
  // Durable and exactly-once per partition: acks=all with idempotence (which
  // also caps in-flight requests at 5 and retries without reordering).
  for (const auto& [key, value] : {
           std::pair<const char*, std::string>{"enable.idempotence", "true"},
           {"acks", "all"},
           {"linger.ms", std::to_string(o.linger_ms)},
           {"message.timeout.ms", std::to_string(o.delivery_timeout_ms)},
           // Room for bursts of several hundred thousand orders/s; a full queue
           // answers NotDelivered at once rather than blocking the request.
           {"queue.buffering.max.messages", "1000000"},
           {"queue.buffering.max.kbytes", "1048576"},
           {"batch.num.messages", "10000"},
           {"compression.codec", "lz4"},
           // Every order needs its answer, successes included (the default, stated).
           {"delivery.report.only.error", "false"},
       }) {
    if (Status s = SetConf(c, key, value); !s.ok()) return s;
  }
  for (const auto& [key, value] : o.producer_properties) {
    // Every answer of HandOff() depends on these: a weaker setting would turn
    // ACCEPTED into "maybe lost" without a word.
    if (key == "acks" || key == "enable.idempotence" || key == "delivery.report.only.error") {
      return Status::Invalid("kafka: producer property " + key +
                             " is fixed (the order hand-off's durability depends on it)");
    }
    if (Status s = SetConf(c, key.c_str(), value); !s.ok()) return s;
  }
  std::unique_ptr<KafkaOrderQueue> q(new KafkaOrderQueue());
  rd_kafka_conf_set_dr_msg_cb(c, &KafkaOrderQueue::DeliveryReport);
  rd_kafka_conf_set_error_cb(c, &KafkaOrderQueue::ErrorCallback);
  rd_kafka_conf_set_opaque(c, q.get());
  Result<KafkaPtr> rk = MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!rk) return rk.error();
  q->rk_ = std::move(*rk);
  q->topic_.reset(rd_kafka_topic_new(q->rk_.get(), Topics::For(o).orders.c_str(), nullptr));
  if (!q->topic_) return Status::Invalid(ErrorText("topic handle", rd_kafka_last_error()));
  q->poll_thread_ = std::thread([p = q.get()] { p->PollLoop(); });
  return q;
}

KafkaOrderQueue::~KafkaOrderQueue() {
  if (rk_) Flush();
  stop_.store(true);
  if (poll_thread_.joinable()) poll_thread_.join();
  topic_.reset();
  rk_.reset();
}

void KafkaOrderQueue::PollLoop() {
  while (!stop_.load(std::memory_order_relaxed)) rd_kafka_poll(rk_.get(), 100);
}

void KafkaOrderQueue::HandOff(Order order, HandOffCallback done) {
  const std::string payload = EncodeOrder(order);
  const Int64Text key(order.product);
  auto* pending = new Pending{std::move(done)};
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  // F_COPY: librdkafka copies the ~120 bytes; cheaper than handing over ownership
  // of a std::string's buffer. UA: the partitioner hashes the key.
  if (rd_kafka_produce(topic_.get(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                       const_cast<char*>(payload.data()), payload.size(), key.data(), key.size(),
                       pending) != 0) {
    const rd_kafka_resp_err_t err = rd_kafka_last_error();
    std::unique_ptr<Pending> owned(pending);
    Answer(owned->done, Status::NotDelivered(ErrorText("produce refused", err)));
    if (in_flight_.fetch_sub(1) == 1) in_flight_.notify_all();
  }
}

void KafkaOrderQueue::DeliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<KafkaOrderQueue*>(opaque);
  std::unique_ptr<Pending> pending(static_cast<Pending*>(msg->_private));
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    Answer(pending->done, Status::Ok());
  } else if (rd_kafka_message_status(msg) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED) {
    Answer(pending->done, Status::NotDelivered(ErrorText("order not persisted", msg->err)));
  } else {
    // POSSIBLY_PERSISTED, or an error on a persisted message: say we don't know.
    Answer(pending->done, Status::Unknown(ErrorText("order possibly persisted", msg->err)));
  }
  if (self->in_flight_.fetch_sub(1) == 1) self->in_flight_.notify_all();
}

void KafkaOrderQueue::ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<KafkaOrderQueue*>(opaque);
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    spdlog::error("kafka order queue: fatal error: {}", buf);
  } else {
    spdlog::warn("kafka order queue: {} ({})", reason, rd_kafka_err2name(code));
  }
  MutexLock lock(&self->health_mu_);
  self->last_error_ = reason;
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    // Don't wait for the cache to expire: /readyz should say so now.
    self->health_ = Status::Unavailable(std::string("kafka: all brokers down: ") + reason);
    self->health_checked_ = std::chrono::steady_clock::now();
  }
}

void KafkaOrderQueue::Flush() {
  // rd_kafka_flush() sends lingering batches at once; the callbacks themselves
  // run on the poll thread (or here), hence the in_flight_ wait after it.
  for (std::int64_t n = in_flight_.load(); n != 0; n = in_flight_.load()) {
    rd_kafka_flush(rk_.get(), 100);
    if (rd_kafka_outq_len(rk_.get()) == 0) in_flight_.wait(n);
  }
}

Status KafkaOrderQueue::Health() {
  MutexLock lock(&health_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - health_checked_ < std::chrono::seconds(1)) return health_;
  char fatal[512];
  if (rd_kafka_fatal_error(rk_.get(), fatal, sizeof fatal) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    health_ = Status::Unavailable(std::string("kafka: producer fatal error: ") + fatal);
  } else {
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk_.get(), 0, topic_.get(), &md, 500);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(md);
      health_ = Status::Ok();
    } else {
      std::string why = "kafka: all brokers down (" + std::string(rd_kafka_err2str(err));
      if (!last_error_.empty()) why += "; last error: " + last_error_;
      health_ = Status::Unavailable(why + ")");
    }
  }
  health_checked_ = std::chrono::steady_clock::now();
  return health_;
}

}  // namespace flashsale::kafka
