// PAGEMAP_SCAN (Linux 6.7) on an fd of /proc/PID/pagemap: returns page ranges
// matching categories and, with PM_SCAN_WP_MATCHING, write-protects them
// again in the same walk — the async-WP dirty log.
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../common/uapi.h"
#include "util.h"

namespace ppsim {

using ppsim_uapi::page_region;
using ppsim_uapi::pm_scan_arg;

namespace {

struct ScanArgs {
  uint64_t flags = 0, mask = 0, inverted = 0, anyof = 0, ret = ppsim_uapi::PAGE_IS_WRITTEN, maxPages = 0, vecLen = 1024;
};

// The options object both functions take (absent keys keep their defaults).
ScanArgs ArgScan(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  Napi::Env env = info.Env();
  ScanArgs s;
  if (info.Length() > i && info[i].IsObject()) {
    Napi::Object o = info[i].As<Napi::Object>();
    auto get = [&](const char* k, uint64_t& dst) {
      if (!o.Has(k) || o.Get(k).IsUndefined()) return;
      Napi::Value v = o.Get(k);
      if (v.IsBigInt()) {
        bool lossless;
        dst = v.As<Napi::BigInt>().Uint64Value(&lossless);
      } else if (v.IsNumber()) {
        dst = static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
      } else {
        ThrowType(env, std::string(fn) + " option " + k + " must be a number");
      }
    };
    get("flags", s.flags);
    get("categoryMask", s.mask);
    get("categoryInverted", s.inverted);
    get("categoryAnyofMask", s.anyof);
    get("returnMask", s.ret);
    get("maxPages", s.maxPages);
    get("vecLen", s.vecLen);
  }
  if (s.vecLen == 0 || s.vecLen > (1u << 20)) ThrowRange(env, std::string(fn) + ": vecLen must be in 1..1048576");
  return s;
}

// Walks [start, end) with as many PAGEMAP_SCAN calls as the vector needs, handing each
// returned region to `each`; returns walk_end.
template <typename Each>
uint64_t Walk(Napi::Env env, int fd, uint64_t start, uint64_t end, const ScanArgs& s, Each each) {
  std::vector<page_region> vec(s.vecLen);
  uint64_t cur = start, walkEnd = start, pagesLeft = s.maxPages;
  const uint64_t pageSize = 4096;  // only used to count pages toward maxPages
  while (cur < end) {
    pm_scan_arg a{};
    a.size = sizeof a;  // the kernel checks size to version the struct
    a.flags = s.flags;
    a.start = cur;
    a.end = end;
    // Pointer -> integer: the kernel writes page_region records to this
    // address in our address space (vec.data() is valid for vecLen records).
    a.vec = reinterpret_cast<uintptr_t>(vec.data());
    a.vec_len = s.vecLen;
    a.max_pages = pagesLeft;  // 0 = unlimited
    a.category_inverted = s.inverted;
    a.category_mask = s.mask;
    a.category_anyof_mask = s.anyof;
    a.return_mask = s.ret;
    int n = ioctl(fd, ppsim_uapi::PAGEMAP_SCAN_IOCTL, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, errno, "PAGEMAP_SCAN(start " + Hex(cur) + ", end " + Hex(end) + ", flags " + Hex(s.flags) + ")");
    }
    uint64_t pages = 0;
    for (int i = 0; i < n; i++) {
      const page_region& r = vec[static_cast<size_t>(i)];
      pages += (r.end - r.start) / pageSize;
      each(r);
    }
    walkEnd = a.walk_end;
    if (s.maxPages != 0) {
      pagesLeft = pages >= pagesLeft ? 0 : pagesLeft - pages;
      if (pagesLeft == 0) break;  // caller's page budget is spent: report walkEnd
    }
    // The walk stops early only when vec is full (or max_pages is hit);
    // continue from walk_end. No progress means a kernel surprise: stop.
    if (walkEnd <= cur) break;
    cur = walkEnd;
  }
  return walkEnd;
}

}  // namespace

