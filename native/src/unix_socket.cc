// Unix stream sockets with SCM_RIGHTS fd passing and SO_PEERCRED — what
// Node's net module cannot do. Blocking steps (accept, recv of fds) run on
// libuv pool threads with a poll() timeout and return Promises.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "util.h"

namespace ppsim {

static sockaddr_un Addr(Napi::Env env, const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) ThrowRange(env, "unix socket path too long (max 107 bytes): " + path);
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

static Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  sockaddr_un a = Addr(info.Env(), path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "socket(AF_UNIX)");
  // sockaddr_un* -> sockaddr*: the standard sockets API cast.
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 16) != 0) {
    int e = errno;
    close(fd);
    ThrowErrno(info.Env(), e, "bind/listen(" + path + ")");
  }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  sockaddr_un a = Addr(info.Env(), path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "socket(AF_UNIX)");
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    close(fd);
    ThrowErrno(info.Env(), e, "connect(" + path + ")");
  }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) ThrowErrno(info.Env(), errno, "socketpair(AF_UNIX)");
  Napi::Array r = Napi::Array::New(info.Env(), 2);
  r.Set(0u, sv[0]);
  r.Set(1u, sv[1]);
  return r;
}

static Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  ucred c{};
  socklen_t l = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) != 0) ThrowErrno(info.Env(), errno, "getsockopt(SO_PEERCRED)");
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("pid", c.pid);
  r.Set("uid", c.uid);
  r.Set("gid", c.gid);
  return r;
}

// setSendBuffer(fd, bytes) -> number: SO_SNDBUF on any socket (a TCP one
// here). Assumes fd is a socket; the kernel doubles the value for its own
// bookkeeping and reports the doubled figure, which is returned.
static Napi::Value SetSendBuffer(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int bytes = info[1].As<Napi::Number>().Int32Value();
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) != 0) ThrowErrno(info.Env(), errno, "setsockopt(SO_SNDBUF)");
  int got = 0;
  socklen_t l = sizeof got;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &l) != 0) ThrowErrno(info.Env(), errno, "getsockopt(SO_SNDBUF)");
  return Napi::Number::New(info.Env(), got);
}

// sendFds(fd, data: Uint8Array (>= 1 byte), fds: number[]) -> void
// The fds ride on the first byte; the rest of data follows in the stream.
static Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Bytes b = ArgBytes(info, 1, "data");
  if (b.len == 0) ThrowRange(env, "sendFds needs at least one data byte to carry the fds");
  if (info.Length() < 3 || !info[2].IsArray()) ThrowType(env, "fds must be an array of numbers");
  Napi::Array arr = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  if (fds.size() > 253) ThrowRange(env, "SCM_MAX_FD is 253");
  std::vector<char> ctl(CMSG_SPACE(sizeof(int) * fds.size()));
  size_t sent = 0;
  while (sent < b.len) {
    iovec iov{b.data + sent, b.len - sent};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {
      m.msg_control = ctl.data();
      m.msg_controllen = ctl.size();
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(env, errno, "sendmsg(SCM_RIGHTS, " + std::to_string(fds.size()) + " fds)");
    sent += static_cast<size_t>(n);
  }
  return env.Undefined();
}

// Base for pool-thread work that ends in a Promise and may fail with errno.
class ErrnoWorker : public Napi::AsyncWorker {
 public:
  explicit ErrnoWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Fail(int e, const std::string& what) {
    err_ = e;
    what_ = what;
    SetError(what);
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(ErrnoError(Env(), err_, what_).Value()); }
  // Waits until fd is readable or the timeout (ms, < 0 = forever) passes.
  bool WaitReadable(int fd, int timeoutMs, const std::string& what) {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, timeoutMs);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        Fail(errno, what);
        return false;
      }
      if (r == 0) {
        Fail(ETIMEDOUT, what);
        return false;
      }
      return true;
    }
  }
  Napi::Promise::Deferred deferred_;
  int err_ = 0;
  std::string what_;
};

