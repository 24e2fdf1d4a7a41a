// The bulk stream as the sender builds it (bulk_sender.cc): an item of its
// queue, the layout of a pages frame and the reading of its data. The frame
// layout is the engine's codec (docs/protocol.md, bulk_frames.h): header,
// u32 count, per page u32 index, u8 flags (1 = zero: no data), data.
//
// Two layouts of the same wire bytes: "filled" (way preadv) — the whole
// frame in one buffer, its data slots read from the memfd; "segments" (ways
// writev, sendfile, splice, bulk_send_ways.*) — the frame's own bytes
// (header, count, entries) in a small buffer and the wire as a list of
// pieces: those bytes, a page of the memfd, or a page of zeros.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ppsim {

// One entry of a pages frame without its data: u32 index, u8 flags.
constexpr size_t kEntry = 5;

// A byte that vector::resize leaves uninitialised: a filled frame's data slots are overwritten by
// preadv at once, and zeroing up to 1 MiB per frame first was a third copy of every byte sent.
struct RawByte {
  uint8_t v;
  RawByte() {}  // NOLINT: deliberately no initialiser
};
static_assert(sizeof(RawByte) == 1, "RawByte must be one byte: frames are handed to send() as uint8_t*");

// A piece of a pages frame on the wire (layout "segments").
struct Seg {
  enum Kind : uint8_t { Meta, Page, Zeros } kind;
  uint64_t off;  // Meta: offset into the item's meta bytes; Page: offset in the memfd
  uint32_t len;
};

struct SendItem {
  std::vector<uint8_t> frame;    // a frame JS encoded, sent as it is
  std::vector<RawByte> filled;   // layout "filled": the whole pages frame, data slots read by FillPagesFrame
  std::vector<uint8_t> meta;     // layout "segments": header, count and entries, in wire order
  std::vector<Seg> segs;         // layout "segments": the wire, piece by piece
  size_t size = 0;               // bytes on the wire
  std::vector<uint32_t> pages;   // pages frame: its pages, in order
  std::vector<uint8_t> zero;     // pages frame: 1 = zero page (no data slot)
  int niceAfter = -1;            // >= 0: once this frame is in the kernel, the thread's nice becomes this
};

// The wire size of the pages frame of it.pages / it.zero.
size_t PagesFrameSize(const SendItem& it, uint64_t pageSize);

// Lays out it.filled as the pages frame of it.pages / it.zero (checked by the caller: 1..kMaxPages
// pages, each in the layout): header and entries, every data slot left for FillPagesFrame.
void LayOutPagesFrame(SendItem& it, uint64_t pageSize);

// Reads the data slots of a laid-out pages frame from the memfd (page i at offset i * pageSize):
// one preadv per run of consecutive data pages. 0, or the errno with *what naming what was attempted.
int FillPagesFrame(int memfd, SendItem& it, uint64_t pageSize, std::string* what);

// Lays out it.meta / it.segs: a data page wholly below memfdSize is a Page piece, one at or past
// it (the memfd was truncated under us) Zeros, as preadv reads it; consecutive Meta bytes merge.
void LayOutPagesSegments(SendItem& it, uint64_t pageSize, uint64_t memfdSize);

}  // namespace ppsim
