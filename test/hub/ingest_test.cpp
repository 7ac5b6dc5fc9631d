// The sync server's ingest path: status batches coalesced per node, and a threaded hub that
// ends in exactly the state an inline one reaches from the same messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>

#include "cloud-hub/up_message.hpp"
#include "test/hub/fake_agent.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using testing::FakeAgent;
using testing::HubHarness;
using testing::instance;

pb::StatusBatch batch(const std::string& node, std::vector<pb::InstanceStatus> records,
                      bool full = false) {
  pb::StatusBatch b;
  b.set_node(node);
  b.set_full(full);
  for (auto& r : records) *b.add_instances() = std::move(r);
  return b;
}

pb::Event event(uint64_t seq, const std::string& reason) {
  pb::Event e;
  e.set_object("web");
  e.set_reason(reason);
  e.set_seq(seq);
  return e;
}

pb::Heartbeat heartbeat(const std::string& node) {
  pb::Heartbeat hb;
  hb.set_node(node);
  return hb;
}

TEST(CoalesceStatus, MergesANodesRunKeepingTheNewestRecordOfEachInstance) {
  std::vector<UpMessage> in;
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_PENDING, 1),
                               instance("web", "web-2", pb::PHASE_PENDING, 2)}));
  in.emplace_back(batch("n2", {instance("web", "web-9", pb::PHASE_RUNNING, 7)}));
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 3),
                               instance("web", "web-3", pb::PHASE_RUNNING, 4)}));
  in.emplace_back(batch("n1", {instance("web", "web-2", pb::PHASE_FAILED, 1)}));  // older
  size_t merged = 0;
  auto out = coalesce_status(std::move(in), merged);
  EXPECT_EQ(merged, 2u);
  ASSERT_EQ(out.size(), 2u);
  const auto& n1 = std::get<pb::StatusBatch>(out[0]);
  ASSERT_EQ(n1.instances_size(), 3);
  EXPECT_EQ(n1.instances(0).instance_id(), "web-1");
  EXPECT_EQ(n1.instances(0).phase(), pb::PHASE_RUNNING);
  EXPECT_EQ(n1.instances(1).phase(), pb::PHASE_PENDING);  // seq 2 beats the later seq 1
  EXPECT_EQ(n1.instances(2).instance_id(), "web-3");
  EXPECT_EQ(std::get<pb::StatusBatch>(out[1]).node(), "n2");
}

TEST(CoalesceStatus, AMergedRunAcksTheHighestRevisionItCarried) {
  std::vector<UpMessage> in;
  auto b1 = batch("n1", {instance("web", "web-1", pb::PHASE_PENDING, 1)});
  b1.set_acked_revision(4);
  auto b2 = batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 2)});  // an older agent's
  auto b3 = batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 3)});
  b3.set_acked_revision(6);
  auto b4 = batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 4)});
  b4.set_acked_revision(5);  // reordered
  for (auto* b : {&b1, &b2, &b3, &b4}) in.emplace_back(*b);
  size_t merged = 0;
  auto out = coalesce_status(std::move(in), merged);
  EXPECT_EQ(merged, 3u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<pb::StatusBatch>(out[0]).acked_revision(), 6u);

  // A run none of whose batches acks stays without an ack.
  std::vector<UpMessage> plain;
  plain.emplace_back(batch("n2", {instance("web", "web-1", pb::PHASE_RUNNING, 1)}));
  plain.emplace_back(batch("n2", {instance("web", "web-1", pb::PHASE_RUNNING, 2)}));
  auto out2 = coalesce_status(std::move(plain), merged);
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_FALSE(std::get<pb::StatusBatch>(out2[0]).has_acked_revision());
}

TEST(CoalesceStatus, AnythingElseFromTheNodeOrAFullBatchEndsTheRun) {
  std::vector<UpMessage> in;
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_PENDING, 1)}));
  in.emplace_back(heartbeat("n2"));  // another node's: no effect on n1's run
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 2)}));
  in.emplace_back(heartbeat("n1"));
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_FAILED, 3)}));
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 4)}, /*full=*/true));
  in.emplace_back(batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 5)}));
  size_t merged = 0;
  auto out = coalesce_status(std::move(in), merged);
  EXPECT_EQ(merged, 1u);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(std::get<pb::StatusBatch>(out[0]).instances(0).seq(), 2u);
  EXPECT_TRUE(std::holds_alternative<pb::Heartbeat>(out[1]));
  EXPECT_TRUE(std::holds_alternative<pb::Heartbeat>(out[2]));
  EXPECT_EQ(std::get<pb::StatusBatch>(out[3]).instances(0).seq(), 3u);
  EXPECT_TRUE(std::get<pb::StatusBatch>(out[4]).full());
  EXPECT_EQ(std::get<pb::StatusBatch>(out[5]).instances(0).seq(), 5u);
}

TEST(CoalesceStatus, ARepeatedBatchInARunAddsNoEvents) {
  pb::StatusBatch b = batch("n1", {instance("web", "web-1", pb::PHASE_RUNNING, 2)});
  *b.add_events() = event(1, "Started");
  b.set_dropped_events(3);
  pb::StatusBatch later = batch("n1", {});
  *later.add_events() = event(3, "Killed");
  *later.add_events() = event(0, "Unnumbered");
  std::vector<UpMessage> in{b, b, later};
  size_t merged = 0;
  auto out = coalesce_status(std::move(in), merged);
  ASSERT_EQ(out.size(), 1u);
  const auto& m = std::get<pb::StatusBatch>(out[0]);
  ASSERT_EQ(m.events_size(), 3);
  EXPECT_EQ(m.events(0).reason(), "Started");
  EXPECT_EQ(m.events(1).reason(), "Killed");
  EXPECT_EQ(m.events(2).reason(), "Unnumbered");
  EXPECT_EQ(m.dropped_events(), 6u);
  EXPECT_EQ(m.instances_size(), 1);
}

