#include "backends/kafka/kafka_status_broadcast.hpp"

#include <spdlog/spdlog.h>

#include <charconv>
#include <random>
#include <thread>

#include "backends/kafka/order_codec.hpp"
#include "core/numbers.hpp"

namespace flashsale::kafka {
namespace {

std::string RandomHex() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  auto [end, ec] = std::to_chars(buf, buf + 16, v, 16);
  (void)ec;
  return std::string(buf, end);
}

}  // namespace

Result<std::unique_ptr<KafkaStatusBroadcast>> KafkaStatusBroadcast::Create(const KafkaOptions& o) {
  std::unique_ptr<KafkaStatusBroadcast> b(new KafkaStatusBroadcast());
  b->topics_ = Topics::For(o);

  Result<ConfPtr> pconf = MakeConf(o);
  if (!pconf) return pconf.error();
  for (const auto& [key, value] : {std::pair<const char*, std::string>{"acks", "all"},
                                   {"linger.ms", std::to_string(o.linger_ms)},
                                   {"message.timeout.ms", std::to_string(o.delivery_timeout_ms)}}) {
    if (Status s = SetConf(pconf->get(), key, value); !s.ok()) return s;
  }
  rd_kafka_conf_set_dr_msg_cb(pconf->get(), &KafkaStatusBroadcast::ProducerReport);
  Result<KafkaPtr> producer = MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
  if (!producer) return producer.error();
  b->producer_ = std::move(*producer);
  b->producer_topic_.reset(
      rd_kafka_topic_new(b->producer_.get(), b->topics_.status.c_str(), nullptr));

  Result<ConfPtr> cconf = MakeConf(o);
  if (!cconf) return cconf.error();
  for (const auto& [key, value] :
       {std::pair<const char*, std::string>{"group.id", "flashsale-status-" + RandomHex()},
        {"auto.offset.reset", "latest"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        // A short-lived group per process: let the broker forget it soon.
        {"session.timeout.ms", "10000"},
        {"fetch.wait.max.ms", "100"}}) {
    if (Status s = SetConf(cconf->get(), key, value); !s.ok()) return s;
  }
  rd_kafka_conf_set_rebalance_cb(cconf->get(), &KafkaStatusBroadcast::Rebalance);
  rd_kafka_conf_set_opaque(cconf->get(), b.get());
  Result<KafkaPtr> consumer = MakeHandle(RD_KAFKA_CONSUMER, std::move(*cconf));
  if (!consumer) return consumer.error();
  b->consumer_ = std::move(*consumer);
  rd_kafka_poll_set_consumer(b->consumer_.get());
  return b;
}

KafkaStatusBroadcast::~KafkaStatusBroadcast() {
  Stop();
  if (producer_) rd_kafka_flush(producer_.get(), 2000);
  producer_topic_.reset();
  producer_.reset();
  if (consumer_) rd_kafka_consumer_close(consumer_.get());
  consumer_.reset();
}

void KafkaStatusBroadcast::Subscribe(Listener listener) {
  listeners_.push_back(std::move(listener));
}

void KafkaStatusBroadcast::Notify(ProductId product, ProductStatusChange change,
                                  std::int64_t epoch) {
  for (const Listener& l : listeners_) {
    try {
      l(product, change, epoch);
    } catch (const std::exception& e) {
      spdlog::error("kafka status broadcast: listener threw: {}", e.what());
    }
  }
}

void KafkaStatusBroadcast::Publish(ProductId product, ProductStatusChange change,
                                   std::int64_t epoch) {
  Notify(product, change, epoch);  // this instance does not wait for the round trip
  const std::string payload = EncodeStatusChange(product, change, epoch, NowMillis());
  const Int64Text key(product);
  if (rd_kafka_produce(producer_topic_.get(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                       const_cast<char*>(payload.data()), payload.size(), key.data(), key.size(),
                       nullptr) != 0) {
    spdlog::error("{}", ErrorText("status change not sent", rd_kafka_last_error()));
  }
  rd_kafka_poll(producer_.get(), 0);  // serve earlier delivery reports
}

void KafkaStatusBroadcast::ProducerReport(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::error("{}", ErrorText("status change not delivered", msg->err));
  }
}

void KafkaStatusBroadcast::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* self = static_cast<KafkaStatusBroadcast*>(opaque);
  if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    spdlog::info("kafka status broadcast: partitions revoked ({})", rd_kafka_err2name(err));
    rd_kafka_assign(rk, nullptr);
    return;
  }
  // Start at the end, explicitly: "latest" would be resolved later, and a
  // change published between the assignment and that lookup would be lost.
  // A partition this instance read before (re-assignment) resumes where it was.
  for (int i = 0; i < parts->cnt; ++i) {
    rd_kafka_topic_partition_t& p = parts->elems[i];
    if (auto it = self->position_.find(p.partition); it != self->position_.end()) {
      p.offset = it->second;
      continue;
    }
    p.offset = RD_KAFKA_OFFSET_END;
    // A fresh topic's leader may still be loading ("not leader"): retry a while.
    for (int attempt = 0; attempt < 50; ++attempt) {
      int64_t low = 0;
      int64_t high = 0;
      const rd_kafka_resp_err_t qerr =
          rd_kafka_query_watermark_offsets(rk, p.topic, p.partition, &low, &high, 2000);
      if (qerr == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p.offset = high;
        break;
      }
      if (attempt == 49) {
        spdlog::warn("{} (starting at the end: changes sent meanwhile may be missed)",
                     ErrorText("status topic watermark", qerr));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    self->position_[p.partition] = p.offset;
  }
  rd_kafka_assign(rk, parts);
  spdlog::info("kafka status broadcast: assigned {} partitions of {}, from offset {}", parts->cnt,
               self->topics_.status, parts->cnt > 0 ? parts->elems[0].offset : -1);
  MutexLock lock(&self->mu_);
  self->assigned_ = true;
  self->assigned_cv_.SignalAll();
}

Status KafkaStatusBroadcast::Start() {
  PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topics_.status.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), topics.get());
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("subscribe to " + topics_.status, err));
  }
  stop_.store(false);
  thread_ = std::thread([this] { ConsumeLoop(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  MutexLock lock(&mu_);
  while (!assigned_ && std::chrono::steady_clock::now() < deadline)
    assigned_cv_.WaitUntil(&mu_, deadline);
  if (!assigned_) {
    spdlog::warn("kafka status broadcast: no partition assignment after 10 s, going on");
  }
  return Status::Ok();
}

void KafkaStatusBroadcast::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void KafkaStatusBroadcast::ConsumeLoop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    MessagePtr msg(rd_kafka_consumer_poll(consumer_.get(), 100));
    rd_kafka_poll(producer_.get(), 0);
    if (!msg) continue;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        spdlog::warn("{}", ErrorText("status topic", msg->err));
      }
      continue;
    }
    position_[msg->partition] = msg->offset + 1;
    const std::string_view payload(static_cast<const char*>(msg->payload), msg->len);
    Result<StatusChangeMessage> m = DecodeStatusChange(payload);
    if (!m) {
      spdlog::warn("kafka status broadcast: skipping malformed message at {}:{}: {}",
                   msg->partition, msg->offset, m.error().message());
      continue;
    }
    Notify(m->product, m->change, m->epoch);
  }
}

}  // namespace flashsale::kafka
