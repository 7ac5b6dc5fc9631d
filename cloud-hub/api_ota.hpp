// The REST routes of OTA artifacts and rollouts (docs/hub.md "Artifacts", "Rollouts"),
// installed by Api::install when the hub has them:
//
//   GET    /api/v1/artifacts                       {"items": [artifact...]}
//   GET    /api/v1/artifacts/NAME/VERSION          name, version, target, sha256, size, delta,
//                                                  ready (payload uploaded), deltaReady
//   PUT    /api/v1/artifacts/NAME/VERSION          {"manifest": TEXT, "signature": BASE64}:
//                                                  201 created, 200 the same again, 400, 409
//   PUT    /api/v1/artifacts/NAME/VERSION/payload  raw bytes, streamed; size and sha256 checked
//   PUT    /api/v1/artifacts/NAME/VERSION/delta    (400 with both digests on mismatch)
//   GET    /api/v1/artifacts/NAME/VERSION/payload  the file; Range: bytes=N- or bytes=N-M gives
//   GET    /api/v1/artifacts/NAME/VERSION/delta    206 with Content-Range, 416 when past the end
//   DELETE /api/v1/artifacts/NAME/VERSION          409 while an unfinished rollout uses it
//   GET    /api/v1/rollouts[/NAME]                 rollouts with status (served by Api, which also
//                                                  serves their ?watch=true)
//   PUT|POST /api/v1/rollouts/NAME                 create from a kind Rollout document (YAML or
//                                                  JSON): 201, 200 unchanged, 400, 409
//   POST   /api/v1/rollouts/NAME/pause|resume|abort   200 (also when already so), 404, 409
//   DELETE /api/v1/rollouts/NAME                   aborts it if unfinished, then deletes it
//
// cpp-httplib 0.11.4 does not bound-check Range requests itself (a range past the end of a file
// makes it call the content provider forever), so these routes answer Range requests themselves.
//
// Thread-safety: as Api's.
#pragma once

#include <httplib.h>

#include "cloud-hub/artifact_store.hpp"
#include "cloud-hub/update_rollouts.hpp"

namespace flotilla::hub {

// Largest payload or delta upload.
inline constexpr size_t kMaxArtifactBytes = size_t{64} << 30;

void install_ota_routes(httplib::Server& server, ArtifactStore& artifacts,
                        UpdateRollouts& rollouts);

}  // namespace flotilla::hub
