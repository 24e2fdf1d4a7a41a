// LaneCore (lane_core.h) and the requests the fault reader's thread writes on the lane.
#include "lane_core.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bulk_frames.h"
#include "page_states.h"
#include "util.h"

namespace ppsim {

namespace {

// How long a request write may wait for room in the socket (12-byte frames: only a peer that
// stopped reading fills it).
constexpr int kWriteWaitMs = 2000;

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

}  // namespace

// Writes all of [p, p + n) to a non-blocking socket (the file description is Node's: O_NONBLOCK),
// waiting at most waitMs for room each time it is full. 0 or the errno (ETIMEDOUT: no room).
int WriteAll(int sock, const uint8_t* p, size_t n, int waitMs) {
  while (n > 0) {
    ssize_t w = send(sock, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    pollfd pf{sock, POLLOUT, 0};
    int k = poll(&pf, 1, waitMs);
    if (k < 0 && errno != EINTR) return errno;
    if (k == 0) return ETIMEDOUT;
  }
  return 0;
}

bool LaneCore::Post(LaneNotice&& n, const std::shared_ptr<LaneCore>& self) {
  {
    std::lock_guard<std::mutex> g(mu);
    if (closed) return false;
    out.push_back(std::move(n));
    if (scheduled) return true;
    scheduled = true;
  }
  napi_status st = tsfn.NonBlockingCall([self](Napi::Env env, Napi::Function cb) {
    std::vector<LaneNotice> batch;
    {
      std::lock_guard<std::mutex> g(self->mu);
      batch.swap(self->out);
      self->scheduled = false;
    }
    if (!batch.empty()) cb.Call({ToJs(env, batch)});
  });
  if (st != napi_ok) {
    std::lock_guard<std::mutex> g(mu);
    scheduled = false;
  }
  return true;
}

void LaneCore::End(int err, const std::string& what, bool protocol, const std::shared_ptr<LaneCore>& self) {
  armed = false;
  LaneNotice n{LaneKind::End, {}, {}, {}, 0, err, what, protocol};
  Post(std::move(n), self);
}

Napi::Array LaneCore::ToJs(Napi::Env env, std::vector<LaneNotice>& batch) {
  Napi::Array arr = Napi::Array::New(env, batch.size());
  for (size_t i = 0; i < batch.size(); i++) {
    LaneNotice& n = batch[i];
    Napi::Object o = Napi::Object::New(env);
    if (n.kind == LaneKind::End) {
      o.Set("kind", "end");
      o.Set("protocol", Napi::Boolean::New(env, n.protocol));
      o.Set("reason", n.what);
      o.Set("error", n.err != 0 ? ErrnoError(env, n.err, n.what).Value() : env.Null());
    } else {
      o.Set("kind", n.kind == LaneKind::Faults ? "faults" : "installed");
      Napi::Uint32Array p = Napi::Uint32Array::New(env, n.pages.size());
      memcpy(p.Data(), n.pages.data(), n.pages.size() * 4);
      Napi::Uint8Array f = Napi::Uint8Array::New(env, n.flags.size());
      memcpy(f.Data(), n.flags.data(), n.flags.size());
      o.Set("pages", p);
      o.Set(n.kind == LaneKind::Faults ? "requested" : "zero", f);
      o.Set("atUs", n.atUs);
      if (n.kind == LaneKind::Faults) {
        Napi::Uint32Array t = Napi::Uint32Array::New(env, n.tids.size());
        memcpy(t.Data(), n.tids.data(), n.tids.size() * 4);
        o.Set("tids", t);
      }
    }
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

void LaneCore::CloseFds() {
  for (int* fd : {&sock, &wake}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  CloseTarget(&target);
}

bool LaneTakeFaults(const std::shared_ptr<LaneCore>& self, const std::vector<LaneFault>& faults, double readUs) {
  LaneCore& lane = *self;
  // Held through the write: stop() closes the socket under it, so its number cannot be reused meanwhile.
  std::lock_guard<std::mutex> w(lane.writeMu);
  if (!lane.armed.load()) return false;
  GuestTarget t;
  {
    std::lock_guard<std::mutex> g(lane.targetMu);
    t = lane.target;
  }
  const uint64_t base = t.base, ps = t.ps, pc = t.pc;
  const std::shared_ptr<PageStates>& states = t.states;
  LaneNotice n{LaneKind::Faults, {}, {}, {}, readUs, 0, "", false};
  std::vector<uint8_t> frames;
  for (const LaneFault& f : faults) {
    if (f.address < base || (f.address - base) / ps >= pc) continue;  // not guest RAM: JS ignores it too
    uint32_t p = static_cast<uint32_t>((f.address - base) / ps);
    // A page another native path is installing (its claim taken) needs no request: that install wakes the vCPU.
    bool covered = states != nullptr && states->Get(p) != kAbsent;
    if (!covered && lane.asked[p].exchange(1) == 0) {
      uint8_t fr[kRequestFrame] = {0x50, 0x50, kTagPageRequest, 0};
      PutU32(fr + 4, 4);
      PutU32(fr + 8, p);
      frames.insert(frames.end(), fr, fr + kRequestFrame);
    }
    n.pages.push_back(p);
    n.tids.push_back(f.tid);
    n.flags.push_back(1);
  }
  // The notice first: a reply can come back and be installed before this thread runs again.
  if (!n.pages.empty() && !lane.Post(std::move(n), self)) return false;
  if (frames.empty()) return true;
  // Counted before the write, as the notice is: the reply can be installed (and replies counted) before
  // this thread runs again, and stats() must never show more replies than requests.
  lane.requests += frames.size() / kRequestFrame;
  int e = WriteAll(lane.sock, frames.data(), frames.size(), kWriteWaitMs);
  if (e != 0) {
    // JS books these faults as asked; the lane's end takes the link down and recovery asks again.
    lane.End(e, "send(fault lane: " + std::to_string(frames.size() / kRequestFrame) + " page requests)", false, self);
    return true;
  }
  return true;
}

}  // namespace ppsim
