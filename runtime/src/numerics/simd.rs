//! Which vector instruction set the numeric kernels run with, chosen once at run time.
//!
//! Each kernel is one portable `#[inline(always)]` loop written so the compiler vectorises
//! it, compiled three times: for AVX-512 (F, BW, VL, DQ: sixteen 32-bit lanes and mask
//! registers), for AVX2 + FMA, and for the baseline target. [`level`] says which copy to run.
//! Every copy computes the same bits (the code is the same; only its instructions differ) —
//! the kernels' tests run every copy the CPU supports (`with_level`); Rust never contracts
//! a multiply and an add into an FMA, so enabling FMA changes no result.

#[cfg(test)]
use std::cell::Cell;

/// An instruction set the kernels are compiled for, best first. The copies are marked
/// `#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]` and
/// `#[target_feature(enable = "avx2,fma")]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86-64 has the vector copies
pub(crate) enum Level {
    Avx512,
    Avx2,
    Baseline,
}

/// The best level this CPU supports.
fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            let avx512 = std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512dq");
            if avx2 && avx512 {
                Level::Avx512
            } else if avx2 {
                Level::Avx2
            } else {
                Level::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Level::Baseline
}

#[cfg(test)]
thread_local! {
    static FORCED: Cell<Option<Level>> = const { Cell::new(None) };
}

/// The level the kernels run with: the best the CPU supports (in tests, possibly a lower one
/// forced by [`with_level`] on this thread).
#[inline]
pub(crate) fn level() -> Level {
    #[cfg(test)]
    if let Some(forced) = FORCED.with(Cell::get) {
        return forced;
    }
    detected()
}

/// Every level this CPU supports, best first.
#[cfg(test)]
pub(crate) fn supported() -> Vec<Level> {
    [Level::Avx512, Level::Avx2, Level::Baseline]
        .into_iter()
        .filter(|l| match (detected(), l) {
            (Level::Avx512, _) => true,
            (Level::Avx2, lower) => *lower != Level::Avx512,
            (Level::Baseline, lower) => *lower == Level::Baseline,
        })
        .collect()
}

/// Runs `f` with the kernels of this thread at `level` (which the CPU must support).
#[cfg(test)]
pub(crate) fn with_level<T>(level: Level, f: impl FnOnce() -> T) -> T {
    assert!(
        supported().contains(&level),
        "{level:?} is not supported by this CPU"
    );
    FORCED.with(|c| c.set(Some(level)));
    let out = f();
    FORCED.with(|c| c.set(None));
    out
}
