// LaneServer: the source's end of the fault lane (fault_lane.h). One thread
// reads page requests and answers each from the guest's memfd with a pages
// frame of one page (a zero page as a flag, without bytes), written at once:
// nothing else goes on this socket, so a reply is behind nothing. What it
// served reaches JS in batches (the engine books those pages as sent), and so
// does the destination's attached frame (fault_lane.h), which may come once,
// first: JS holds the helloAck from its engine until then.
//
// A released page (punched out of the memfd once the destination held it,
// source-release.ts) must never be answered with the zeros a hole reads as:
// JS marks it (release()) before it punches, and the thread checks the mark
// before and after its pread — a mark unset after the pread means the punch
// had not begun when the bytes were read. A request for a released page is
// not answered (the destination holds the page, so its fault is answered
// there). Requests before arm() (the switchover) end the lane: the guest
// there has not run, so a legitimate peer has nothing to ask.
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "bulk_frames.h"
#include "bulk_stream.h"
#include "fault_lane.h"
#include "frame_reader.h"
#include "util.h"

namespace ppsim {

namespace {

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct Served {
  bool attached = false;  // the destination's attached frame came
  std::vector<uint32_t> pages;
  std::vector<uint8_t> zero;
  uint64_t bytes = 0;
  bool end = false;
  int err = 0;
  std::string what;
  bool protocol = false;
};

struct ServerBox {
  std::mutex mu;
  Served out;  // merged until JS takes it
  std::vector<Served> ends;
  bool scheduled = false;
};

}  // namespace

class LaneServer : public Napi::ObjectWrap<LaneServer> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "LaneServer",
                       {InstanceMethod<&LaneServer::Start>("start"), InstanceMethod<&LaneServer::Arm>("arm"),
                        InstanceMethod<&LaneServer::Release>("release"), InstanceMethod<&LaneServer::Stop>("stop"),
                        InstanceMethod<&LaneServer::Stats>("stats"), InstanceMethod<&LaneServer::Tid>("tid")});
  }

  // new LaneServer(socketFd, memfd, pageSize, pageCount, stallMs, callback(notices))
  explicit LaneServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LaneServer>(info) {
    Napi::Env env = info.Env();
    int sock = ArgFd(info, 0, "socketFd");
    int mem = ArgFd(info, 1, "memfd");
    ps_ = ArgU64(info, 2, "pageSize");
    pc_ = ArgU64(info, 3, "pageCount");
    uint64_t stall = ArgU64(info, 4, "stallMs");
    if (ps_ == 0 || (ps_ & (ps_ - 1)) != 0 || ps_ > (1u << 30)) ThrowRange(env, "pageSize must be a power of two up to 1 GiB");
    if (pc_ == 0 || pc_ > (1ull << 32)) ThrowRange(env, "pageCount must be 1 … 2^32");
    if (stall > 3600000) ThrowRange(env, "stallMs must be at most an hour");
    if (info.Length() < 6 || !info[5].IsFunction()) ThrowType(env, "callback must be a function");
    stallMs_ = static_cast<int>(stall);
    released_ = ZeroedFlags(pc_);
    if (released_ == nullptr) ThrowErrno(env, ENOMEM, "LaneServer: the table of " + std::to_string(pc_) + " pages");
    sock_ = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (sock_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, socket " + std::to_string(sock) + ")");
    mem_ = fcntl(mem, F_DUPFD_CLOEXEC, 0);
    if (mem_ < 0) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC, memfd " + std::to_string(mem) + ")");
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) ThrowErrno(env, errno, "eventfd");
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "ppsim-lane-server", 0, 1);
  }

  ~LaneServer() override { Shutdown(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Bytes b = ArgBytes(info, 0, "initial");
    if (thread_.joinable() || stopped_) ThrowErrno(info.Env(), EALREADY, "LaneServer.start");
    in_.Init(sock_, wake_, stallMs_, b.data, b.len);
    running_ = true;
    thread_ = StartThread([this] { Loop(); }, &tid_);
    return info.Env().Undefined();
  }

  // arm(): the switchover went out — the guest here is paused for good, its pages final.
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    armed_ = true;
    return info.Env().Undefined();
  }

  // release(pages: Uint32Array): these pages are about to be punched out; never serve them again.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      ThrowType(info.Env(), "pages must be a Uint32Array");
    Napi::Uint32Array a = info[0].As<Napi::Uint32Array>();
    for (size_t i = 0; i < a.ElementLength(); i++) {
      if (a[i] >= pc_) ThrowRange(info.Env(), "page " + std::to_string(a[i]) + " is beyond the layout's " + std::to_string(pc_));
      released_[a[i]].store(1, std::memory_order_seq_cst);  // ordered before the punch that follows
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // tid(): the thread's kernel id while it runs, else 0 (JS sets its scheduling class by it).
  Napi::Value Tid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tid_.load()); }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("requests", static_cast<double>(requests_.load()));
    o.Set("served", static_cast<double>(served_.load()));
    o.Set("released", static_cast<double>(skipped_.load()));
    o.Set("bytes", static_cast<double>(bytes_.load()));
    return o;
  }

  void Shutdown() {
    if (stopped_) return;
    stopped_ = true;
    running_ = false;
    uint64_t one = 1;
    // An 8-byte eventfd write cannot be short; failing would mean the counter overflowed, which also wakes poll.
    (void)!write(wake_, &one, sizeof one);
    // A reply blocked on a peer that stopped reading would hold the join: the lane ends here anyway.
    (void)shutdown(sock_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(wake_);
    close(sock_);
    close(mem_);
    tsfn_.Release();
  }

  void Post(Served&& s) {
    {
      std::lock_guard<std::mutex> g(box_->mu);
      if (s.end) {
        box_->ends.push_back(std::move(s));
      } else {
        Served& o = box_->out;
        o.attached = o.attached || s.attached;
        o.pages.insert(o.pages.end(), s.pages.begin(), s.pages.end());
        o.zero.insert(o.zero.end(), s.zero.begin(), s.zero.end());
        o.bytes += s.bytes;
      }
      if (box_->scheduled) return;
      box_->scheduled = true;
    }
    std::shared_ptr<ServerBox> box = box_;
    napi_status st = tsfn_.NonBlockingCall([box](Napi::Env env, Napi::Function cb) {
      Served out;
      std::vector<Served> ends;
      {
        std::lock_guard<std::mutex> g(box->mu);
        std::swap(out, box->out);
        ends.swap(box->ends);
        box->scheduled = false;
      }
      Napi::Array arr = Napi::Array::New(env);
      uint32_t k = 0;
      if (out.attached) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("kind", "attached");
        arr.Set(k++, o);
      }
      if (!out.pages.empty()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("kind", "served");
        Napi::Uint32Array p = Napi::Uint32Array::New(env, out.pages.size());
        memcpy(p.Data(), out.pages.data(), out.pages.size() * 4);
        Napi::Uint8Array z = Napi::Uint8Array::New(env, out.zero.size());
        memcpy(z.Data(), out.zero.data(), out.zero.size());
        o.Set("pages", p);
        o.Set("zero", z);
        o.Set("bytes", static_cast<double>(out.bytes));
        arr.Set(k++, o);
      }
      for (Served& e : ends) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("kind", "end");
        o.Set("protocol", Napi::Boolean::New(env, e.protocol));
        o.Set("reason", e.what);
        o.Set("error", e.err != 0 ? ErrnoError(env, e.err, e.what).Value() : env.Null());
        arr.Set(k++, o);
      }
      if (k > 0) cb.Call({arr});
    });
    if (st != napi_ok) {
      std::lock_guard<std::mutex> g(box_->mu);
      box_->scheduled = false;
    }
  }

  void End(int err, const std::string& what, bool protocol) {
    Served s;
    s.end = true;
    s.err = err;
    s.what = what;
    s.protocol = protocol;
    Post(std::move(s));
  }

  void Loop() {
    // Named for the per-thread CPU account (src/real/thread-cpu.ts); 15 bytes at most, best effort.
    (void)pthread_setname_np(pthread_self(), "ppsim-lane-srv");
    std::vector<uint8_t> reply(kHeader + 4 + 5 + ps_);
    std::vector<uint8_t> zeros(ps_, 0);
    bool first = true;
    for (;;) {
      Frame f;
      // The destination's attached frame, once, as its first; then requests only.
      auto take = [&first](uint8_t tag, uint32_t len) { return (tag == kTagPageRequest && len == 4) || (first && tag == kTagLaneAttached && len == kLaneAttachedPayload); };
      FrameReader::Got got = in_.Next(running_, take, &f);
      if (got == FrameReader::Got::Ended) {
        int err;
        std::string what;
        bool protocol;
        if (LaneStreamEnd(in_.stream(), &err, &what, &protocol)) End(err, what, protocol);
        return;
      }
      if (got == FrameReader::Got::Refused)
        return End(0, "fault lane: a frame that is not a page request (tag " + std::to_string(f.tag) + ", " + std::to_string(f.len) + " bytes)", true);
      first = false;
      if (f.tag == kTagLaneAttached) {
        in_.Consume(f);
        Served s;
        s.attached = true;
        Post(std::move(s));
        continue;
      }
      uint32_t page = GetU32(f.payload());
      in_.Consume(f);
      if (page >= pc_) return End(0, "fault lane: a request for page " + std::to_string(page) + " of " + std::to_string(pc_), true);
      if (!armed_) return End(0, "fault lane: a page request before the switchover (the destination's guest has not run)", true);
      requests_++;
      if (released_[page].load(std::memory_order_seq_cst) != 0) {
        skipped_++;
        continue;
      }
      uint8_t* d = reply.data() + kHeader + 9;  // after the count (u32), the page (u32) and its flags (u8)
      int e = ReadPage(page, d);
      if (e != 0) return End(e, "pread(memfd, page " + std::to_string(page) + ")", false);
      if (released_[page].load(std::memory_order_seq_cst) != 0) {  // punched while we read: the bytes may be the hole's
        skipped_++;
        continue;
      }
      bool zero = memcmp(d, zeros.data(), ps_) == 0;
      uint32_t payload = 4 + 5 + (zero ? 0 : static_cast<uint32_t>(ps_));
      uint8_t* o = reply.data();
      o[0] = 0x50;
      o[1] = 0x50;
      o[2] = kTagPages;
      o[3] = 0;
      PutU32(o + 4, payload);
      PutU32(o + 8, 1);
      PutU32(o + 12, page);
      o[16] = zero ? 1 : 0;
      e = WriteAll(sock_, o, kHeader + payload, stallMs_ > 0 ? stallMs_ : 30000);
      if (e != 0) return End(e, "send(fault lane: the reply for page " + std::to_string(page) + ")", false);
      served_++;
      bytes_ += kHeader + payload;
      Served s;
      s.pages.push_back(page);
      s.zero.push_back(zero ? 1 : 0);
      s.bytes = kHeader + payload;
      Post(std::move(s));
    }
  }

  int ReadPage(uint32_t page, uint8_t* d) {
    uint64_t done = 0;
    while (done < ps_) {
      ssize_t r = pread(mem_, d + done, ps_ - done, static_cast<off_t>(page * ps_ + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno;
      if (r == 0) return EIO;  // beyond the memfd's end: the layout and the memfd disagree
      done += static_cast<uint64_t>(r);
    }
    return 0;
  }

  int sock_ = -1, mem_ = -1, wake_ = -1, stallMs_ = 0;
  uint64_t ps_ = 0, pc_ = 0;
  PageFlags released_;
  std::atomic<bool> armed_{false}, running_{false};
  std::atomic<uint64_t> requests_{0}, served_{0}, skipped_{0}, bytes_{0};
  FrameReader in_;
  std::shared_ptr<ServerBox> box_ = std::make_shared<ServerBox>();
  std::thread thread_;
  std::atomic<pid_t> tid_{0};  // the thread's kernel id while it runs (StartThread)
  bool stopped_ = false;
  Napi::ThreadSafeFunction tsfn_;
};

void InitLaneServer(Napi::Env env, Napi::Object exports) { exports.Set("LaneServer", LaneServer::Init(env)); }

}  // namespace ppsim
