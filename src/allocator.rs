//! The memory allocator's settings for a long-running cache of many small objects.
//!
//! glibc's allocator gives each thread that allocates under contention an arena of its own,
//! up to eight per core, and keeps what is freed in them. rsg's runtime threads all touch the
//! cache, so its resident memory grew with the arenas rather than with what it held. Two
//! arenas serve its allocation rate; `MALLOC_ARENA_MAX`, when set, still decides.

/// Limits glibc to two arenas unless `MALLOC_ARENA_MAX` says otherwise. Call before any
/// thread is started.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes the allocator's tuning; called before other threads
        // exist, it races with no allocation.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Returns the free memory at the top of the heap and in whole free pages to the system:
/// after the caches' initial lists, whose pages of listed objects are freed once the
/// objects are trimmed and stored. (Doing it every 30 s as well was measured: at 10,000
/// RSGs it returned nothing worth the call.)
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory no allocation holds.
    unsafe {
        libc::malloc_trim(0);
    }
}
