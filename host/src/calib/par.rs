//! Tiny deterministic data parallelism on `std::thread::scope`.
//!
//! Work is cut into fixed-size blocks that do not depend on the thread count;
//! results come back in block order. Anything reduced from them in that order
//! is therefore bit-identical whatever `RAYON_NUM_THREADS` says.

use std::ops::Range;

/// Number of worker threads: the same knob candle uses (`RAYON_NUM_THREADS`,
/// else the number of logical CPUs).
/// Inside a rayon worker (one of DQC's parallel micro-batches) it is 1: the
/// pool's threads are busy already, and blocks run on the caller.
pub(crate) fn threads() -> usize {
    if rayon::current_thread_index().is_some() {
        return 1;
    }
    candle_core::utils::get_num_threads().max(1)
}

/// Evaluate `f` on every block `[k·block, min((k+1)·block, n))` of `0..n` and
/// return the results in block order.
pub(crate) fn map_blocks<R, F>(n: usize, block: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(Range<usize>) -> R + Sync,
{
    let block = block.max(1);
    let nb = n.div_ceil(block);
    let range = |k: usize| k * block..((k + 1) * block).min(n);
    let t = threads().min(nb);
    if t <= 1 {
        return (0..nb).map(range).map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..t)
            .map(|w| {
                let (b0, b1) = (w * nb / t, (w + 1) * nb / t);
                sc.spawn(move || (b0..b1).map(range).map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("calib worker thread panicked"))
            .collect()
    })
}

/// Like [`map_blocks`], but also hands every block its own mutable window of
/// `out` (`out.len()` defines `n`). `f` gets the block's element range and
/// the matching `&mut out[range]`.
pub(crate) fn map_blocks_mut<T, R, F>(out: &mut [T], block: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(Range<usize>, &mut [T]) -> R + Sync,
{
    let block = block.max(1);
    let n = out.len();
    let nb = n.div_ceil(block);
    let t = threads().min(nb);
    let mut chunks: Vec<(usize, &mut [T])> = out
        .chunks_mut(block)
        .enumerate()
        .map(|(k, c)| (k * block, c))
        .collect();
    let run = |(start, c): (usize, &mut [T])| {
        let len = c.len();
        f(start..start + len, c)
    };
    if t <= 1 {
        return chunks.into_iter().map(run).collect();
    }
    let run = &run;
    std::thread::scope(|sc| {
        let mut handles = Vec::with_capacity(t);
        let mut rest = chunks.as_mut_slice();
        let mut taken = 0;
        for w in 0..t {
            let b1 = (w + 1) * nb / t;
            let (mine, tail) = rest.split_at_mut(b1 - taken);
            rest = tail;
            taken = b1;
            handles.push(sc.spawn(move || {
                mine.iter_mut()
                    .map(|(s, c)| run((*s, &mut **c)))
                    .collect::<Vec<R>>()
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("calib worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_in_order() {
        let r = map_blocks(10, 3, |r| (r.start, r.end));
        assert_eq!(r, vec![(0, 3), (3, 6), (6, 9), (9, 10)]);
        let mut out = vec![0usize; 10];
        let r = map_blocks_mut(&mut out, 4, |r, o| {
            for (i, v) in o.iter_mut().enumerate() {
                *v = r.start + i;
            }
            r.len()
        });
        assert_eq!(r, vec![4, 4, 2]);
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert!(map_blocks(0, 3, |r| r.len()).is_empty());
    }
}
