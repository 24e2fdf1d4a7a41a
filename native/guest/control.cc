#include "control.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace guest {

namespace {

constexpr uint32_t kHelloMagic = 0x48475050;  // "PPGH"
constexpr uint32_t kHelloVersion = 1;
constexpr uint32_t kMaxFrame = 1 << 20;

bool ReadAll(int fd, void* p, size_t n) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t r = send(fd, b, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

template <typename T>
void Put(std::vector<uint8_t>& v, T x) {
  uint8_t b[sizeof(T)];
  memcpy(b, &x, sizeof(T));  // x86_64: host order is little-endian, the wire order
  v.insert(v.end(), b, b + sizeof(T));
}

// Reply frame: u32 length (of what follows), u8 status (0 ok, 1 error), payload.
bool Reply(int fd, uint8_t status, const void* payload, size_t n) {
  std::vector<uint8_t> f;
  Put<uint32_t>(f, static_cast<uint32_t>(1 + n));
  f.push_back(status);
  const auto* b = static_cast<const uint8_t*>(payload);
  f.insert(f.end(), b, b + n);
  return WriteAll(fd, f.data(), f.size());
}
bool ReplyOk(int fd, const std::vector<uint8_t>& p = {}) { return Reply(fd, 0, p.data(), p.size()); }
bool ReplyErr(int fd, const std::string& m) { return Reply(fd, 1, m.data(), m.size()); }

}  // namespace

bool SendHello(int sock, const Config& cfg, const Ram& ram, Role role, std::string& err) {
  // 48 bytes, little-endian; see docs/native.md.
  std::vector<uint8_t> h;
  Put<uint32_t>(h, kHelloMagic);
  Put<uint32_t>(h, kHelloVersion);
  Put<uint64_t>(h, reinterpret_cast<uintptr_t>(ram.base));
  Put<uint64_t>(h, cfg.mem_bytes);
  Put<uint32_t>(h, static_cast<uint32_t>(MigrationPageSize(cfg)));  // the agent's page: huge on hugetlbfs
  Put<uint32_t>(h, static_cast<uint32_t>(cfg.vcpus));
  Put<uint32_t>(h, static_cast<uint32_t>(getpid()));
  Put<uint32_t>(h, role == Role::Source ? 0 : 1);
  Put<uint32_t>(h, static_cast<uint32_t>(ram.features));
  Put<uint32_t>(h, static_cast<uint32_t>(ram.mode));
  int fds[2] = {ram.memfd, ram.uffd};
  int nfds = ram.uffd >= 0 ? 2 : 1;
  char ctl[CMSG_SPACE(sizeof fds)] = {};
  iovec iov{h.data(), h.size()};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
  if (n < 0) return err = std::string("sendmsg(hello + fds) failed: ") + strerror(errno), false;
  // The fds went with the first byte; finish the bytes if the send was short.
  if (static_cast<size_t>(n) < h.size() && !WriteAll(sock, h.data() + n, h.size() - static_cast<size_t>(n)))
    return err = std::string("send(hello) failed: ") + strerror(errno), false;
  return true;
}

int ServeControl(int sock, const Config& cfg, const Ram& ram, Machine& m) {
  for (;;) {
    uint32_t len;
    if (!ReadAll(sock, &len, 4)) {
      fprintf(stderr, "ppsim-guest: agent closed the control socket\n");
      return 3;
    }
    if (len < 1 || len > kMaxFrame) {
      fprintf(stderr, "ppsim-guest: bad control frame length %u\n", len);
      return 3;
    }
    std::vector<uint8_t> f(len);
    if (!ReadAll(sock, f.data(), len)) {
      fprintf(stderr, "ppsim-guest: control socket closed mid-frame\n");
      return 3;
    }
    uint8_t op = f[0];
    const uint8_t* p = f.data() + 1;
    size_t n = len - 1;
    std::string err;
    bool ok = true;
    switch (op) {
      case kPause:
        m.NotePauseRead();
        if (!m.Pause(err)) ok = ReplyErr(sock, err);
        else ok = ReplyOk(sock, m.SaveState());
        break;
      case kResume:
        m.NoteResumeRead();
        if (n > 0 && !m.LoadState(p, n, err)) ok = ReplyErr(sock, err);
        else if (!m.Resume(err)) ok = ReplyErr(sock, err);
        else ok = ReplyOk(sock);
        break;
      case kRun:
        ok = m.Start(err) ? ReplyOk(sock) : ReplyErr(sock, err);
        break;
      case kThrottle: {
        double r;
        if (n != 8) {
          ok = ReplyErr(sock, "THROTTLE takes one f64");
          break;
        }
        memcpy(&r, p, 8);
        if (!(r >= 0 && r <= 0.99)) {
          ok = ReplyErr(sock, "THROTTLE ratio must be in [0, 0.99]");
          break;
        }
        m.SetThrottle(r);
        ok = ReplyOk(sock);
        break;
      }
      case kProgress: {
        // u8 run state, u32 vcpus, then per vCPU: u64 steps done, u8 finished;
        // then per vCPU: u32 thread id (0 before it ran), which names it in fault messages.
        std::vector<uint8_t> out;
        Put<uint8_t>(out, static_cast<uint8_t>(m.State()));
        Put<uint32_t>(out, static_cast<uint32_t>(cfg.vcpus));
        for (size_t v = 0; v < cfg.vcpus; v++) {
          Put<uint64_t>(out, m.StepsDone(v));
          Put<uint8_t>(out, m.Finished(v) ? 1 : 0);
        }
        for (size_t v = 0; v < cfg.vcpus; v++) Put<uint32_t>(out, m.Tid(v));
        ok = ReplyOk(sock, out);
        break;
      }
      case kHash: {
        bool allDone = true;
        for (size_t v = 0; v < cfg.vcpus; v++) allDone = allDone && m.Finished(v);
        if (m.State() == RunState::Running && !allDone) {
          ok = ReplyErr(sock, "HASH needs the vCPUs paused or finished");
          break;
        }
        uint64_t h;
        if (!HashRam(ram, h, err)) ok = ReplyErr(sock, err);
        else {
          std::vector<uint8_t> out;
          Put<uint64_t>(out, h);
          ok = ReplyOk(sock, out);
        }
        break;
      }
      case kProgressLog: {
        std::vector<uint8_t> out;
        if (!m.ProgressLogBytes(out)) ok = ReplyErr(sock, "PROGRESS_LOG needs the vCPUs paused or finished");
        else ok = ReplyOk(sock, out);
        break;
      }
      case kQuit:
        ReplyOk(sock);
        return 0;
      default:
        ok = ReplyErr(sock, "unknown control op " + std::to_string(op));
    }
    if (!ok) {
      fprintf(stderr, "ppsim-guest: control socket write failed: %s\n", strerror(errno));
      return 3;
    }
  }
}

}  // namespace guest
