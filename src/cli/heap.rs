//! Heap tuning for the compiler's short runs — the only `unsafe` in netc.
//!
//! netc compiles in milliseconds, and at 50k sources a third of a build was the kernel handing
//! out and zeroing 4 KiB pages one fault at a time. So `build` and `check` grow the heap in big
//! steps (glibc's top pad; large blocks from the heap, not mmap/munmap) and ask for transparent
//! huge pages on it (`madvise`: this kernel's THP mode is "madvise"). 50k sources: 7,100 → 420
//! faults, 59 → 44 ms; csc.csn unchanged (~4 ms). bench/run measures it. Long-lived commands
//! (apply, and the rollback timer that waits out a confirm window) keep glibc's defaults: a
//! pre-grown heap is waste there.

/// Tunes the heap of this process, before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    const PAD: usize = 32 << 20; // glibc's largest M_MMAP_THRESHOLD
    // SAFETY: glibc calls on this process's own heap, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, PAD as i32);
        libc::mallopt(libc::M_TOP_PAD, PAD as i32);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        let start = libc::sbrk(0) as usize;
        // Grow the heap now (black_box: the compiler may drop a malloc that is only freed).
        libc::free(std::hint::black_box(libc::malloc(PAD / 2)));
        let end = libc::sbrk(0) as usize;
        let huge = 2 << 20;
        let from = (start + huge - 1) & !(huge - 1);
        if end > from {
            libc::madvise(from as *mut libc::c_void, end - from, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