// Everything the store holds that up messages can change.
using InstanceRow = std::tuple<std::string, std::string, uint64_t, int>;
using EventRow = std::tuple<std::string, std::string, std::string, std::string>;
struct Observed {
  std::vector<InstanceRow> instances;
  std::vector<EventRow> events;
  std::vector<uint64_t> status_seqs;
  bool operator==(const Observed&) const = default;
};

Observed observe(HubHarness& hub) {
  Observed o;
  auto instances = hub.store->list_instances();
  auto events = hub.store->list_events(EventFilter{"", "", 100000});
  auto nodes = hub.store->list_nodes();
  EXPECT_TRUE(instances.ok() && events.ok() && nodes.ok());
  if (!instances.ok() || !events.ok() || !nodes.ok()) return o;
  for (const auto& r : *instances) {
    o.instances.emplace_back(r.node, r.status.instance_id(), r.status.seq(), r.status.phase());
  }
  for (const auto& e : *events) {
    o.events.emplace_back(e.node, e.object, e.reason, e.message);
  }
  for (const auto& n : *nodes) o.status_seqs.push_back(n.status_seq);
  std::sort(o.instances.begin(), o.instances.end());
  // Coalescing keeps each node's order, not the interleaving of different nodes' messages.
  std::stable_sort(o.events.begin(), o.events.end(), [](const EventRow& a, const EventRow& b) {
    return std::get<0>(a) < std::get<0>(b);
  });
  return o;
}

// A random stream from the agents: status batches with repeats, replays of older records,
// removals, full batches and numbered events (some replayed), mixed with heartbeats.
void feed(std::mt19937& rng, const std::vector<std::pair<std::string, FakeAgent*>>& agents,
          int messages) {
  std::vector<uint64_t> seqs(agents.size(), 0);
  auto pick = [&](unsigned n) { return rng() % n; };
  for (int m = 0; m < messages; ++m) {
    const size_t a = pick(static_cast<unsigned>(agents.size()));
    const auto& [node, agent] = agents[a];
    uint64_t& seq = seqs[a];
    const unsigned what = pick(10);
    if (what == 0) {
      agent->heartbeat(0, seq);
      continue;
    }
    pb::StatusBatch b;
    b.set_node(node);
    b.set_full(what == 1);
    const unsigned records = 1 + pick(4);
    for (unsigned r = 0; r < records; ++r) {
      // A third of the records replay an older seq; the rest are new.
      const uint64_t s = pick(3) == 0 && seq > 3 ? seq - pick(3) : ++seq;
      *b.add_instances() = instance("web", "web-" + std::to_string(pick(5)),
                                    static_cast<pb::Phase>(1 + pick(4)), s, pick(8) == 0);
    }
    if (pick(3) == 0) {
      const uint64_t s = pick(2) == 0 ? ++seq : seq / 2;
      *b.add_events() = event(s, "E" + std::to_string(s));
    }
    agent->send("status", b);
  }
}

TEST(ThreadedIngest, EndsInTheStateInlineHandlingReaches) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    HubHarness inline_hub;
    HubHarness threaded_hub(":memory:", {}, /*ingest_thread=*/true);
    for (HubHarness* hub : {&inline_hub, &threaded_hub}) {
      hub->apply(testing::process_workload("web", "placement: {everyNode: true}"));
      std::vector<std::unique_ptr<FakeAgent>> owned;
      std::vector<std::pair<std::string, FakeAgent*>> agents;
      for (const char* name : {"n1", "n2", "n3"}) {
        owned.push_back(std::make_unique<FakeAgent>(hub->broker, name));
        agents.emplace_back(name, owned.back().get());
        owned.back()->hello(0);
      }
      hub->sync_server->wait_idle();
      // Hold the threaded hub's controller so its messages pile up and are coalesced (the
      // inline hub handles each on this thread: holding it would block this thread).
      const bool hold = hub == &threaded_hub;
      std::mutex mu;
      std::condition_variable cv;
      bool holding = false;
      bool release = false;
      std::thread holder([&] {
        if (!hold) return;
        hub->controller->batch([&] {
          std::unique_lock lock(mu);
          holding = true;
          cv.notify_all();
          cv.wait(lock, [&] { return release; });
        });
      });
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return holding || !hold; });
      }
      std::mt19937 rng(seed);
      feed(rng, agents, 300);
      {
        std::lock_guard lock(mu);
        release = true;
      }
      cv.notify_all();
      holder.join();
      hub->sync_server->wait_idle();
    }
    EXPECT_GT(threaded_hub.metrics.value("flotilla_hub_status_batches_coalesced_total"), 0u);
    EXPECT_EQ(inline_hub.metrics.value("flotilla_hub_status_batches_coalesced_total"), 0u);
    const Observed want = observe(inline_hub);
    const Observed got = observe(threaded_hub);
    EXPECT_FALSE(want.instances.empty());
    EXPECT_FALSE(want.events.empty());
    EXPECT_EQ(got.instances, want.instances);
    EXPECT_EQ(got.events, want.events);
    EXPECT_EQ(got.status_seqs, want.status_seqs);
  }
}

}  // namespace
}  // namespace flotilla::hub
