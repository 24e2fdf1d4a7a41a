// See bulk_send_ways.h.
#include "bulk_send_ways.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace ppsim {

namespace {

// The pipe of way splice: 1 MiB (the default pipe-max-size) holds ~128 pages with their entries
// (a page and an entry take a slot each). Refused (a lower limit): the default 64 KiB is kept.
constexpr int kPipeBytes = 1 << 20;

// Moves the cursor n bytes on along the item's pieces.
void Advance(const SendItem& it, SendCursor* cur, size_t n) {
  while (n > 0) {
    size_t left = it.segs[cur->seg].len - cur->off;
    if (n < left) {
      cur->off += n;
      return;
    }
    n -= left;
    cur->seg++;
    cur->off = 0;
  }
  // A piece ends exactly where n ended: the cursor is at the next one already.
}

}  // namespace

bool ParseSendWay(const std::string& s, SendWay* way) {
  if (s == "preadv") return *way = SendWay::Preadv, true;
  if (s == "writev") return *way = SendWay::Writev, true;
  if (s == "sendfile") return *way = SendWay::Sendfile, true;
  if (s == "splice") return *way = SendWay::Splice, true;
  return false;
}

const char* SendWayName(SendWay way) {
  switch (way) {
    case SendWay::Writev: return "writev";
    case SendWay::Sendfile: return "sendfile";
    case SendWay::Splice: return "splice";
    default: return "preadv";
  }
}

PagesWriter::~PagesWriter() {
  if (map_ != nullptr) munmap(const_cast<uint8_t*>(map_), pageCount_ * pageSize_);
  if (pipe_[0] >= 0) close(pipe_[0]);
  if (pipe_[1] >= 0) close(pipe_[1]);
}

int PagesWriter::Init(SendWay way, int sock, int memfd, uint64_t pageSize, uint64_t pageCount, std::string* what) {
  sock_ = sock;
  mem_ = memfd;
  pageSize_ = pageSize;
  pageCount_ = pageCount;
  way_ = pageSize == static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) ? way : SendWay::Preadv;
  if (way_ == SendWay::Preadv) return 0;
  zeros_.assign(pageSize, 0);
  if (way_ == SendWay::Sendfile || way_ == SendWay::Splice) {
    // sendfile and splice take no MSG_DONTWAIT: the description itself is made non-blocking, so that
    // a full socket returns EAGAIN (and stop() can wake the thread in poll) instead of sleeping. The
    // description is shared with Node's handle, which libuv made non-blocking already: no change for it.
    // Neither takes MSG_NOSIGNAL either: a closed peer raises SIGPIPE, which Node ignores (EPIPE is returned).
    int fl = fcntl(sock, F_GETFL);
    if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) != 0) return *what = "fcntl(bulk socket, O_NONBLOCK)", errno;
  }
  if (way_ == SendWay::Splice) {
    if (pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0) return *what = "pipe2", errno;
    (void)fcntl(pipe_[1], F_SETPIPE_SZ, kPipeBytes);  // refused: the default size works, in more rounds
  }
  if (way_ == SendWay::Writev) {
    // Read-only and shared: the page cache's pages themselves, never written through, never
    // copy-on-write. A load of a hole would allocate it (shmem), so only pages JS said hold data
    // are ever touched; one punched after it was queued is allocated again as zeros (a page of
    // resident memory until the final release) — preadv and the splice ways read it as zeros
    // without allocating. Touching a page past the memfd's end would raise SIGBUS: LayOut sends
    // those as zeros, and the guest's memfd never shrinks during a migration (nobody truncates it).
    void* m = mmap(nullptr, pageCount * pageSize, PROT_READ, MAP_SHARED, memfd, 0);
    if (m == MAP_FAILED) return *what = "mmap(memfd, " + std::to_string(pageCount * pageSize) + " bytes, PROT_READ)", errno;
    map_ = static_cast<const uint8_t*>(m);
  }
  int domain = 0;
  socklen_t l = sizeof domain;
  tcp_ = getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &l) == 0 && (domain == AF_INET || domain == AF_INET6);
  return 0;
}

int PagesWriter::LayOut(SendItem& it, std::string* what) {
  if (way_ == SendWay::Preadv) return LayOutPagesFrame(it, pageSize_), 0;
  struct stat st{};
  if (fstat(mem_, &st) != 0) return *what = "fstat(memfd)", errno;
  LayOutPagesSegments(it, pageSize_, static_cast<uint64_t>(st.st_size));
  return 0;
}

void PagesWriter::Cork(bool on) {
  // TCP only (a unix socket has no cork; its pieces are not segments anyway). Refused: the frame
  // goes out uncorked, the same bytes in smaller segments. A corked socket sends only full segments:
  // with a send buffer smaller than one (64 KiB on loopback) it would wait for the cork's 200 ms
  // timer each time it filled — the agents' bulk buffer is 256 KiB (transport.ts).
  if (!tcp_) return;
  int v = on ? 1 : 0;
  (void)setsockopt(sock_, IPPROTO_TCP, TCP_CORK, &v, sizeof v);
}

