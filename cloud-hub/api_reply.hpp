// JSON replies of the REST API (api.cpp, api_devices.cpp, api_ota.cpp): a body pretty-printed
// with a trailing newline, and errors as {"error": "..."}.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

namespace flotilla::hub {

inline void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

inline void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, {{"error", message}});
}

}  // namespace flotilla::hub
