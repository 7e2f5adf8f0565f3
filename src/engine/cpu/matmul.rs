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
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm touches (m·n, m·k and k·n elements
    // addressed through the strides computed for exactly these shapes).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
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
        let (m, k, n) = (7, 5, 3);
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
