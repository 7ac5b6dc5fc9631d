#include "cloud-hub/api_ota.hpp"

#include "cloud-hub/api_reply.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// ArtifactOutcome and RolloutOutcome codes have the same names.
template <typename CodeT>
int http_status(CodeT code) {
  switch (code) {
    case CodeT::kOk:
      return 200;
    case CodeT::kCreated:
      return 201;
    case CodeT::kNotFound:
      return 404;
    case CodeT::kInvalid:
      return 400;
    case CodeT::kConflict:
      return 409;
    case CodeT::kFailed:
      return 500;
  }
  return 500;
}

void send_rollout(httplib::Response& res, const RolloutOutcome& done) {
  if (done.code != RolloutOutcome::Code::kOk && done.code != RolloutOutcome::Code::kCreated) {
    return send_error(res, http_status(done.code), done.message);
  }
  json body = done.view.is_null() ? json::object() : done.view;
  body["action"] = done.action;
  send_json(res, http_status(done.code), body);
}

// A single byte range of a file of `size` bytes.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};

// The Range header's one range: nullopt when absent or not one we serve (several ranges: the
// whole file is sent); `unsatisfiable` when it starts past the end.
std::optional<ByteRange> parse_range(const std::string& header, uint64_t size,
                                     bool& unsatisfiable) {
  unsatisfiable = false;
  const std::string prefix = "bytes=";
  if (header.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string spec = header.substr(prefix.size());
  if (spec.find(',') != std::string::npos) return std::nullopt;
  const auto dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  auto number = [](const std::string& s) -> std::optional<uint64_t> {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    errno = 0;
    unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
    if (errno != 0) return std::nullopt;
    return static_cast<uint64_t>(v);
  };
  auto first = number(spec.substr(0, dash));
  auto last = number(spec.substr(dash + 1));
  if (!first && last) {  // bytes=-N: the last N bytes
    if (*last == 0 || size == 0) {
      unsatisfiable = true;
      return std::nullopt;
    }
    return ByteRange{size - std::min(*last, size), size - 1};
  }
  if (!first || (last && *last < *first)) return std::nullopt;
  if (*first >= size) {
    unsatisfiable = true;
    return std::nullopt;
  }
  return ByteRange{*first, last ? std::min(*last, size - 1) : size - 1};
}

void serve_file(const httplib::Request& req, httplib::Response& res, const std::string& path,
                const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return send_error(res, 404, what + " is not uploaded");
  }
  auto file = std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  struct stat st {};
  if (::fstat(fd, &st) != 0) return send_error(res, 500, "Failed to read " + what);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // httplib's own range handling is off (see api_ota.hpp): the request is ours to answer.
  const_cast<httplib::Request&>(req).ranges.clear();
  res.set_header("Accept-Ranges", "bytes");
  bool unsatisfiable = false;
  std::optional<ByteRange> range;
  if (req.has_header("Range"))
    range = parse_range(req.get_header_value("Range"), size, unsatisfiable);
  if (unsatisfiable) {
    res.set_header("Content-Range", "bytes */" + std::to_string(size));
    return send_error(res, 416,
                      "range '" + req.get_header_value("Range") + "' is past the end of " + what +
                          " (" + std::to_string(size) + " bytes)");
  }
  uint64_t start = 0;
  uint64_t length = size;
  if (range) {
    start = range->first;
    length = range->last - range->first + 1;
    res.status = 206;
    res.set_header("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                        std::to_string(range->last) + "/" + std::to_string(size));
  } else {
    res.status = 200;
  }
  res.set_content_provider(static_cast<size_t>(length), "application/octet-stream",
                           [file, start](size_t offset, size_t len, httplib::DataSink& sink) {
                             char buf[1 << 16];
                             const size_t n = std::min(len, sizeof(buf));
                             ssize_t got =
                                 ::pread(*file, buf, n, static_cast<off_t>(start + offset));
                             if (got <= 0)
                               return false;  // the file shrank or failed: cut the response
                             return sink.write(buf, static_cast<size_t>(got));
                           });
}

}  // namespace