const uint8_t* PagesWriter::Ptr(const SendItem& it, const Seg& s) const {
  if (s.kind == Seg::Meta) return it.meta.data() + s.off;
  if (s.kind == Seg::Page) return map_ + s.off;  // writev only: LayOut put it below the memfd's end
  return zeros_.data();
}

int PagesWriter::Step(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what) {
  *wrote = 0;
  if (way_ == SendWay::Writev) return StepWritev(it, cur, wrote, what);
  if (way_ == SendWay::Sendfile) return StepSendfile(it, cur, wrote, what);
  return StepSplice(it, cur, wrote, what);
}

int PagesWriter::StepWritev(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what) {
  std::vector<iovec> iov;
  while (cur->seg < it.segs.size()) {
    iov.clear();
    for (size_t k = cur->seg; k < it.segs.size() && iov.size() < IOV_MAX; k++) {
      size_t skip = k == cur->seg ? cur->off : 0;
      iov.push_back({const_cast<uint8_t*>(Ptr(it, it.segs[k]) + skip), it.segs[k].len - skip});  // sendmsg only reads
    }
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = iov.size();
    ssize_t r = sendmsg(sock_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      *wrote += static_cast<size_t>(r);
      Advance(it, cur, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return EAGAIN;
    return *what = "sendmsg(bulk socket, " + std::to_string(iov.size()) + " iovecs)", r < 0 ? errno : EPIPE;
  }
  return 0;
}

int PagesWriter::StepSendfile(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what) {
  if (!cur->corked) Cork(cur->corked = true);
  while (cur->seg < it.segs.size()) {
    Seg& s = it.segs[cur->seg];
    size_t left = s.len - cur->off;
    ssize_t r;
    if (s.kind == Seg::Page) {
      off_t at = static_cast<off_t>(s.off + cur->off);
      r = sendfile(sock_, mem_, &at, left);
      if (r == 0) {  // the memfd's end (truncated since LayOut): the rest of the page as zeros, as preadv reads it
        s.kind = Seg::Zeros;
        continue;
      }
    } else {
      r = send(sock_, Ptr(it, s) + cur->off, left, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_MORE);
    }
    if (r > 0) {
      *wrote += static_cast<size_t>(r);
      Advance(it, cur, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return EAGAIN;
    *what = s.kind == Seg::Page ? "sendfile(bulk socket, memfd offset " + std::to_string(s.off + cur->off) + ", " + std::to_string(left) + " bytes)"
                                : "send(bulk socket, " + std::to_string(left) + " bytes)";
    return r < 0 ? errno : EPIPE;
  }
  Cork(cur->corked = false);  // the frame's last bytes go now
  return 0;
}

int PagesWriter::StepSplice(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what) {
  for (;;) {
    // Fill the pipe with the frame's next pieces (a page by reference, the frame's bytes copied) until it is full.
    while (cur->seg < it.segs.size()) {
      Seg& s = it.segs[cur->seg];
      size_t left = s.len - cur->off;
      ssize_t r;
      if (s.kind == Seg::Page) {
        loff_t at = static_cast<loff_t>(s.off + cur->off);
        r = splice(mem_, &at, pipe_[1], nullptr, left, SPLICE_F_NONBLOCK);
        if (r == 0) {  // the memfd's end (truncated since LayOut): zeros, as preadv reads it
          s.kind = Seg::Zeros;
          continue;
        }
      } else {
        r = write(pipe_[1], Ptr(it, s) + cur->off, left);
      }
      if (r > 0) {
        cur->piped += static_cast<size_t>(r);
        Advance(it, cur, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // the pipe is full: drain it
      *what = s.kind == Seg::Page ? "splice(memfd offset " + std::to_string(s.off + cur->off) + " → pipe, " + std::to_string(left) + " bytes)"
                                  : "write(pipe, " + std::to_string(left) + " bytes)";
      return r < 0 ? errno : EIO;
    }
    if (cur->piped == 0) return 0;  // every piece is in the socket
    // More of the frame follows unless this drain takes its last bytes: TCP keeps the segment open.
    unsigned more = cur->seg < it.segs.size() ? SPLICE_F_MORE : 0;
    ssize_t r = splice(pipe_[0], nullptr, sock_, nullptr, cur->piped, SPLICE_F_NONBLOCK | more);
    if (r > 0) {
      cur->piped -= static_cast<size_t>(r);
      *wrote += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return EAGAIN;
    *what = "splice(pipe → bulk socket, " + std::to_string(cur->piped) + " bytes)";
    return r < 0 ? errno : EPIPE;
  }
}

}  // namespace ppsim
