// The bulk stream as the sender builds it (bulk_sender.cc): an item of its
// queue, the layout of a pages frame (header and entries, data slots left
// empty) and the reading of those slots from the guest's memfd. The frame
// layout is the engine's codec (docs/protocol.md, bulk_frames.h): header,
// u32 count, per page u32 index, u8 flags (1 = zero: no data), data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ppsim {

// One entry of a pages frame without its data: u32 index, u8 flags.
constexpr size_t kEntry = 5;

struct SendItem {
  std::vector<uint8_t> frame;    // whole frame (JS bytes) or header + entries with data slots to fill
  std::vector<uint32_t> pages;   // pages frame: its pages, in order
  std::vector<uint8_t> zero;     // pages frame: 1 = zero page (no data slot)
  int niceAfter = -1;            // >= 0: once this frame is in the kernel, the thread's nice becomes this
};

// Lays out it.frame as the pages frame of it.pages / it.zero (checked by the caller: 1..kMaxPages
// pages, each in the layout): header and entries, every data slot left for FillPagesFrame.
void LayOutPagesFrame(SendItem& it, uint64_t pageSize);

// Reads the data slots of a laid-out pages frame from the memfd (page i at offset i * pageSize):
// one preadv per run of consecutive data pages. 0, or the errno with *what naming what was attempted.
int FillPagesFrame(int memfd, SendItem& it, uint64_t pageSize, std::string* what);

}  // namespace ppsim