void install_ota_routes(httplib::Server& server, ArtifactStore& artifacts,
                        UpdateRollouts& rollouts) {
  const std::string artifact = R"(/api/v1/artifacts/([^/]+)/([^/]+))";
  server.Get("/api/v1/artifacts", [&artifacts](const httplib::Request&, httplib::Response& res) {
    json items = json::array();
    for (const auto& a : artifacts.list()) items.push_back(artifact_json(a));
    send_json(res, 200, {{"items", items}});
  });
  server.Get(artifact, [&artifacts](const httplib::Request& req, httplib::Response& res) {
    auto a = artifacts.get(req.matches[1], req.matches[2]);
    if (!a) {
      return send_error(res, 404,
                        "artifact '" + std::string(req.matches[1]) + "' version '" +
                            std::string(req.matches[2]) + "' not found");
    }
    send_json(res, 200, artifact_json(*a));
  });
  server.Put(artifact, [&artifacts](const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() > 2 * ota::kMaxManifestBytes) {
      return send_error(res, 400, "request body is over the manifest size limit");
    }
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("manifest") || !body["manifest"].is_string() ||
        !body.contains("signature") || !body["signature"].is_string()) {
      return send_error(res, 400,
                        "request body: want {\"manifest\": \"<manifest.json text>\", "
                        "\"signature\": \"<base64>\"}");
    }
    auto done =
        artifacts.put_manifest(req.matches[1], req.matches[2], body["manifest"].get<std::string>(),
                               body["signature"].get<std::string>());
    if (done.code != ArtifactOutcome::Code::kOk && done.code != ArtifactOutcome::Code::kCreated) {
      return send_error(res, http_status(done.code), done.message);
    }
    auto a = artifacts.get(req.matches[1], req.matches[2]);
    json view = a ? artifact_json(*a) : json::object();
    view["action"] = done.code == ArtifactOutcome::Code::kCreated ? "created" : "unchanged";
    send_json(res, http_status(done.code), view);
  });
  for (const char* file : {"payload", "delta"}) {
    const bool delta = std::string(file) == "delta";
    server.Put(artifact + "/" + file, [&artifacts, delta](const httplib::Request& req,
                                                          httplib::Response& res,
                                                          const httplib::ContentReader& reader) {
      auto done = artifacts.put_file(req.matches[1], req.matches[2], delta,
                                     [&](const ArtifactStore::Sink& sink) { return reader(sink); });
      if (done.code != ArtifactOutcome::Code::kCreated) {
        return send_error(res, http_status(done.code), done.message);
      }
      auto a = artifacts.get(req.matches[1], req.matches[2]);
      json view = a ? artifact_json(*a) : json::object();
      view["action"] = "uploaded";
      send_json(res, 201, view);
    });
    server.Get(artifact + "/" + file, [&artifacts, delta, file](const httplib::Request& req,
                                                                httplib::Response& res) {
      const std::string name = req.matches[1];
      const std::string version = req.matches[2];
      if (!artifacts.get(name, version)) {
        return send_error(res, 404, "artifact '" + name + "' version '" + version + "' not found");
      }
      serve_file(
          req, res, artifacts.file_path(name, version, delta),
          std::string("the ") + file + " of artifact '" + name + "' version '" + version + "'");
    });
  }
  server.Delete(artifact, [&rollouts](const httplib::Request& req, httplib::Response& res) {
    auto done = rollouts.delete_artifact(req.matches[1], req.matches[2]);
    if (done.code != ArtifactOutcome::Code::kOk) {
      return send_error(res, http_status(done.code), done.message);
    }
    send_json(res, 200,
              {{"name", req.matches[1]}, {"version", req.matches[2]}, {"action", "deleted"}});
  });

  auto put = [&rollouts](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto all = parse_all_manifests(req.body, "request body");
    if (!all) return send_error(res, 400, all.error().message());
    if (all->rollouts.size() != 1 || !all->workloads.empty() || !all->devices.empty() ||
        all->rollouts.front().name != name) {
      return send_error(
          res, 400, "the body must hold exactly one Rollout, named '" + name + "' like the path");
    }
    send_rollout(res, rollouts.apply(all->rollouts.front()));
  };
  server.Put(R"(/api/v1/rollouts/([^/]+))", put);
  server.Post(R"(/api/v1/rollouts/([^/]+))", put);
  server.Post(R"(/api/v1/rollouts/([^/]+)/(pause|resume|abort))",
              [&rollouts](const httplib::Request& req, httplib::Response& res) {
                const std::string name = req.matches[1];
                const std::string verb = req.matches[2];
                send_rollout(res, verb == "pause"    ? rollouts.pause(name)
                                  : verb == "resume" ? rollouts.resume(name)
                                                     : rollouts.abort(name));
              });
  server.Delete(R"(/api/v1/rollouts/([^/]+))",
                [&rollouts](const httplib::Request& req, httplib::Response& res) {
                  const std::string name = req.matches[1];
                  auto done = rollouts.remove(name);
                  if (done.code != RolloutOutcome::Code::kOk) {
                    return send_error(res, http_status(done.code), done.message);
                  }
                  send_json(res, 200, {{"name", name}, {"action", "deleted"}});
                });
}

}  // namespace flotilla::hub