class AcceptWorker : public ErrnoWorker {
 public:
  AcceptWorker(Napi::Env env, int fd, int timeout) : ErrnoWorker(env), fd_(fd), timeout_(timeout) {}
  void Execute() override {
    if (!WaitReadable(fd_, timeout_, "accept(unix listener " + std::to_string(fd_) + ")")) return;
    for (;;) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0 && errno == EINTR) continue;
      if (c < 0) return Fail(errno, "accept4(unix listener " + std::to_string(fd_) + ")");
      result_ = c;
      return;
    }
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), result_)); }

 private:
  int fd_, timeout_, result_ = -1;
};

// unixAccept(listenFd, timeoutMs = -1) -> Promise<fd>
static Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int timeout = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  auto* w = new AcceptWorker(info.Env(), fd, timeout);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

class RecvWorker : public ErrnoWorker {
 public:
  RecvWorker(Napi::Env env, int fd, size_t len, size_t maxFds, int timeout)
      : ErrnoWorker(env), fd_(fd), len_(len), maxFds_(maxFds), timeout_(timeout), data_(len) {}
  void Execute() override {
    std::string what = "recvmsg(SCM_RIGHTS, fd " + std::to_string(fd_) + ", " + std::to_string(len_) + " bytes)";
    std::vector<char> ctl(CMSG_SPACE(sizeof(int) * (maxFds_ == 0 ? 1 : maxFds_)));
    while (got_ < len_) {
      if (!WaitReadable(fd_, timeout_, what)) return CloseFds();
      iovec iov{data_.data() + got_, len_ - got_};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl.data();
      m.msg_controllen = ctl.size();
      // MSG_CMSG_CLOEXEC: received fds must not leak into our children.
      ssize_t n = recvmsg(fd_, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) {
        Fail(errno, what);
        return CloseFds();
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int f;
          memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);  // CMSG_DATA may be unaligned for int
          fds_.push_back(f);
        }
      }
      if (m.msg_flags & MSG_CTRUNC) {
        Fail(EMSGSIZE, what + ": more fds than expected (control data truncated)");
        return CloseFds();
      }
      if (n == 0) {
        Fail(ECONNRESET, what + ": peer closed after " + std::to_string(got_) + " bytes");
        return CloseFds();
      }
      got_ += static_cast<size_t>(n);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("data", Napi::Buffer<uint8_t>::Copy(env, data_.data(), data_.size()));
    Napi::Array a = Napi::Array::New(env, fds_.size());
    for (size_t i = 0; i < fds_.size(); i++) a.Set(static_cast<uint32_t>(i), fds_[i]);
    r.Set("fds", a);
    deferred_.Resolve(r);
  }

 private:
  void CloseFds() {
    for (int f : fds_) close(f);
    fds_.clear();
  }
  int fd_;
  size_t len_, maxFds_;
  int timeout_;
  std::vector<uint8_t> data_;
  size_t got_ = 0;
  std::vector<int> fds_;
};

// recvFds(fd, length, maxFds = 8, timeoutMs = -1) -> Promise<{ data: Buffer, fds: number[] }>
// Reads exactly `length` bytes and every fd that came with them.
static Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t len = ArgU64(info, 1, "length");
  uint64_t maxFds = ArgU64Or(info, 2, "maxFds", 8);
  int timeout = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : -1;
  if (len == 0 || len > (1u << 20)) ThrowRange(info.Env(), "recvFds length must be in 1..1048576");
  if (maxFds > 253) ThrowRange(info.Env(), "maxFds must be <= 253");
  auto* w = new RecvWorker(info.Env(), fd, len, maxFds, timeout);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

void InitUnixSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("setSendBuffer", Napi::Function::New(env, SetSendBuffer));
  exports.Set("sendFds", Napi::Function::New(env, SendFds));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds));
}

}  // namespace ppsim
