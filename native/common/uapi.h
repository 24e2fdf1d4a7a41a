// Kernel interface constants that the installed headers (/usr/include, older
// than the running 6.18 kernel) may lack. Each value is copied from the
// kernel's UAPI headers and checked below with static_asserts against the
// ioctl numbers computed by the _IOWR macro, so a typo fails the build
// rather than silently issuing the wrong ioctl.
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <cstdint>

// ---- include/uapi/linux/userfaultfd.h (torvalds/linux, v6.7+) -------------
// "#define UFFD_FEATURE_WP_UNPOPULATED (1<<13)" (added in 6.4)
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
// "#define UFFD_FEATURE_POISON (1<<14)" (6.6)
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
// "#define UFFD_FEATURE_WP_ASYNC (1<<15)" (6.7)
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
// "#define UFFD_FEATURE_MOVE (1<<16)" (6.8)
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
// Present in Debian 12's header already, repeated for older ones.
#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM (1 << 10)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

// Values we rely on: assert they match the kernel's published numbers
// (computed by hand from _IOWR(dir=3, size, type=0xAA, nr)).
static_assert(UFFDIO_API == 0xC018AA3F, "UFFDIO_API: _IOWR(0xAA, 0x3F, 24-byte uffdio_api)");
static_assert(UFFDIO_REGISTER == 0xC020AA00, "UFFDIO_REGISTER: _IOWR(0xAA, 0x00, 32 bytes)");
static_assert(UFFDIO_UNREGISTER == 0x8010AA01, "UFFDIO_UNREGISTER: _IOR(0xAA, 0x01, 16 bytes)");
static_assert(UFFDIO_WAKE == 0x8010AA02, "UFFDIO_WAKE: _IOR(0xAA, 0x02, 16 bytes)");
static_assert(UFFDIO_COPY == 0xC028AA03, "UFFDIO_COPY: _IOWR(0xAA, 0x03, 40 bytes)");
static_assert(UFFDIO_ZEROPAGE == 0xC020AA04, "UFFDIO_ZEROPAGE: _IOWR(0xAA, 0x04, 32 bytes)");
static_assert(UFFDIO_WRITEPROTECT == 0xC018AA06, "UFFDIO_WRITEPROTECT: _IOWR(0xAA, 0x06, 24 bytes)");
static_assert(UFFDIO_CONTINUE == 0xC020AA07, "UFFDIO_CONTINUE: _IOWR(0xAA, 0x07, 32 bytes)");
static_assert(USERFAULTFD_IOC_NEW == 0xAA00, "USERFAULTFD_IOC_NEW: _IO(0xAA, 0x00)");
static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg is 32 bytes (packed)");

// ---- include/uapi/linux/fs.h (torvalds/linux, v6.7+) -----------------------
// "#define PAGEMAP_SCAN _IOWR(PROCFS_IOCTL_MAGIC, 16, struct pm_scan_arg)"
// with PROCFS_IOCTL_MAGIC 'f'. We always use our own struct names (the
// layout is the UAPI one) so the code does not depend on header version.
namespace ppsim_uapi {

// struct page_region { __u64 start; __u64 end; __u64 categories; };
struct page_region {
  uint64_t start;
  uint64_t end;  // exclusive
  uint64_t categories;
};

// struct pm_scan_arg { __u64 size, flags, start, end, walk_end, vec, vec_len,
//   max_pages, category_inverted, category_mask, category_anyof_mask, return_mask; };
struct pm_scan_arg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
static_assert(sizeof(page_region) == 24, "page_region is 3 x u64");
static_assert(sizeof(pm_scan_arg) == 96, "pm_scan_arg is 12 x u64");

constexpr unsigned long PAGEMAP_SCAN_IOCTL = _IOWR('f', 16, struct pm_scan_arg);
static_assert(PAGEMAP_SCAN_IOCTL == 0xC0606610, "PAGEMAP_SCAN: _IOWR('f', 16, 96 bytes)");

// Page categories ("#define PAGE_IS_WPALLOWED (1 << 0)" ... fs.h).
constexpr uint64_t PAGE_IS_WPALLOWED = 1u << 0;
constexpr uint64_t PAGE_IS_WRITTEN = 1u << 1;
constexpr uint64_t PAGE_IS_FILE = 1u << 2;
constexpr uint64_t PAGE_IS_PRESENT = 1u << 3;
constexpr uint64_t PAGE_IS_SWAPPED = 1u << 4;
constexpr uint64_t PAGE_IS_PFNZERO = 1u << 5;
constexpr uint64_t PAGE_IS_HUGE = 1u << 6;
constexpr uint64_t PAGE_IS_SOFT_DIRTY = 1u << 7;

// Scan flags ("#define PM_SCAN_WP_MATCHING (1 << 0)", "PM_SCAN_CHECK_WPASYNC (1 << 1)").
constexpr uint64_t PM_SCAN_WP_MATCHING = 1u << 0;
constexpr uint64_t PM_SCAN_CHECK_WPASYNC = 1u << 1;

}  // namespace ppsim_uapi
