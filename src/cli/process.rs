//! Process-wide settings for training, made by the binary (a library must not
//! change its host process's allocator or environment).

/// Two process-wide settings that make candle training 2–5× faster, applied
/// once. A library must not change its host process behind its back, so
/// `train` does not call this: the `convexformer` binary does, at start-up.
///
/// - candle asks for its thread count before every product, and without
///   `RAYON_NUM_THREADS` it re-reads the CPU list from /proc each time (a
///   quarter of a small training step, measured). When the user has not set
///   it, `RAYON_NUM_THREADS` is set to the count candle would find, after
///   rayon's global pool (the solver's) has started with its own default, so
///   neither count changes. `std::env` serializes the accesses.
/// - candle allocates a fresh buffer for every op; glibc hands buffers above
///   its mmap/trim thresholds back to the kernel on free, so every step pays
///   page faults for the same sizes again (softmax attention ran 2.5× slower,
///   measured). The thresholds are raised (mmap 32 MiB, the most glibc
///   allows; trim 1 GiB): freed memory is kept for reuse instead.
pub fn tune_process_for_training() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let _ = rayon::current_num_threads();
            let n = candle_core::utils::get_num_threads();
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only changes glibc's allocation thresholds; it
            // is thread-safe and the values are within its documented ranges.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        }
    });
}
