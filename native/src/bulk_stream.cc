// See bulk_stream.h.
#include "bulk_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ppsim {

namespace {
// Room each read asks the kernel to fill.
constexpr size_t kReadChunk = 256 * 1024;
}  // namespace

uint64_t MonotonicNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

void StreamReader::Init(int sock, int wake, int stallMs, const uint8_t* initial, size_t n) {
  sock_ = sock;
  wake_ = wake;
  stallMs_ = stallMs;
  buf_.assign(initial, initial + n);
  pos_ = 0;
  len_ = n;
  lastData_ = std::chrono::steady_clock::now();
}

bool StreamReader::Have(size_t n, const std::atomic<bool>& running) {
  while (len_ - pos_ < n) {
    if (!ReadMore(running, n - (len_ - pos_))) return false;
  }
  return true;
}

bool StreamReader::ReadMore(const std::atomic<bool>& running, size_t owed) {
  for (;;) {
    if (!running) return end = End::Stopped, false;
    // Straight into the buffer's free tail (no second copy); unconsumed bytes move to the front first.
    if (pos_ > 0 && buf_.size() - len_ < kReadChunk) {
      memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
      len_ -= pos_;
      pos_ = 0;
    }
    if (buf_.size() - len_ < kReadChunk) buf_.resize(std::max(len_ + kReadChunk, buf_.size() * 2));
    // A frame owed more than a chunk (a huge page's, 2 MiB): read up to its end and no further, so
    // that once it is consumed nothing of the next frame sits behind it to be moved to the front —
    // a 2 MiB memmove per frame otherwise, as much as the copy into guest memory itself.
    size_t room = buf_.size() - len_;
    if (owed >= kReadChunk) room = std::min(room, owed);
    uint64_t t0 = MonotonicNs();
    ssize_t r = recv(sock_, buf_.data() + len_, room, MSG_DONTWAIT);
    if (r > 0) {
      len_ += static_cast<size_t>(r);
      recvNs += MonotonicNs() - t0;
      lastData_ = std::chrono::steady_clock::now();
      return true;
    }
    if (r == 0) return end = End::Closed, false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return err = errno, what = "recv(bulk socket)", end = End::Failed, false;
    pollfd pf[2] = {{sock_, POLLIN, 0}, {wake_, POLLIN, 0}};
    // Mid-frame, the peer owes us bytes: wake up to check for a stall.
    bool mid = pos_ < len_;
    uint64_t w0 = MonotonicNs();
    int k = poll(pf, 2, mid && stallMs_ > 0 ? std::min(stallMs_, 1000) : -1);
    waitNs += MonotonicNs() - w0;
    if (k < 0 && errno != EINTR) return err = errno, what = "poll(bulk socket)", end = End::Failed, false;
    if (pf[1].revents) return end = End::Stopped, false;
    if (k == 0 && mid) {
      auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - lastData_).count();
      if (silent >= stallMs_) {
        silentMs = static_cast<uint64_t>(silent);
        partial = len_ - pos_;
        return end = End::Stalled, false;
      }
    }
  }
}

}  // namespace ppsim
