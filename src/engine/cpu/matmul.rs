use rayon::prelude::*;

/// How a matrix operand is stored in memory (row-major either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Stored as the logical matrix.
    AsIs,
    /// Stored as the transpose of the logical matrix.
    Transposed,
}

/// `c[m×n] = a[m×k] · b[k×n]`, plus the old `c` when `accumulate`. All row-major; a
/// transposed operand is read through strides, never copied. Threads: rayon's pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    a_layout: Layout,
    b: &[f32],
    b_layout: Layout,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    assert!(
        c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
        "matmul operand too small"
    );
    // (column stride, row stride) of each operand's logical matrix.
    let strides = |layout, rows: usize, cols: usize| match layout {
        Layout::AsIs => (1isize, cols as isize),
        Layout::Transposed => (rows as isize, 1isize),
    };
    let (a_cs, a_rs) = strides(a_layout, m, k);
    let (b_cs, b_rs) = strides(b_layout, k, n);
    let threads = rayon::current_num_threads();
    // gemm threads a short, wide product (Dense at batch 64: m = 64, n = 512 or 4096) poorly;
    // one single-threaded gemm per column panel does it better: dense_1's forward pass took
    // 3.5–4.0 ms with gemm's own threads and 2.3–2.9 ms this way (`minivgg bench`, 2 cores).
    if threads > 1 && m < 256 && n >= 64 * threads {
        let panel = n.div_ceil(threads).next_multiple_of(16);
        let (c, a, b) = (
            c.as_mut_ptr() as usize,
            a.as_ptr() as usize,
            b.as_ptr() as usize,
        );
        (0..n.div_ceil(panel)).into_par_iter().for_each(|p| {
            let (j0, cols) = (p * panel, panel.min(n - p * panel));
            let b = (b as *const f32).wrapping_offset(j0 as isize * b_cs);
            // SAFETY: as below, for the columns j0..j0 + cols of c and b; the panels are
            // disjoint column ranges of c.
            unsafe {
                let c = (c as *mut f32).add(j0);
                gemm_call(
                    m,
                    cols,
                    k,
                    (c, n),
                    accumulate,
                    (a as *const f32, a_cs, a_rs),
                    (b, b_cs, b_rs),
                    gemm::Parallelism::None,
                );
            }
        });
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm touches (m·n, m·k and k·n elements
    // addressed through the strides computed for exactly these shapes).
    unsafe {
        gemm_call(
            m,
            n,
            k,
            (c.as_mut_ptr(), n),
            accumulate,
            (a.as_ptr(), a_cs, a_rs),
            (b.as_ptr(), b_cs, b_rs),
            parallelism,
        );
    }
}

/// `c = a · b (+ c)` through gemm, each operand given as (pointer, column stride, row stride).
///
/// # Safety
/// Every element the strides address for these shapes is in bounds, and no other thread
/// touches c's elements meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call(
    m: usize,
    n: usize,
    k: usize,
    (c, c_rs): (*mut f32, usize),
    accumulate: bool,
    (a, a_cs, a_rs): (*const f32, isize, isize),
    (b, b_cs, b_rs): (*const f32, isize, isize),
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            c_rs as isize,
            accumulate,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    #[test]
    fn all_layouts_match_a_naive_product() {
        for (m, k, n) in [(7, 5, 3), (5, 3, 200)] {
            // On two threads, the second shape is done in column panels.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            pool.install(|| check_layouts(m, k, n));
        }
    }

    fn check_layouts(m: usize, k: usize, n: usize) {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        for (a_op, al, b_op, bl) in [
            (&a, Layout::AsIs, &b, Layout::AsIs),
            (&at, Layout::Transposed, &b, Layout::AsIs),
            (&a, Layout::AsIs, &bt, Layout::Transposed),
            (&at, Layout::Transposed, &bt, Layout::Transposed),
        ] {
            let mut c = vec![1.0; m * n];
            matmul(&mut c, a_op, al, b_op, bl, m, k, n, true);
            for (got, want) in c.iter().zip(&want) {
                assert!(
                    (got - (want + 1.0)).abs() < 1e-5,
                    "{al:?} {bl:?}: {got} vs {}",
                    want + 1.0
                );
            }
        }
    }
}
