// The bulk receiver's socket as a byte stream (bulk_receiver.cc): bytes are
// read straight into the free tail of one growing buffer, the thread waits
// in poll for more or for stop (an eventfd), and a peer silent mid-frame for
// longer than the stall bound is noticed. The receiver owns the fds.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ppsim {

uint64_t MonotonicNs();

class StreamReader {
 public:
  // Why Have() returned false.
  enum class End { None, Stopped, Closed, Failed, Stalled };

  // The socket, the eventfd that stop() writes, the stall bound (ms; 0: none), the bytes already read.
  void Init(int sock, int wake, int stallMs, const uint8_t* initial, size_t n);
  // Until at least n bytes are unconsumed: true, or false with end (and err/what, silentMs/partial) set.
  bool Have(size_t n, const std::atomic<bool>& running);
  const uint8_t* Data() const { return buf_.data() + pos_; }
  void Consume(size_t n) { pos_ += n; }

  End end = End::None;
  int err = 0;            // Failed: the errno
  std::string what;       // Failed: the call that failed
  uint64_t silentMs = 0;  // Stalled: silent this long mid-frame
  size_t partial = 0;     // Stalled: bytes of the frame received
  std::atomic<uint64_t> waitNs{0}, recvNs{0};

 private:
  // owed: the bytes Have() still waits for (a large frame's are read to its end and no further).
  bool ReadMore(const std::atomic<bool>& running, size_t owed);

  int sock_ = -1, wake_ = -1, stallMs_ = 0;
  std::vector<uint8_t> buf_;  // [pos_, len_) unconsumed; the rest of its size is room to read into
  size_t pos_ = 0, len_ = 0;
  std::chrono::steady_clock::time_point lastData_;
};

}  // namespace ppsim
