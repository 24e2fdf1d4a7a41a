// PAGEMAP_SCAN (Linux 6.7) on an fd of /proc/PID/pagemap: returns page ranges
// matching categories and, with PM_SCAN_WP_MATCHING, write-protects them
// again in the same walk — the async-WP dirty log.
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "../common/uapi.h"
#include "util.h"

namespace ppsim {

using ppsim_uapi::page_region;
using ppsim_uapi::pm_scan_arg;

// pagemapScan(fd, start, end, { flags, categoryMask, categoryInverted,
//   categoryAnyofMask, returnMask, maxPages, vecLen })
//   -> { regions: BigUint64Array [start, end, categories]*, walkEnd: bigint }
static Napi::Value PagemapScan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t start = ArgU64(info, 1, "start"), end = ArgU64(info, 2, "end");
  uint64_t flags = 0, mask = 0, inverted = 0, anyof = 0, ret = ppsim_uapi::PAGE_IS_WRITTEN, maxPages = 0, vecLen = 1024;
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    auto get = [&](const char* k, uint64_t& dst) {
      if (!o.Has(k) || o.Get(k).IsUndefined()) return;
      Napi::Value v = o.Get(k);
      if (v.IsBigInt()) {
        bool lossless;
        dst = v.As<Napi::BigInt>().Uint64Value(&lossless);
      } else if (v.IsNumber()) {
        dst = static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
      } else {
        ThrowType(env, std::string("pagemapScan option ") + k + " must be a number");
      }
    };
    get("flags", flags);
    get("categoryMask", mask);
    get("categoryInverted", inverted);
    get("categoryAnyofMask", anyof);
    get("returnMask", ret);
    get("maxPages", maxPages);
    get("vecLen", vecLen);
  }
  if (vecLen == 0 || vecLen > (1u << 20)) ThrowRange(env, "vecLen must be in 1..1048576");
  if (start > end) ThrowRange(env, "pagemapScan: start > end");

  std::vector<page_region> vec(vecLen);
  std::vector<uint64_t> out;  // flattened triples, adjacent equal ranges merged
  uint64_t cur = start, walkEnd = start, pagesLeft = maxPages;
  const uint64_t pageSize = 4096;  // only used to count pages toward maxPages
  while (cur < end) {
    pm_scan_arg a{};
    a.size = sizeof a;  // the kernel checks size to version the struct
    a.flags = flags;
    a.start = cur;
    a.end = end;
    // Pointer -> integer: the kernel writes page_region records to this
    // address in our address space (vec.data() is valid for vecLen records).
    a.vec = reinterpret_cast<uintptr_t>(vec.data());
    a.vec_len = vecLen;
    a.max_pages = pagesLeft;  // 0 = unlimited
    a.category_inverted = inverted;
    a.category_mask = mask;
    a.category_anyof_mask = anyof;
    a.return_mask = ret;
    int n = ioctl(fd, ppsim_uapi::PAGEMAP_SCAN_IOCTL, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, errno, "PAGEMAP_SCAN(start " + Hex(cur) + ", end " + Hex(end) + ", flags " + Hex(flags) + ")");
    }
    uint64_t pages = 0;
    for (int i = 0; i < n; i++) {
      const page_region& r = vec[static_cast<size_t>(i)];
      pages += (r.end - r.start) / pageSize;
      size_t k = out.size();
      if (k >= 3 && out[k - 2] == r.start && out[k - 1] == r.categories) {
        out[k - 2] = r.end;  // continuation of the previous call's last region
      } else {
        out.push_back(r.start);
        out.push_back(r.end);
        out.push_back(r.categories);
      }
    }
    walkEnd = a.walk_end;
    if (maxPages != 0) {
      pagesLeft = pages >= pagesLeft ? 0 : pagesLeft - pages;
      if (pagesLeft == 0) break;  // caller's page budget is spent: report walkEnd
    }
    // The walk stops early only when vec is full (or max_pages is hit);
    // continue from walk_end. No progress means a kernel surprise: stop.
    if (walkEnd <= cur) break;
    cur = walkEnd;
  }
  Napi::Object res = Napi::Object::New(env);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, out.size() * 8);
  if (!out.empty()) memcpy(ab.Data(), out.data(), out.size() * 8);
  res.Set("regions", Napi::TypedArrayOf<uint64_t>::New(env, out.size(), ab, 0, napi_biguint64_array));
  res.Set("walkEnd", U64(env, walkEnd));
  return res;
}

void InitPagemap(Napi::Env env, Napi::Object exports) { exports.Set("pagemapScan", Napi::Function::New(env, PagemapScan)); }

}  // namespace ppsim
