// What the native readers of the engine's frames share (the bulk receiver,
// bulk_receiver.cc, and both ends of the fault lane, fault_lane.cc and
// lane_server.cc): the guest memory a reader installs into, as setTarget's
// arguments give it, checked one way; and the frames themselves, split off
// the socket's byte stream (bulk_stream.*) with each header's framing and
// its payload's bound checked before the payload is waited for — a peer
// cannot make a reader wait for, or hold, more than the bound of a frame it
// may send.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "bulk_frames.h"
#include "bulk_stream.h"
#include "page_states.h"
#include "zero_holes.h"

namespace ppsim {

// The guest memory a reader installs into: its own dup()s of the memfd and the uffd (-1: none yet).
struct GuestTarget {
  int mem = -1, uffd = -1;
  uint64_t base = 0, ps = 0, pc = 0;
  std::shared_ptr<PageStates> states;  // install mode "continue": the claims, shared with JS and the other readers
  std::shared_ptr<ZeroHoles> holes;    // install mode "copy" on base pages: zero pages left holes (zero_holes.h)
};

// setTarget(memfd, uffd, base: bigint, pageSize, pageCount, pageTable?, zeroHoles?) from JS: the
// arguments checked (a page size a power of two up to 1 GiB, base aligned to it, 1 … 2^32 pages, a
// page table or zero-hole table of as many pages, not both) and both fds dup()ed (CLOEXEC). Throws a JS error saying what was wrong.
GuestTarget TargetFromArgs(const Napi::CallbackInfo& info, const char* who);
// Closes the target's fds (those that are open) and forgets them.
void CloseTarget(GuestTarget* t);

// One frame as read: its header's fields and, for a whole frame, its bytes (header first).
struct Frame {
  uint8_t tag = 0;
  uint32_t len = 0;       // the payload's length, as the header says
  const uint8_t* bytes = nullptr;  // the header, then (Next returned Got::Frame) the payload; valid until Consume
  const uint8_t* payload() const { return bytes + kHeader; }
  size_t size() const { return kHeader + len; }
};

class FrameReader {
 public:
  enum class Got { Frame, Refused, Ended };

  // The socket, the eventfd stop writes, the stall bound (ms; 0: none), the bytes read before (the preamble's rest).
  void Init(int sock, int wake, int stallMs, const uint8_t* initial, size_t n) { in_.Init(sock, wake, stallMs, initial, n); }

  // The next frame. Frame: whole, its header's framing right (the magic, a reserved byte of 0) and
  // take(tag, len) true. Refused: its header is not (f->bytes points at the header alone; nothing
  // more of it is read). Ended: the stream ended first (stream() says how).
  template <typename Take>
  Got Next(const std::atomic<bool>& running, Take take, Frame* f) {
    if (!in_.Have(kHeader, running)) return Got::Ended;
    const uint8_t* h = in_.Data();
    f->bytes = h;
    f->tag = h[2];
    f->len = GetU32(h + 4);
    uint16_t magic = static_cast<uint16_t>(h[0] | (h[1] << 8));
    if (magic != kFrameMagic || h[3] != 0 || !take(f->tag, f->len)) return Got::Refused;
    if (!in_.Have(kHeader + f->len, running)) return Got::Ended;
    f->bytes = in_.Data();  // the buffer may have moved while the payload came
    return Got::Frame;
  }
  void Consume(const Frame& f) { in_.Consume(f.size()); }

  const StreamReader& stream() const { return in_; }
  StreamReader& stream() { return in_; }

 private:
  StreamReader in_;
};

// Why a fault lane's stream ended (Next returned Ended), in the words both its ends use: err (0: none),
// what, and whether the peer broke the protocol (silent mid-frame). False when it was stopped (nothing to say).
bool LaneStreamEnd(const StreamReader& in, int* err, std::string* what, bool* protocol);

}  // namespace ppsim
