// See bulk_frames.h.
#include "bulk_frames.h"

#include <cstring>

#include "util.h"

namespace ppsim {

bool ParsePages(const uint8_t* p, uint32_t len, uint64_t ps, uint64_t pc, std::vector<uint32_t>* pages,
                std::vector<uint8_t>* zero, std::vector<const uint8_t*>* data) {
  if (len < 4) return false;
  uint32_t count = GetU32(p);
  if (count > kMaxPages) return false;
  pages->reserve(count);
  zero->reserve(count);
  data->reserve(count);
  size_t o = 4;
  for (uint32_t i = 0; i < count; i++) {
    if (len - o < 5) return false;
    uint32_t page = GetU32(p + o);
    uint8_t flags = p[o + 4];
    o += 5;
    if (page >= pc) return false;
    if (flags > 1) return false;
    const uint8_t* d = nullptr;
    if (flags == 0) {
      if (len - o < ps) return false;
      d = p + o;
      o += ps;
    }
    pages->push_back(page);
    zero->push_back(flags);
    data->push_back(d);
  }
  return o == len;
}

void DeliverNotices(Box& box, Napi::Env env, Napi::Function cb) {
  std::vector<Notice> batch;
  {
    std::lock_guard<std::mutex> g(box.mu);
    batch.swap(box.out);
    box.scheduled = false;
    box.pendingPages = 0;
  }
  box.cv.notify_all();
  Napi::Array arr = Napi::Array::New(env, batch.size());
  for (size_t i = 0; i < batch.size(); i++) {
    Notice& n = batch[i];
    Napi::Object o = Napi::Object::New(env);
    if (n.kind == Kind::Pages) {
      o.Set("kind", "pages");
      Napi::Uint32Array p = Napi::Uint32Array::New(env, n.pages.size());
      memcpy(p.Data(), n.pages.data(), n.pages.size() * 4);
      Napi::Uint8Array z = Napi::Uint8Array::New(env, n.zero.size());
      memcpy(z.Data(), n.zero.data(), n.zero.size());
      o.Set("pages", p);
      o.Set("zero", z);
      o.Set("frames", static_cast<double>(n.frames));
    } else if (n.kind == Kind::Frame) {
      o.Set("kind", "frame");
      o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, n.bytes.data(), n.bytes.size()));
      o.Set("refused", Napi::Boolean::New(env, n.protocol));
    } else {
      o.Set("kind", "end");
      o.Set("protocol", Napi::Boolean::New(env, n.protocol));
      o.Set("reason", n.what);
      o.Set("silentMs", static_cast<double>(n.silentMs));
      o.Set("partial", static_cast<double>(n.partial));
      o.Set("error", n.err != 0 ? ErrnoError(env, n.err, n.what).Value() : env.Null());
    }
    arr.Set(static_cast<uint32_t>(i), o);
  }
  cb.Call({arr});
}

}  // namespace ppsim
