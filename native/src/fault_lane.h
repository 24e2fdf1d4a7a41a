// The fault lane (issue 9): a connection of its own per session, owned by
// native threads at both ends, so that no Node event loop is on a demand
// fault's way (docs/real.md "The fault lane").
//
// Destination (FaultLane, fault_lane.cc; its shared part LaneCore, lane_core.cc): the fault reader thread hands the
// MISSING faults of each read() to the lane (TakeFaults); for a page not yet
// asked on this lane, and whose claim in the page table (install mode
// "continue") is absent, it writes a pageRequest frame on the socket itself.
// The lane's receiver thread reads the replies (pages frames), installs them
// (PageInstaller: UFFDIO_COPY / ZEROPAGE, or the claim then CONTINUE, which
// wakes the faulting vCPU) and reports faults and installs to JS through one
// queue, in the order they happened — so JS always hears a fault before the
// install that answers it.
//
// Source (LaneServer, lane_server.cc): a thread reads the requests and answers
// each from the guest's memfd, never a page marked released (source-release.ts
// sets the mark before it punches the page), and reports what it served.
//
// The destination's first frame says it attached (kTagLaneAttached below); the source's
// end reports it to JS, which holds the helloAck from its engine until then (bounded).
//
// Both: the lane refuses its traffic until JS arms it (the switchover: before,
// the destination guest has not run and cannot fault); every frame is checked
// (tag, length, page within the layout) and a bad one ends the lane with an
// error JS reports, never a crash. Policy stays with the engine: the lane only
// executes its standing rule "demand faults are requested at once, served first".
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ppsim {

class LaneCore;

// One MISSING fault as the fault reader read it.
struct LaneFault {
  uint64_t address;
  uint32_t tid;
};

// The destination lane's shared part: held by the FaultLane JS object, its thread and (while
// attached) the fault reader. LaneTakeFaults runs on the reader's thread.
std::shared_ptr<LaneCore> LaneCoreOf(Napi::Env env, Napi::Value v);
// Writes all of [p, p + n) to a non-blocking socket, waiting at most waitMs for room each time it
// is full. 0 or the errno (ETIMEDOUT: no room in time).
int WriteAll(int sock, const uint8_t* p, size_t n, int waitMs);
// The faults of one read(): false (nothing taken) when the lane is not armed or has ended — the
// reader then reports them itself, the way without the lane.
bool LaneTakeFaults(const std::shared_ptr<LaneCore>& lane, const std::vector<LaneFault>& faults, double readUs);

// Per-page flags, all zero at first, from calloc: a large guest's table costs no pass over it on
// the JS thread (the kernel hands out zero pages as they are touched). Assumes std::atomic<uint8_t>
// is a lock-free byte with the representation of uint8_t (asserted), so zeroed memory is a valid
// array of atomics holding 0.
struct FreeFlags {
  void operator()(std::atomic<uint8_t>* p) const { free(p); }
};
using PageFlags = std::unique_ptr<std::atomic<uint8_t>[], FreeFlags>;
static_assert(sizeof(std::atomic<uint8_t>) == 1 && std::atomic<uint8_t>::is_always_lock_free, "page flags are bytes");
// n zeroed flags, or null (ENOMEM).
inline PageFlags ZeroedFlags(uint64_t n) { return PageFlags(static_cast<std::atomic<uint8_t>*>(calloc(n, 1))); }

// The codec's pageRequest frame: header (magic, tag 4, 0, length 4) and the page.
constexpr uint8_t kTagPageRequest = 4;
constexpr size_t kRequestFrame = 12;

// The destination's first frame on a lane: "attached" (its thread runs, the guest's memory is its
// target), so that the source's engine hears the helloAck only after the destination's attach work
// is done rather than inside the pause (source-lane-slot.ts). It is the lane's own helloAck, in the
// engine's codec (a proxy or a decoder between the ends reads it as one): version 1, reserved 0,
// capabilities the lane's bit (FAULT_LANE_CAPABILITY, 1 << 16, src/real/fault-lane.ts).
constexpr uint8_t kTagLaneAttached = 2;
constexpr uint32_t kLaneAttachedPayload = 8;
constexpr uint8_t kLaneAttachedFrame[16] = {0x50, 0x50, kTagLaneAttached, 0, kLaneAttachedPayload, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0};

}  // namespace ppsim
