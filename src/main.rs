//! The `snap` command: parses the command line, calls the library, maps
//! errors to the exit codes documented in docs/CLI.md.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    bound_malloc();
    cli::main()
}

/// Keeps glibc's malloc from holding on to memory the program freed
/// (docs/PERFORMANCE.md, "flat memory"): a backup's peak RSS then follows
/// its live heap instead of growing with the number of files.
///
/// By default glibc raises its mmap threshold to the size of every large
/// block freed (up to 32 MiB): after the first 5 MiB chunk buffer, chunk
/// buffers, zstd contexts and pack buffers come from the per-thread arenas,
/// whose freed space stays resident, up to twice that threshold per arena
/// (one arena per thread, up to 8 per core). A fixed threshold of 1 MiB
/// gives blocks of that size and more back to the kernel when they are
/// freed (fixing it also keeps the arenas' trim threshold at 128 KiB), and
/// two arenas keep small blocks from spreading over one arena per thread.
/// Peak RSS of a first backup: 300,000 small files 50 -> 33-36 MiB, the
/// peer dataset 73-86 -> 50-55 MiB. A threshold of 128 KiB held 2-3 MiB
/// less but maps every chunk's zstd output anew. Large blocks mapped and
/// faulted in anew still cost a backup of large files 0.3-0.5 s of system
/// time per GB (the wall time it costs was within the noise of a loaded
/// machine: see docs/PERFORMANCE.md).
///
/// Other allocators were measured too (mimalloc, jemalloc): with their
/// defaults they held more than glibc, and their settings that do not can
/// only be given through environment variables or build flags.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_malloc() {
    const MMAP_THRESHOLD: libc::c_int = 1 << 20;
    const ARENAS: libc::c_int = 2;
    // SAFETY: mallopt only sets malloc's tuning parameters, and it is
    // called first thing in main, before any thread of this program starts.
    // Its result only says whether a value was accepted: with a refused
    // one, malloc keeps its default and snap works the same.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Other C libraries keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc() {}
