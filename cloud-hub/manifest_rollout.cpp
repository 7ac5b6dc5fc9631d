// Validation of kind Rollout documents (docs/hub.md "Rollouts").
#include <string>
#include <string_view>

#include "cloud-hub/manifest_sections.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

void read_waves(Checker& c, const DocNode& n, RolloutManifest& r) {
  if (n.kind != Kind::kList) {
    c.fail(n, "spec.waves", "want a list such as [{count: 1}, {percent: 50}, {percent: 100}]");
    return;
  }
  if (n.items.empty()) {
    c.fail(n, "spec.waves", "must hold at least one wave");
    return;
  }
  r.waves.clear();
  int64_t last_percent = 0;
  for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
    const std::string path = "spec.waves[" + std::to_string(i) + "]";
    const DocNode& w = n.items[i];
    if (!c.want_map(w, path)) return;
    c.only_fields(w, path, {"count", "percent"});
    const DocNode* count = w.find("count");
    const DocNode* percent = w.find("percent");
    if ((count == nullptr) == (percent == nullptr)) {
      c.fail(w, path, "want exactly one of count (nodes) or percent (of the selected nodes)");
      return;
    }
    RolloutWave wave;
    if (count != nullptr) {
      wave.count = c.whole(*count, path + ".count", 1, 1'000'000'000);
    } else {
      wave.percent = c.whole(*percent, path + ".percent", 1, 100);
      if (!c.failed() && wave.percent < last_percent) {
        c.fail(*percent, path + ".percent",
               "waves are cumulative: " + std::to_string(wave.percent) +
                   " is below the earlier wave's " + std::to_string(last_percent));
      }
      last_percent = wave.percent;
    }
    r.waves.push_back(wave);
  }
}

}  // namespace

bool artifact_word_ok(std::string_view s) {
  if (s.empty() || s.size() > 63 || s == "." || s == "..") return false;
  for (char ch : s) {
    if (ch <= ' ' || ch > '~' || ch == '/') return false;
  }
  return true;
}

Expected<RolloutManifest> read_rollout(Checker& c, const DocNode& doc) {
  RolloutManifest r;
  if (const DocNode* meta = c.require(doc, "metadata", "", "with a name");
      meta != nullptr && c.want_map(*meta, "metadata")) {
    c.only_fields(*meta, "metadata", {"name", "labels", "creationTimestamp"});
    if (const DocNode* name = c.require(*meta, "name", "metadata")) {
      r.line = name->line;
      r.name = c.text(*name, "metadata.name");
      if (auto st = validate_name(r.name); !st && !c.failed()) {
        c.fail(*name, "metadata.name", st.error().message());
      }
    }
    if (const DocNode* labels = meta->find("labels"))
      r.labels = c.labels(*labels, "metadata.labels");
  }
  if (c.failed()) return c.error();
  const DocNode* spec = c.require(doc, "spec", "", "with the artifact and the nodes");
  if (spec == nullptr || !c.want_map(*spec, "spec")) return c.error();
  c.only_fields(*spec, "spec",
                {"artifact", "selector", "waves", "soakSeconds", "failureThreshold",
                 "progressTimeoutSeconds"});
  if (const DocNode* a = c.require(*spec, "artifact", "spec", "{name: NAME, version: VERSION}");
      a != nullptr && c.want_map(*a, "spec.artifact")) {
    c.only_fields(*a, "spec.artifact", {"name", "version"});
    if (const DocNode* n = c.require(*a, "name", "spec.artifact")) {
      r.artifact = c.text(*n, "spec.artifact.name");
      if (!c.failed() && !artifact_word_ok(r.artifact)) {
        c.fail(*n, "spec.artifact.name", "'" + r.artifact + "' is not an artifact name");
      }
    }
    if (const DocNode* v = c.require(*a, "version", "spec.artifact")) {
      r.artifact_version = c.text(*v, "spec.artifact.version");
      if (!c.failed() && !artifact_word_ok(r.artifact_version)) {
        c.fail(*v, "spec.artifact.version",
               "'" + r.artifact_version + "' is not an artifact version");
      }
    }
  }
  if (const DocNode* sel = spec->find("selector");
      sel != nullptr && sel->kind != Kind::kNull && c.want_map(*sel, "spec.selector")) {
    c.only_fields(*sel, "spec.selector", {"matchLabels"}, {"matchExpressions"});
    if (const DocNode* ml = sel->find("matchLabels")) {
      r.selector = c.labels(*ml, "spec.selector.matchLabels");
    }
  }
  if (const DocNode* waves = spec->find("waves"); waves != nullptr && !c.failed()) {
    read_waves(c, *waves, r);
  }
  if (const DocNode* soak = spec->find("soakSeconds")) {
    r.soak_seconds = c.whole(*soak, "spec.soakSeconds", 0, 30LL * 24 * 3600);
  }
  if (const DocNode* ft = spec->find("failureThreshold");
      ft != nullptr && ft->kind != Kind::kNull && c.want_map(*ft, "spec.failureThreshold")) {
    c.only_fields(*ft, "spec.failureThreshold", {"percent", "minCount"});
    if (const DocNode* p = ft->find("percent")) {
      r.failure_percent = c.whole(*p, "spec.failureThreshold.percent", 0, 100);
    }
    if (const DocNode* m = ft->find("minCount")) {
      r.failure_min_count = c.whole(*m, "spec.failureThreshold.minCount", 1, 1'000'000'000);
    }
  }
  if (const DocNode* t = spec->find("progressTimeoutSeconds")) {
    r.progress_timeout_seconds = c.whole(*t, "spec.progressTimeoutSeconds", 1, 30LL * 24 * 3600);
  }
  if (c.failed()) return c.error();
  return r;
}

nlohmann::json to_json(const RolloutManifest& r) {
  nlohmann::json waves = nlohmann::json::array();
  for (const auto& w : r.waves) {
    waves.push_back(w.count > 0 ? nlohmann::json{{"count", w.count}}
                                : nlohmann::json{{"percent", w.percent}});
  }
  nlohmann::json meta = {{"name", r.name}};
  if (!r.labels.empty()) meta["labels"] = r.labels;
  return {
      {"apiVersion", kApiVersion},
      {"kind", "Rollout"},
      {"metadata", meta},
      {"spec",
       {{"artifact", {{"name", r.artifact}, {"version", r.artifact_version}}},
        {"selector", {{"matchLabels", r.selector}}},
        {"waves", waves},
        {"soakSeconds", r.soak_seconds},
        {"failureThreshold", {{"percent", r.failure_percent}, {"minCount", r.failure_min_count}}},
        {"progressTimeoutSeconds", r.progress_timeout_seconds}}}};
}

}  // namespace flotilla::hub
