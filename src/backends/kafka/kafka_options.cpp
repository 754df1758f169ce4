#include "backends/kafka/kafka_options.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace flashsale::kafka {
namespace {

// librdkafka's syslog levels mapped onto spdlog (called on librdkafka threads).
void LogCallback(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  spdlog::level::level_enum lvl = spdlog::level::debug;
  if (level <= 3) {
    lvl = spdlog::level::err;
  } else if (level == 4) {
    lvl = spdlog::level::warn;
  } else if (level <= 6) {
    lvl = spdlog::level::info;
  }
  spdlog::log(lvl, "kafka {} [{}]: {}", rd_kafka_name(rk), fac, buf);
}

// Every topic known with a leader on every partition (and the orders topic
// with at least the requested count).
bool TopicsReady(rd_kafka_t* rk, const std::vector<std::string>& names, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return false;
  }
  std::size_t ready = 0;
  for (const std::string& name : names) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      const rd_kafka_metadata_topic_t& t = md->topics[i];
      if (name != t.topic || t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partition_cnt == 0) continue;
      bool leaders = true;
      for (int p = 0; p < t.partition_cnt; ++p) leaders = leaders && t.partitions[p].leader >= 0;
      if (leaders) ++ready;
    }
  }
  rd_kafka_metadata_destroy(md);
  return ready == names.size();
}

}  // namespace

Topics Topics::For(const KafkaOptions& o) {
  return Topics{o.topic_prefix + "product_orders", o.topic_prefix + "product_status_change_topic",
                o.topic_prefix + "product_orders.dlq"};
}

std::string ErrorText(std::string_view what, rd_kafka_resp_err_t err) {
  std::string out = "kafka: ";
  out.append(what);
  out.append(": ");
  out.append(rd_kafka_err2str(err));
  return out;
}

Status SetConf(rd_kafka_conf_t* conf, const char* key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return Status::Invalid(std::string("kafka: config ") + key + "=" + value + ": " + err);
  }
  return Status::Ok();
}

Result<ConfPtr> MakeConf(const KafkaOptions& o) {
  if (o.bootstrap.empty()) return Status::Invalid("kafka: no bootstrap servers configured");
  ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [key, value] :
       {std::pair<const char*, std::string>{"bootstrap.servers", o.bootstrap},
        {"client.id", o.client_id},
        // Loopback and LAN brokers: find a restarted broker quickly.
        {"reconnect.backoff.ms", "50"},
        {"reconnect.backoff.max.ms", "1000"}}) {
    if (Status s = SetConf(conf.get(), key, value); !s.ok()) return s;
  }
  rd_kafka_conf_set_log_cb(conf.get(), LogCallback);
  return conf;
}

Result<KafkaPtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr) return Status::Invalid(std::string("kafka: cannot create client: ") + err);
  (void)conf.release();  // owned by rk now
  return KafkaPtr(rk);
}

Status EnsureTopics(const KafkaOptions& o, int orders_partitions, int timeout_ms) {
  const Topics topics = Topics::For(o);
  Result<ConfPtr> conf = MakeConf(o);
  if (!conf) return conf.error();
  Result<KafkaPtr> rk = MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!rk) return rk.error();

  const std::vector<std::pair<std::string, int>> wanted = {
      {topics.orders, orders_partitions}, {topics.status, 1}, {topics.dlq, 1}};
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  char err[512];
  for (const auto& [name, partitions] : wanted) {
    rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(name.c_str(), partitions, -1, err, sizeof err);
    if (t == nullptr) {
      rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
      return Status::Invalid("kafka: topic " + name + ": " + err);
    }
    new_topics.push_back(t);
  }
  QueuePtr queue(rd_kafka_queue_new(rk->get()));
  rd_kafka_AdminOptions_t* admin =
      rd_kafka_AdminOptions_new(rk->get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(admin, timeout_ms, err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(admin, timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk->get(), new_topics.data(), new_topics.size(), admin, queue.get());
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());

  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue.get(), timeout_ms + 2000);
  if (ev == nullptr) return Status::Unavailable("kafka: creating topics timed out");
  Status result;
  if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = Status::Unavailable(std::string("kafka: creating topics: ") +
                                 rd_kafka_event_error_string(ev));
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    for (std::size_t i = 0; i < n && result.ok(); ++i) {
      const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
      const char* msg = rd_kafka_topic_result_error_string(results[i]);
      result = Status::Unavailable(std::string("kafka: creating topic ") +
                                   rd_kafka_topic_result_name(results[i]) + ": " +
                                   (msg != nullptr ? msg : rd_kafka_err2str(e)));
    }
  }
  rd_kafka_event_destroy(ev);
  if (!result.ok()) return result;

  // The controller has the topics; wait until the broker serves them.
  std::vector<std::string> names;
  for (const auto& w : wanted) names.push_back(w.first);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!TopicsReady(rk->get(), names, 1000)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("kafka: topics created but not ready within the timeout");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Ok();
}

Result<std::int64_t> GroupLag(const KafkaOptions& o, const std::string& group, int timeout_ms) {
  const Topics topics = Topics::For(o);
  Result<ConfPtr> conf = MakeConf(o);
  if (!conf) return conf.error();
  if (Status st = SetConf(conf->get(), "group.id", group); !st.ok()) return st;
  if (Status st = SetConf(conf->get(), "enable.auto.commit", "false"); !st.ok()) return st;
  Result<KafkaPtr> rk = MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  if (!rk) return rk.error();

  const rd_kafka_metadata_t* md = nullptr;
  TopicPtr topic(rd_kafka_topic_new(rk->get(), topics.orders.c_str(), nullptr));
  if (rd_kafka_resp_err_t e = rd_kafka_metadata(rk->get(), 0, topic.get(), &md, timeout_ms);
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("metadata of " + topics.orders, e));
  }
  int partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);
  PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topics.orders.c_str(), p);
  }
  if (rd_kafka_resp_err_t e = rd_kafka_committed(rk->get(), list.get(), timeout_ms);
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable(ErrorText("committed offsets of " + group, e));
  }
  std::int64_t lag = 0;
  for (int i = 0; i < list->cnt; ++i) {
    std::int64_t low = 0, high = 0;
    if (rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk->get(), topics.orders.c_str(), list->elems[i].partition, &low, &high, timeout_ms);
        e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable(ErrorText("watermarks of " + topics.orders, e));
    }
    const std::int64_t committed = list->elems[i].offset >= 0 ? list->elems[i].offset : low;
    lag += std::max<std::int64_t>(0, high - committed);
  }
  rd_kafka_consumer_close(rk->get());
  return lag;
}

}  // namespace flashsale::kafka
