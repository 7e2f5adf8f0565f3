//! Column reductions over a `[rows × width]` matrix, in f64, split into fixed row chunks that
//! are summed in order: the same result whatever the thread count.

use rayon::prelude::*;

/// Rows per chunk: large enough to amortise scheduling, small enough to use both cores.
pub const ROWS_PER_CHUNK: usize = 512;

/// Length of the scratch buffer [`reduce_rows`] needs.
pub fn partials_len(rows: usize, width: usize) -> usize {
    rows.div_ceil(ROWS_PER_CHUNK) * width
}

/// `out[j] = Σ over chunks of accumulate(chunk rows)[j]`. `accumulate` adds its chunk's
/// contribution into the zeroed `width`-long slice it is given.
pub fn reduce_rows(
    rows: usize,
    partials: &mut [f64],
    out: &mut [f64],
    accumulate: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
) {
    let width = out.len();
    let partials = &mut partials[..partials_len(rows, width)];
    partials
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(chunk, sums)| {
            sums.fill(0.0);
            let start = chunk * ROWS_PER_CHUNK;
            accumulate(start..(start + ROWS_PER_CHUNK).min(rows), sums);
        });
    out.fill(0.0);
    for sums in partials.chunks(width) {
        for (o, s) in out.iter_mut().zip(sums) {
            *o += s;
        }
    }
}

/// Per-column sums of `x[rows × cols]` (bias gradients).
pub fn column_sums(x: &[f32], rows: usize, partials: &mut [f64], out: &mut [f64]) {
    let cols = out.len();
    reduce_rows(rows, partials, out, |range, sums| {
        for row in x[range.start * cols..range.end * cols].chunks_exact(cols) {
            for (s, v) in sums.iter_mut().zip(row) {
                *s += *v as f64;
            }
        }
    });
}
