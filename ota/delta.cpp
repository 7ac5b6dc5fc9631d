#include "ota/delta.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "ota/file_io.hpp"

namespace flotilla::ota {
namespace {

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads up to `buf.size()` bytes; fewer only at end of file. -1 with errno on failure.
ssize_t read_full(int fd, std::vector<char>& buf) {
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

// The window log that lets the last byte of the new payload reach the first byte of the base.
int window_log_for(uint64_t bytes) {
  const ZSTD_bounds bounds = ZSTD_cParam_getBounds(ZSTD_c_windowLog);
  int log = 0;
  while (log < 63 && (uint64_t{1} << log) < bytes) ++log;
  return std::clamp(log, bounds.lowerBound, bounds.upperBound);
}

std::string zstd_error(size_t code) { return ZSTD_getErrorName(code); }

}  // namespace

Expected<FileDigest> make_delta(const std::string& base_path, const std::string& new_path,
                                const std::string& out_path, const DeltaOptions& options) {
  const std::string what = "Failed to make delta from '" + base_path + "' to '" + new_path + "'";
  auto base = MappedFile::open(base_path);
  if (!base) return base.error().WithContext(what);
  Fd in(::open(new_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return Error(what + ": cannot open '" + new_path + "': " + strerror(errno));
  const off_t new_size = ::lseek(in.get(), 0, SEEK_END);
  if (new_size < 0 || ::lseek(in.get(), 0, SEEK_SET) != 0) {
    return Error(what + ": cannot size '" + new_path + "': " + strerror(errno));
  }

  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (!cctx) return Error(what + ": out of memory");
  const int window_log = window_log_for(base->data().size() + static_cast<uint64_t>(new_size));
  for (auto [param, value] :
       {std::pair{ZSTD_c_compressionLevel, options.level}, std::pair{ZSTD_c_windowLog, window_log},
        std::pair{ZSTD_c_enableLongDistanceMatching, 1}, std::pair{ZSTD_c_checksumFlag, 1},
        std::pair{ZSTD_c_contentSizeFlag, 1}}) {
    const size_t rc = ZSTD_CCtx_setParameter(cctx.get(), param, value);
    if (ZSTD_isError(rc)) return Error(what + ": zstd: " + zstd_error(rc));
  }
  size_t rc = ZSTD_CCtx_setPledgedSrcSize(cctx.get(), static_cast<uint64_t>(new_size));
  if (!ZSTD_isError(rc))
    rc = ZSTD_CCtx_refPrefix(cctx.get(), base->data().data(), base->data().size());
  if (ZSTD_isError(rc)) return Error(what + ": zstd: " + zstd_error(rc));

  auto out = AtomicOutput::create(out_path);
  if (!out) return out.error().WithContext(what);
  std::vector<char> in_buf(ZSTD_CStreamInSize() * 8);
  std::vector<char> out_buf(ZSTD_CStreamOutSize());
  uint64_t read_total = 0;
  while (true) {
    const ssize_t n = read_full(in.get(), in_buf);
    if (n < 0) return Error(what + ": cannot read '" + new_path + "': " + strerror(errno));
    read_total += static_cast<uint64_t>(n);
    const bool last = static_cast<size_t>(n) < in_buf.size();
    ZSTD_inBuffer input{in_buf.data(), static_cast<size_t>(n), 0};
    while (true) {
      ZSTD_outBuffer output{out_buf.data(), out_buf.size(), 0};
      const size_t left =
          ZSTD_compressStream2(cctx.get(), &output, &input, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(left)) {
        return Error(
            what + ": zstd: " + zstd_error(left) +
            (read_total != static_cast<uint64_t>(new_size) ? " (the file changed size)" : ""));
      }
      auto st = out->write(std::string_view(out_buf.data(), output.pos));
      if (!st) return st.error().WithContext(what);
      if (last ? left == 0 : input.pos == input.size) break;
    }
    if (last) break;
  }
  auto st = out->commit();
  if (!st) return st.error().WithContext(what);
  return FileDigest{out->sha256(), out->size()};
}

Expected<FileDigest> apply_delta(const std::string& base_path, const std::string& delta_path,
                                 const std::string& out_path, uint64_t expected_size) {
  const std::string what = "Failed to apply delta '" + delta_path + "' to '" + base_path + "'";
  auto base = MappedFile::open(base_path);
  if (!base) return base.error().WithContext(what);
  Fd in(::open(delta_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return Error(what + ": cannot open it: " + strerror(errno));

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) return Error(what + ": out of memory");
  // The delta may not ask for more memory than base + new needs (make_delta's window).
  const int window_log = window_log_for(base->data().size() + expected_size);
  size_t rc = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  if (!ZSTD_isError(rc))
    rc = ZSTD_DCtx_refPrefix(dctx.get(), base->data().data(), base->data().size());
  if (ZSTD_isError(rc)) return Error(what + ": zstd: " + zstd_error(rc));

  auto out = AtomicOutput::create(out_path);
  if (!out) return out.error().WithContext(what);
  std::vector<char> in_buf(ZSTD_DStreamInSize() * 8);
  std::vector<char> out_buf(ZSTD_DStreamOutSize());
  bool first = true;
  size_t left = 1;  // ZSTD_decompressStream's hint: 0 once the frame is complete
  while (true) {
    const ssize_t n = read_full(in.get(), in_buf);
    if (n < 0) return Error(what + ": cannot read it: " + strerror(errno));
    if (n == 0) break;
    if (first) {
      first = false;
      const unsigned long long framed = ZSTD_getFrameContentSize(in_buf.data(), n);
      if (framed == ZSTD_CONTENTSIZE_ERROR) return Error(what + ": not a zstd delta");
      if (framed != ZSTD_CONTENTSIZE_UNKNOWN && framed != expected_size) {
        return Error(what + ": it makes " + std::to_string(framed) + " bytes, want " +
                     std::to_string(expected_size));
      }
    }
    ZSTD_inBuffer input{in_buf.data(), static_cast<size_t>(n), 0};
    while (input.pos < input.size) {
      if (left == 0) return Error(what + ": trailing data after the delta");
      ZSTD_outBuffer output{out_buf.data(), out_buf.size(), 0};
      left = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(left)) {
        const ZSTD_ErrorCode code = ZSTD_getErrorCode(left);
        if (code == ZSTD_error_checksum_wrong || code == ZSTD_error_corruption_detected) {
          return Error(what +
                       ": the base does not match the delta, or the delta is corrupt (zstd: " +
                       zstd_error(left) + ")");
        }
        if (code == ZSTD_error_frameParameter_windowTooLarge) {
          return Error(what + ": it needs a window larger than base + " +
                       std::to_string(expected_size) + " bytes");
        }
        return Error(what + ": zstd: " + zstd_error(left));
      }
      if (out->size() + output.pos > expected_size) {
        return Error(what + ": it makes more than the expected " + std::to_string(expected_size) +
                     " bytes");
      }
      auto st = out->write(std::string_view(out_buf.data(), output.pos));
      if (!st) return st.error().WithContext(what);
    }
  }
  if (first) return Error(what + ": it is empty");
  if (left != 0) return Error(what + ": it is truncated");
  if (out->size() != expected_size) {
    return Error(what + ": it makes " + std::to_string(out->size()) + " bytes, want " +
                 std::to_string(expected_size));
  }
  auto st = out->commit();
  if (!st) return st.error().WithContext(what);
  return FileDigest{out->sha256(), out->size()};
}

}  // namespace flotilla::ota