// pagemapScan(fd, start, end, { flags, categoryMask, categoryInverted,
//   categoryAnyofMask, returnMask, maxPages, vecLen })
//   -> { regions: BigUint64Array [start, end, categories]*, walkEnd: bigint }
static Napi::Value PagemapScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), end = ArgU64(info, 2, "end");
  if (start > end) ThrowRange(env, "pagemapScan: start > end");
  ScanArgs s = ArgScan(info, 3, "pagemapScan");
  std::vector<uint64_t> out;  // flattened triples, adjacent equal ranges merged
  uint64_t walkEnd = Walk(env, fd, start, end, s, [&](const page_region& r) {
    size_t k = out.size();
    if (k >= 3 && out[k - 2] == r.start && out[k - 1] == r.categories) {
      out[k - 2] = r.end;  // continuation of the previous call's last region
    } else {
      out.push_back(r.start);
      out.push_back(r.end);
      out.push_back(r.categories);
    }
  });
  Napi::Object res = Napi::Object::New(env);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, out.size() * 8);
  if (!out.empty()) memcpy(ab.Data(), out.data(), out.size() * 8);
  res.Set("regions", Napi::TypedArrayOf<uint64_t>::New(env, out.size(), ab, 0, napi_biguint64_array));
  res.Set("walkEnd", U64(env, walkEnd));
  return res;
}

// pagemapScanPages(fd, start, end, pageSize, opts) -> Uint32Array: the index
// ((address - start) / pageSize) of every page of [start, end) inside a
// matching region, ascending and each once. The dirty log's form: a page list without a JS
// object per region (at 1 GiB, ~100 000 scattered dirty pages cost the
// regions' BigInt arithmetic 11-45 ms, the walk itself ~30).
static Napi::Value PagemapScanPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), end = ArgU64(info, 2, "end");
  uint64_t pageSize = ArgU64(info, 3, "pageSize");
  if (start > end) ThrowRange(env, "pagemapScanPages: start > end");
  if (pageSize == 0 || (pageSize & (pageSize - 1)) != 0) ThrowRange(env, "pagemapScanPages: pageSize must be a power of two");
  if ((start & (pageSize - 1)) != 0) ThrowRange(env, "pagemapScanPages: start must be page-aligned");
  const uint64_t count = (end - start + pageSize - 1) / pageSize;
  if (count > UINT32_MAX) ThrowRange(env, "pagemapScanPages: more than 2^32 pages");
  ScanArgs s = ArgScan(info, 4, "pagemapScanPages");
  // A page budget would cut the list with no sign of where: this form walks the whole range.
  if (s.maxPages != 0) ThrowRange(env, "pagemapScanPages: maxPages is not taken (use pagemapScan)");
  std::vector<uint32_t> out;
  bool ordered = true;
  Walk(env, fd, start, end, s, [&](const page_region& r) {
    // The kernel returns ranges inside [start, end); a huge page's region is clipped to them.
    uint64_t first = (r.start - start) / pageSize;
    uint64_t last = std::min(count, (r.end - start + pageSize - 1) / pageSize);
    if (!out.empty() && first <= out.back()) ordered = false;
    for (uint64_t p = first; p < last; p++) out.push_back(static_cast<uint32_t>(p));
  });
  // A later call of the walk may report pages below an earlier call's (seen on 6.18 with a guest
  // writing during the scan: a region at page 127004 after one at 131069), new or again: each is
  // written and listed, once, in order (this function's contract: a repeat would count twice).
  if (!ordered) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  Napi::Uint32Array a = Napi::Uint32Array::New(env, out.size());
  if (!out.empty()) memcpy(a.Data(), out.data(), out.size() * 4);
  return a;
}

void InitPagemap(Napi::Env env, Napi::Object exports) {
  exports.Set("pagemapScan", Napi::Function::New(env, PagemapScan));
  exports.Set("pagemapScanPages", Napi::Function::New(env, PagemapScanPages));
}

}  // namespace ppsim
