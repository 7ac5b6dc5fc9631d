// Store: device twins (the devices table, schema steps 6 and 7).
#include "cloud-hub/store.hpp"

namespace flotilla::hub {
namespace {

constexpr const char* kDeviceColumns =
    "name, node, desired, desired_version, reported, reported_version, observed_desired, "
    "updated_ms, labels";

DeviceRecord read_device(const db::Stmt& s) {
  DeviceRecord d;
  d.name = s.col_text(0);
  d.node = s.col_text(1);
  d.desired = s.col_text(2);
  d.desired_version = static_cast<uint64_t>(s.col_int(3));
  d.reported = s.col_text(4);
  d.reported_version = static_cast<uint64_t>(s.col_int(5));
  d.observed_desired = static_cast<uint64_t>(s.col_int(6));
  d.updated_ms = s.col_int(7);
  d.labels = labels_from_text(s.col_text(8));
  return d;
}

}  // namespace

Expected<std::optional<DeviceRecord>> Store::get_device(const std::string& name) {
  auto s = db_->prepare(std::string("SELECT ") + kDeviceColumns + " FROM devices WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(read_device(*s));
}

Expected<std::vector<DeviceRecord>> Store::list_devices(const std::string& node) {
  std::string sql = std::string("SELECT ") + kDeviceColumns + " FROM devices";
  sql += node.empty() ? " ORDER BY name" : " WHERE node = ? ORDER BY name";
  auto s = db_->prepare(sql);
  if (!s) return s.error();
  if (!node.empty()) s->bind(1, node);
  std::vector<DeviceRecord> out;
  auto on_row = [&] { out.push_back(read_device(*s)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Status Store::put_device(const DeviceRecord& d) {
  static const std::string kUpsert = db::upsert_sql("devices", kDeviceColumns, 1);
  auto s = db_->prepare(kUpsert);
  if (!s) return s.error();
  s->bind(1, d.name)
      .bind(2, d.node)
      .bind(3, d.desired)
      .bind(4, static_cast<int64_t>(d.desired_version))
      .bind(5, d.reported)
      .bind(6, static_cast<int64_t>(d.reported_version))
      .bind(7, static_cast<int64_t>(d.observed_desired))
      .bind(8, d.updated_ms)
      .bind(9, labels_to_text(d.labels));
  return s->run();
}

Status Store::delete_device(const std::string& name) {
  auto s = db_->prepare("DELETE FROM devices WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  return s->run();
}

}  // namespace flotilla::hub
