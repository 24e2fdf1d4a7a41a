// The bulk stream as the receiver sees it (bulk_receiver.cc): the engine's
// frame codec constants (docs/protocol.md), a pages payload checked against
// the layout, and the notices that carry what the thread did to JS.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace ppsim {

constexpr uint16_t kFrameMagic = 0x5050;
constexpr uint8_t kTagPages = 3;
constexpr size_t kTags = 12;  // tags 1..11 (MessageTag)
constexpr size_t kHeader = 8;
constexpr size_t kMaxPages = 256;  // the codec's MAX_PAGES_PER_MESSAGE

inline uint32_t GetU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// A pages payload (after the header, `len` bytes): u32 count, then per page u32 index, u8 flags
// (1 = zero: no data), data. False if it is not exactly that within the layout (then JS's decoder
// judges the frame, with the same words as without the data plane). data[i] points into p.
bool ParsePages(const uint8_t* p, uint32_t len, uint64_t pageSize, uint64_t pageCount, std::vector<uint32_t>* pages,
                std::vector<uint8_t>* zero, std::vector<const uint8_t*>* data);

enum class Kind : uint8_t { Pages, Frame, End };
struct Notice {
  Kind kind;
  std::vector<uint32_t> pages;  // Pages: installed, in frame order
  std::vector<uint8_t> zero;    // Pages: 1 = a zero page
  std::vector<uint8_t> bytes;   // Frame: the whole frame
  int err = 0;                  // End: 0 = the peer closed
  std::string what;             // End: what failed, or why the stream is refused
  bool protocol = false;        // End: the peer's bytes were not a valid stream
  uint64_t silentMs = 0;        // End "stall": silent this long mid-frame
  size_t partial = 0;           // End "stall": bytes of the frame received
  uint32_t frames = 1;          // Pages: the frames whose pages these are (consecutive ones merged, Post)
};

// What the thread shares with JS's ThreadSafeFunction calls. Held by shared_ptr: a call still
// queued when the receiver object is destroyed (GC) finds its box alive, not freed memory.
struct Box {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Notice> out;
  size_t pendingPages = 0;
  bool scheduled = false;
};

// On the JS thread: takes every notice out of the box (waking a thread waiting for room) and
// calls cb with them as objects ({kind: "pages" | "frame" | "end", …}, see src/real/native-dataplane.ts).
void DeliverNotices(Box& box, Napi::Env env, Napi::Function cb);

}  // namespace ppsim
