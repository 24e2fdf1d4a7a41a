// LaneCore: the destination lane's shared part (fault_lane.h says what the lane is), apart from
// its JS object (FaultLane, fault_lane.cc): held by that object, its receiver thread and, while
// attached, the fault reader, whose thread writes the requests (LaneTakeFaults, lane_core.cc).
// Everything JS hears — faults and installs — goes through its one queue, so a fault always
// reaches JS before the install that answers it.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fault_lane.h"
#include "frame_reader.h"

namespace ppsim {

enum class LaneKind : uint8_t { Faults, Installed, End };
struct LaneNotice {
  LaneKind kind;
  std::vector<uint32_t> pages;
  std::vector<uint32_t> tids;   // Faults: the faulting threads
  std::vector<uint8_t> flags;   // Faults: 1 = asked on the lane (or on its way by another native path); Installed: 1 = zero page
  double atUs = 0;              // Faults: read from the uffd; Installed: installed (CLOCK_MONOTONIC µs)
  int err = 0;                  // End: 0 = closed by the peer
  std::string what;
  bool protocol = false;        // End: the peer's bytes were not a valid lane stream
};

class LaneCore {
 public:
  ~LaneCore() { CloseFds(); }

  int sock = -1, wake = -1;
  int stallMs = 0;
  // The target, set once before arm() (the mutex orders it with the threads' first read of it).
  std::mutex targetMu;
  GuestTarget target;
  PageFlags asked;  // per page: requested on this lane already

  std::mutex writeMu;  // the requests' writes (the fault reader's thread) against the socket's close
  std::atomic<bool> armed{false}, running{false};
  std::atomic<uint64_t> requests{0}, replies{0}, installs{0}, lost{0};
  // Huge pages installed straight from the reply's bytes, and through the staging copy (page_install.h).
  std::atomic<uint64_t> hugeDirect{0}, hugeStaged{0};

  std::mutex mu;  // the queue to JS
  std::vector<LaneNotice> out;
  bool scheduled = false, closed = false;
  Napi::ThreadSafeFunction tsfn;
  // Queues a notice for JS; false once the lane is closed (nothing more goes to JS).
  bool Post(LaneNotice&& n, const std::shared_ptr<LaneCore>& self);
  // The lane ended (err 0: no errno; protocol: the peer's bytes were not a lane stream): unarmed, JS told.
  void End(int err, const std::string& what, bool protocol, const std::shared_ptr<LaneCore>& self);
  static Napi::Array ToJs(Napi::Env env, std::vector<LaneNotice>& batch);
  void CloseFds();
};

}  // namespace ppsim
