// The ways the bulk sender (bulk_sender.cc) moves a pages frame's data from
// the guest's memfd to the socket, for A/B (docs/native.md "Send ways"):
//   preadv   — preadv into the frame's buffer, send() it: two copies at the source;
//   writev   — sendmsg() of iovecs pointing into a read-only shared mapping of
//              the memfd, between the frame's own bytes: one copy, one call per frame;
//   sendfile — the frame's bytes with send(MSG_MORE), each page with sendfile()
//              from the memfd, the frame corked (TCP_CORK): no copy at the
//              source (the socket holds page-cache references), two calls per page;
//   splice   — the same pieces into a pipe (write, splice from the memfd), the
//              pipe spliced to the socket when full: no copy, one socket call per
//              ~128 pages.
// A frame's entries sit between its pages on the wire (the codec), so no way
// sends a run of pages in one piece. No policy: the way is JS's choice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bulk_send_frames.h"

namespace ppsim {

enum class SendWay : uint8_t { Preadv, Writev, Sendfile, Splice };

// "preadv" | "writev" | "sendfile" | "splice"; false for anything else.
bool ParseSendWay(const std::string& s, SendWay* way);
const char* SendWayName(SendWay way);

// Where a frame's writing stands (layout "segments"): the next piece and the bytes of it done;
// for splice, the bytes in the pipe not yet in the socket.
struct SendCursor {
  size_t seg = 0, off = 0, piped = 0;
  bool corked = false;
};

class PagesWriter {
 public:
  ~PagesWriter();
  // Sets up the way over the sender's own socket and memfd (not owned). 0, or the errno with
  // *what. Ways other than preadv need base pages (a hugetlbfs memfd neither maps nor splices
  // page by page): with another page size the way falls back to preadv.
  int Init(SendWay way, int sock, int memfd, uint64_t pageSize, uint64_t pageCount, std::string* what);
  SendWay way() const { return way_; }
  // Lays the item out for the way (a pages frame: "filled" for preadv, else "segments").
  int LayOut(SendItem& it, std::string* what);
  // Writes what it can of a "segments" item from *cur on: 0 when all of it is in the socket,
  // EAGAIN when the socket is full (poll for POLLOUT, call again), else an errno with *what.
  // *wrote: the bytes that entered the socket during this call.
  int Step(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what);

 private:
  int StepWritev(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what);
  int StepSendfile(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what);
  int StepSplice(SendItem& it, SendCursor* cur, size_t* wrote, std::string* what);
  void Cork(bool on);
  const uint8_t* Ptr(const SendItem& it, const Seg& s) const;

  SendWay way_ = SendWay::Preadv;
  int sock_ = -1, mem_ = -1, pipe_[2] = {-1, -1};
  uint64_t pageSize_ = 0, pageCount_ = 0;
  bool tcp_ = false;              // TCP_CORK applies
  const uint8_t* map_ = nullptr;  // writev: the memfd mapped read-only, pageCount_ pages
  std::vector<uint8_t> zeros_;    // one page of zeros (Zeros pieces)
};

}  // namespace ppsim
