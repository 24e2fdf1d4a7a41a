// BulkSender: the source's bulk connection as a native writer thread. JS (the
// engine, through source-link.ts) queues items in the order the engine chose
// them: encoded frames it made itself, or "a pages frame of these pages", whose
// page bytes this thread moves from the guest's memfd to the socket — the bytes
// never enter JavaScript (bulk_send_frames.*: the frame's layout; bulk_send_ways.*:
// the ways of moving its pages, preadv + send, writev from a mapping, sendfile,
// splice — JS chooses one per sender). Which pages are zero is JS's call (the
// engine counted the frame's size when it chose them); this thread only moves bytes.
//
// Completions come back batched through a ThreadSafeFunction: "room" when the
// queue fell below the low-water mark, "error" once if a write failed, and
// "flushed" after close(true) wrote everything. The thread owns dup()s of the
// socket and the memfd, so JS closing its own fds never leaves it writing to a
// reused descriptor; stop() joins it and closes them.
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bulk_frames.h"
#include "bulk_send_frames.h"
#include "bulk_send_ways.h"
#include "util.h"

namespace ppsim {

namespace {

uint64_t NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

enum class Ev : uint8_t { Room, Error, Flushed };
struct Event {
  Ev kind;
  int err = 0;
  std::string what;
};

}  // namespace

class BulkSender : public Napi::ObjectWrap<BulkSender> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BulkSender",
                       {InstanceMethod<&BulkSender::Frame>("frame"), InstanceMethod<&BulkSender::Pages>("pages"),
                        InstanceAccessor<&BulkSender::Queued>("queued"), InstanceAccessor<&BulkSender::Written>("written"),
                        InstanceMethod<&BulkSender::Close>("close"), InstanceMethod<&BulkSender::Stop>("stop"),
                        InstanceMethod<&BulkSender::Stats>("stats")});
  }

  // new BulkSender(socketFd, memfd, pageSize, pageCount, lowWater, callback(events: {kind, error}[]), nice?, way?)
  explicit BulkSender(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BulkSender>(info) {
    Napi::Env env = info.Env();
    int sock = ArgFd(info, 0, "socketFd");
    int mem = ArgFd(info, 1, "memfd");
    pageSize_ = ArgU64(info, 2, "pageSize");
    pageCount_ = ArgU64(info, 3, "pageCount");
    low_ = ArgU64(info, 4, "lowWater");
    if (pageSize_ == 0 || (pageSize_ & (pageSize_ - 1)) != 0 || pageSize_ > (1u << 30)) ThrowRange(env, "pageSize must be a power of two up to 1 GiB");
    if (info.Length() < 6 || !info[5].IsFunction()) ThrowType(env, "callback must be a function");
    // The thread's own nice value (JS chooses it: the urgent lane's threads must win the CPU over bulk).
    uint64_t nice = ArgU64Or(info, 6, "nice", 0);
    if (nice > 19) ThrowRange(env, "nice must be 0 … 19");
    nice_ = static_cast<int>(nice);
    // Our own descriptions of both: JS may close its fds while we still run.
    sock_ = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (sock_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, socket " + std::to_string(sock) + ")");
    mem_ = fcntl(mem, F_DUPFD_CLOEXEC, 0);
    if (mem_ < 0) {
      int e = errno;
      close(sock_);
      ThrowErrno(env, e, "fcntl(F_DUPFD_CLOEXEC, memfd " + std::to_string(mem) + ")");
    }
    SendWay way = SendWay::Preadv;
    if (info.Length() > 7 && !info[7].IsUndefined() && !ParseSendWay(ArgString(info, 7, "way"), &way)) {
      close(sock_);
      close(mem_);
      ThrowRange(env, "way must be preadv, writev, sendfile or splice");
    }
    std::string what;
    int e = writer_.Init(way, sock_, mem_, pageSize_, pageCount_, &what);
    if (e == 0) {
      wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (wake_ < 0) e = errno, what = "eventfd";
    }
    if (e != 0) {
      close(sock_);
      close(mem_);
      ThrowErrno(env, e, "BulkSender: " + what);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "ppsim-bulk-sender", 0, 1);
    running_ = true;
    thread_ = std::thread([this] { Loop(); });
  }

  ~BulkSender() override { Shutdown(); }

 private:
  // frame(bytes, niceAfter?) -> bytes queued: a frame JS encoded, sent as it is. With niceAfter the
  // thread lowers its own priority to it right after writing this frame: the frames up to it (the
  // switchover, and pre-copy's last pages before it) are the downtime's critical path and go at the
  // priority the thread started with; what follows is background.
  Napi::Value Frame(const Napi::CallbackInfo& info) {
    Bytes b = ArgBytes(info, 0, "frame");
    SendItem it;
    it.frame.assign(b.data, b.data + b.len);
    it.size = b.len;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      uint64_t n = ArgU64(info, 1, "niceAfter");
      if (n > 19) ThrowRange(info.Env(), "niceAfter must be 0 … 19");
      it.niceAfter = static_cast<int>(n);
    }
    return Push(info.Env(), std::move(it));
  }

  // pages(pages: Uint32Array, zero: Uint8Array) -> bytes queued: one pages frame.
  Napi::Value Pages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      ThrowType(env, "pages must be a Uint32Array");
    Napi::Uint32Array pa = info[0].As<Napi::Uint32Array>();
    Bytes z = ArgBytes(info, 1, "zero");
    size_t n = pa.ElementLength();
    if (n == 0 || n > kMaxPages) ThrowRange(env, "a pages frame carries 1.." + std::to_string(kMaxPages) + " pages, got " + std::to_string(n));
    if (z.len != n) ThrowRange(env, "zero must have one flag per page");
    SendItem it;
    it.pages.assign(pa.Data(), pa.Data() + n);
    it.zero.assign(z.data, z.data + n);
    for (size_t i = 0; i < n; i++)
      if (it.pages[i] >= pageCount_) ThrowRange(env, "page " + std::to_string(it.pages[i]) + " is beyond the guest's " + std::to_string(pageCount_) + " pages");
    it.size = PagesFrameSize(it, pageSize_);  // laid out by the thread: the JS thread only counts
    return Push(env, std::move(it));
  }

  Napi::Value Push(Napi::Env env, SendItem&& it) {
    size_t bytes = it.size;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!running_ || closing_) ThrowErrno(env, EPIPE, "BulkSender: queueing on a closed sender");
      if (failed_) ThrowErrno(env, failedErr_, "BulkSender: queueing after " + failedWhat_);
      q_.push_back(std::move(it));
      queued_ += bytes;
    }
    cv_.notify_one();
    return Napi::Number::New(env, static_cast<double>(bytes));
  }

  Napi::Value Queued(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(queued_.load())); }
  Napi::Value Written(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(written_.load())); }

  // close(flush): flush = true writes what is queued, then reports "flushed" and exits; false drops it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool flush = info.Length() > 0 && info[0].ToBoolean();
    if (!flush) {
      Shutdown();
      return info.Env().Undefined();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      closing_ = true;
    }
    cv_.notify_one();
    return info.Env().Undefined();
  }

  // stats() -> where the thread's time went (ns): idle (nothing queued), reading pages, writing, waiting for socket room.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("idleNs", static_cast<double>(idleNs_.load()));
    o.Set("fillNs", static_cast<double>(fillNs_.load()));
    o.Set("sendNs", static_cast<double>(sendNs_.load()));
    o.Set("waitNs", static_cast<double>(waitNs_.load()));
    o.Set("written", static_cast<double>(written_.load()));
    o.Set("nice", nice_.load());
    o.Set("niceErrno", niceErrno_.load());
    o.Set("way", SendWayName(writer_.way()));
    return o;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!running_) return;
      running_ = false;
    }
    cv_.notify_one();
    uint64_t one = 1;
    // An 8-byte eventfd write cannot be short; failing would mean the counter overflowed, which also wakes poll.
    (void)!write(wake_, &one, sizeof one);
    thread_.join();
    close(wake_);
    close(sock_);
    close(mem_);
    tsfn_.Release();
  }

  void Emit(Event e) {
    auto* ev = new Event(std::move(e));
    // The flag is shared, not reached through `this`: a call still queued when the sender is destroyed (GC) stays safe.
    std::shared_ptr<std::atomic<bool>> pending = roomPending_;
    napi_status st = tsfn_.NonBlockingCall(ev, [pending](Napi::Env env, Napi::Function cb, Event* x) {
      if (x->kind == Ev::Room) *pending = false;
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", x->kind == Ev::Room ? "room" : x->kind == Ev::Error ? "error" : "flushed");
      o.Set("error", x->kind == Ev::Error ? ErrnoError(env, x->err, x->what).Value() : env.Null());
      delete x;
      cb.Call({o});
    });
    if (st != napi_ok) {
      if (ev->kind == Ev::Room) *roomPending_ = false;
      delete ev;
    }
  }

  // Lays out a pages frame and, for preadv, reads its data slots (bulk_send_frames.cc); a failure is the sender's.
  bool Fill(SendItem& it) {
    std::string what;
    int err = writer_.LayOut(it, &what);
    if (err == 0 && writer_.way() == SendWay::Preadv) err = FillPagesFrame(mem_, it, pageSize_, &what);
    return err == 0 || Fail(err, what);
  }

  // Until the socket has room (1), stop (0) or a failure (-1, reported).
  int WaitWritable() {
    pollfd pf[2] = {{sock_, POLLOUT, 0}, {wake_, POLLIN, 0}};
    uint64_t t0 = NowNs();
    int k = poll(pf, 2, -1);
    waitNs_ += NowNs() - t0;
    if (k < 0 && errno != EINTR) return Fail(errno, "poll(bulk socket)"), -1;
    if (pf[1].revents) return 0;  // stop
    if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      int soerr = 0;
      socklen_t l = sizeof soerr;
      getsockopt(sock_, SOL_SOCKET, SO_ERROR, &soerr, &l);
      return Fail(soerr != 0 ? soerr : EPIPE, "send(bulk socket)"), -1;
    }
    return 1;
  }

  // Writes a laid-out pages frame the way the writer was set up for (layout "segments").
  bool WritePages(SendItem& it) {
    SendCursor cur;
    for (;;) {
      if (!running_) return false;
      size_t wrote = 0;
      std::string what;
      int e = writer_.Step(it, &cur, &wrote, &what);
      queued_ -= wrote;
      written_ += wrote;
      if (e == 0) return true;
      if (e != EAGAIN) return Fail(e, what);
      if (WaitWritable() <= 0) return false;
    }
  }

  bool Fail(int err, const std::string& what) {
    {
      std::lock_guard<std::mutex> g(mu_);
      failed_ = true;
      failedErr_ = err;
      failedWhat_ = what;
    }
    Emit({Ev::Error, err, what});
    return false;
  }

  // Writes a whole buffer to the (non-blocking) socket, waiting in poll for room or for stop.
  bool WriteAll(const uint8_t* p, size_t len) {
    size_t done = 0;
    while (done < len) {
      if (!running_) return false;
      // MSG_DONTWAIT: never sleep in send (stop must be able to wake us), whatever the fd's own flags.
      ssize_t r = send(sock_, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<size_t>(r);
        queued_ -= static_cast<size_t>(r);
        written_ += static_cast<size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (WaitWritable() <= 0) return false;
        continue;
      }
      return Fail(r < 0 ? errno : EPIPE, "send(bulk socket, " + std::to_string(len - done) + " bytes)");
    }
    return true;
  }

  void Loop() {
    // Named so that per-thread CPU time (/proc/PID/task/TID/comm, bench/thread-cpu.ts) tells it apart; 15 bytes at most.
    (void)pthread_setname_np(pthread_self(), "ppsim-bulk-tx");
    niceErrno_ = NiceThisThread(nice_.load());
    for (;;) {
      SendItem it;
      {
        std::unique_lock<std::mutex> g(mu_);
        uint64_t t0 = NowNs();
        cv_.wait(g, [this] { return !running_ || !q_.empty() || closing_; });
        idleNs_ += NowNs() - t0;
        if (!running_) return;
        if (q_.empty()) {  // closing_ and all written
          g.unlock();
          Emit({Ev::Flushed, 0, ""});
          return;
        }
        it = std::move(q_.front());
        q_.pop_front();
      }
      size_t size = it.size;
      uint64_t t0 = NowNs();
      if (!it.pages.empty() && !Fill(it)) {
        queued_ -= size;
        return;
      }
      uint64_t t1 = NowNs();
      fillNs_ += t1 - t0;
      uint64_t w0 = waitNs_.load();
      bool ok;
      if (it.pages.empty()) ok = WriteAll(it.frame.data(), size);
      else if (writer_.way() == SendWay::Preadv) ok = WriteAll(reinterpret_cast<const uint8_t*>(it.filled.data()), size);  // RawByte: one plain byte
      else ok = WritePages(it);
      if (!ok) return;
      sendNs_ += (NowNs() - t1) - (waitNs_.load() - w0);
      if (it.niceAfter >= 0 && it.niceAfter != nice_.load()) {
        niceErrno_ = SetThreadNice(it.niceAfter);
        if (niceErrno_.load() == 0) nice_ = it.niceAfter;
      }
      if (queued_.load() < low_ && !roomPending_->exchange(true)) Emit({Ev::Room, 0, ""});
    }
  }

  int sock_ = -1, mem_ = -1, wake_ = -1;
  PagesWriter writer_;  // set up in the constructor, then the thread's
  uint64_t pageSize_ = 0, pageCount_ = 0, low_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SendItem> q_;
  std::atomic<bool> running_{false};
  bool closing_ = false, failed_ = false;
  int failedErr_ = 0;
  std::string failedWhat_;
  std::atomic<size_t> queued_{0}, written_{0};
  std::atomic<uint64_t> idleNs_{0}, fillNs_{0}, sendNs_{0}, waitNs_{0};
  std::shared_ptr<std::atomic<bool>> roomPending_ = std::make_shared<std::atomic<bool>>(false);
  std::thread thread_;
  std::atomic<int> nice_{0};
  std::atomic<int> niceErrno_{0};
  Napi::ThreadSafeFunction tsfn_;
};

void InitBulkSender(Napi::Env env, Napi::Object exports) {
  exports.Set("BulkSender", BulkSender::Init(env));
}

}  // namespace ppsim
