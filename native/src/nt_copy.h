// StreamCopy: copies page bytes into guest memory with non-temporal stores.
//
// Why: a page the destination stores into through its alias of the guest's
// memfd (page_states.h) is cold — its cache lines are fetched from memory
// before an ordinary store overwrites them (read for ownership), and the
// stores then evict what the receiver's loop keeps hot. Measured on the
// development VM, 4 KiB pages into a populated 1 GiB memfd from a 1 MiB
// source: memcpy 551–559 ns a page, these stores 227–229. The guest reads
// the page from memory later either way (a migration's memory does not fit
// in a cache). Non-temporal stores are weakly ordered: StreamFence() must
// come before anything that publishes the bytes (the CONTINUE that maps them
// into the guest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace ppsim {

// dst 64-byte aligned and len a multiple of 64 (a page): else a plain memcpy.
inline void StreamCopy(uint8_t* dst, const uint8_t* src, size_t len) {
#if defined(__x86_64__)
  if ((reinterpret_cast<uintptr_t>(dst) & 63) == 0 && len % 64 == 0) {
    for (size_t i = 0; i < len; i += 64) {
      // SSE2 is part of x86-64: unaligned loads from the frame buffer, streaming stores into the page.
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
      __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
    }
    return;
  }
#endif
  memcpy(dst, src, len);
}

// Orders the streamed stores before what follows (x86: sfence; elsewhere memcpy was used).
inline void StreamFence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace ppsim
