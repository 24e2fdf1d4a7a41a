// See bulk_send_frames.h.
#include "bulk_send_frames.h"

#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "bulk_frames.h"

namespace ppsim {

namespace {

void PutU32(uint8_t* p, uint32_t v) {
  // Little-endian on the wire whatever the host: byte by byte.
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

// Header and count of a pages frame of `size` wire bytes and n pages, into p[0, kHeader + 4).
void PutHead(uint8_t* p, size_t size, size_t n) {
  p[0] = kFrameMagic & 0xff;
  p[1] = kFrameMagic >> 8;
  p[2] = kTagPages;
  p[3] = 0;
  PutU32(p + 4, static_cast<uint32_t>(size - kHeader));
  PutU32(p + 8, static_cast<uint32_t>(n));
}

}  // namespace

size_t PagesFrameSize(const SendItem& it, uint64_t pageSize) {
  size_t size = kHeader + 4;
  for (size_t i = 0; i < it.pages.size(); i++) size += kEntry + (it.zero[i] ? 0 : pageSize);
  return size;
}

void LayOutPagesFrame(SendItem& it, uint64_t pageSize) {
  const size_t n = it.pages.size();
  it.size = PagesFrameSize(it, pageSize);
  it.filled.resize(it.size);
  // RawByte is one plain byte (static_assert above): the buffer's bytes are its bytes.
  uint8_t* p = reinterpret_cast<uint8_t*>(it.filled.data());
  PutHead(p, it.size, n);
  size_t o = kHeader + 4;
  for (size_t i = 0; i < n; i++) {
    PutU32(p + o, it.pages[i]);
    p[o + 4] = it.zero[i] ? 1 : 0;
    o += kEntry + (it.zero[i] ? 0 : pageSize);  // the data slot is filled by the thread
  }
}

int FillPagesFrame(int memfd, SendItem& it, uint64_t pageSize, std::string* what) {
  const size_t n = it.pages.size();
  uint8_t* frame = reinterpret_cast<uint8_t*>(it.filled.data());  // RawByte: one plain byte
  std::vector<iovec> iov;
  size_t o = kHeader + 4;
  size_t i = 0;
  while (i < n) {
    if (it.zero[i]) {
      o += kEntry;
      i++;
      continue;
    }
    size_t j = i;
    iov.clear();
    size_t slot = o;
    while (j < n && !it.zero[j] && (j == i || it.pages[j] == it.pages[j - 1] + 1) && iov.size() < IOV_MAX) {
      iov.push_back({frame + slot + kEntry, pageSize});
      slot += kEntry + pageSize;
      j++;
    }
    off_t at = static_cast<off_t>(static_cast<uint64_t>(it.pages[i]) * pageSize);
    size_t want = (j - i) * pageSize;
    size_t got = 0;
    while (got < want) {
      // A partial preadv leaves the iovecs part-filled: advance them by what was read.
      ssize_t r = preadv(memfd, iov.data(), static_cast<int>(iov.size()), at + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int e = errno;
        *what = "preadv(memfd, page " + std::to_string(it.pages[i]) + ", " + std::to_string(j - i) + " pages)";
        return e;
      }
      if (r == 0) {
        // Past the memfd's end (it was truncated under us): those pages read as zeros, like holes.
        for (auto& v : iov) memset(v.iov_base, 0, v.iov_len);
        break;
      }
      got += static_cast<size_t>(r);
      size_t skip = static_cast<size_t>(r);
      size_t k = 0;
      while (k < iov.size() && skip >= iov[k].iov_len) skip -= iov[k++].iov_len;
      iov.erase(iov.begin(), iov.begin() + static_cast<long>(k));
      if (!iov.empty()) {
        iov[0].iov_base = static_cast<uint8_t*>(iov[0].iov_base) + skip;
        iov[0].iov_len -= skip;
      }
    }
    o = slot;
    i = j;
  }
  return 0;
}

void LayOutPagesSegments(SendItem& it, uint64_t pageSize, uint64_t memfdSize) {
  const size_t n = it.pages.size();
  it.size = PagesFrameSize(it, pageSize);
  it.meta.resize(kHeader + 4 + n * kEntry);
  it.segs.clear();
  uint8_t* p = it.meta.data();
  PutHead(p, it.size, n);
  size_t o = kHeader + 4;
  it.segs.push_back({Seg::Meta, 0, static_cast<uint32_t>(o)});
  for (size_t i = 0; i < n; i++) {
    PutU32(p + o, it.pages[i]);
    p[o + 4] = it.zero[i] ? 1 : 0;
    if (it.segs.back().kind == Seg::Meta) it.segs.back().len += kEntry;
    else it.segs.push_back({Seg::Meta, o, static_cast<uint32_t>(kEntry)});
    o += kEntry;
    if (it.zero[i]) continue;
    uint64_t at = static_cast<uint64_t>(it.pages[i]) * pageSize;
    it.segs.push_back({at + pageSize <= memfdSize ? Seg::Page : Seg::Zeros, at, static_cast<uint32_t>(pageSize)});
  }
}

}  // namespace ppsim
