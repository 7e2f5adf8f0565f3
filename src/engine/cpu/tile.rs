//! The products' micro-kernel that direct and Winograd convolution share: a tile of
//! `S::ROWS` × [`COLS`] outputs whose left operand is gathered through an offset table, over
//! f32 or bf16-pair factors ([`Factor`]), its accumulators in registers over the whole
//! reduction; and what a convolution does to its sums as it stores them ([`Epilogue`]).

use super::simd::{f32_to_bf16, Simd, LANES, MAX_ROWS};

/// Output columns per tile: one [`Simd`] vector.
pub const COLS: usize = LANES;
/// A factor of the micro-kernel's products: an f32, or a pair of bf16 values holding two
/// consecutive terms of the sum (what `vdpbf16ps` multiplies).
pub trait Factor: Copy + Default + Send + Sync {
    /// Terms of the sum in one factor: 1 or 2.
    const TERMS: usize;

    /// `acc[r] += a[r] · b[..16]` for the tile's rows; `a[r]` points at one factor, `b` at 16.
    ///
    /// # Safety
    /// The CPU runs `S`; the pointers are valid.
    unsafe fn accumulate<S: Simd, const R: usize>(
        acc: &mut [S::V; R],
        a: &[*const Self; R],
        b: *const Self,
    );

    /// `values` as factors, consecutive values paired: `values` itself for f32, else packed
    /// into `scratch` (`values.len()` even).
    fn along<'a>(values: &'a [f32], scratch: &'a mut [Self]) -> &'a [Self];

    /// `blocks` matrices `[rows × width]` as factors, rows 2q and 2q + 1 paired (a zero row
    /// after an odd last one): `values` itself for f32, else `[blocks][⌈rows/2⌉][width]` in
    /// `scratch`.
    fn across<'a>(values: &'a [f32], shape: [usize; 3], scratch: &'a mut [Self]) -> &'a [Self];
}

impl Factor for f32 {
    const TERMS: usize = 1;

    #[inline(always)]
    unsafe fn accumulate<S: Simd, const R: usize>(
        acc: &mut [S::V; R],
        a: &[*const f32; R],
        b: *const f32,
    ) {
        let b = S::load(b);
        for r in 0..R {
            acc[r] = S::mul_add(S::splat(*a[r]), b, acc[r]);
        }
    }

    #[inline(always)]
    fn along<'a>(values: &'a [f32], _: &'a mut [f32]) -> &'a [f32] {
        values
    }

    #[inline(always)]
    fn across<'a>(values: &'a [f32], _: [usize; 3], _: &'a mut [f32]) -> &'a [f32] {
        values
    }
}

/// Two bf16 values, the first in the low half: consecutive terms of a product's sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16Pair(pub u32);

impl Bf16Pair {
    #[inline(always)]
    fn new(first: f32, second: f32) -> Bf16Pair {
        Bf16Pair(f32_to_bf16(first) as u32 | (f32_to_bf16(second) as u32) << 16)
    }
}

impl Factor for Bf16Pair {
    const TERMS: usize = 2;

    #[inline(always)]
    unsafe fn accumulate<S: Simd, const R: usize>(
        acc: &mut [S::V; R],
        a: &[*const Bf16Pair; R],
        b: *const Bf16Pair,
    ) {
        let b = S::load_pairs(b.cast());
        for r in 0..R {
            acc[r] = S::dot_bf16(acc[r], (*a[r]).0, b);
        }
    }

    #[inline(always)]
    fn along<'a>(values: &'a [f32], scratch: &'a mut [Bf16Pair]) -> &'a [Bf16Pair] {
        let packed = &mut scratch[..values.len() / 2];
        for (p, v) in packed.iter_mut().zip(values.chunks_exact(2)) {
            *p = Bf16Pair::new(v[0], v[1]);
        }
        packed
    }

    #[inline(always)]
    fn across<'a>(
        values: &'a [f32],
        [blocks, rows, width]: [usize; 3],
        scratch: &'a mut [Bf16Pair],
    ) -> &'a [Bf16Pair] {
        let pairs = rows.div_ceil(2);
        let packed = &mut scratch[..blocks * pairs * width];
        for (values, packed) in values
            .chunks_exact(rows * width)
            .zip(packed.chunks_exact_mut(pairs * width))
        {
            for (q, packed) in packed.chunks_exact_mut(width).enumerate() {
                let first = &values[2 * q * width..][..width];
                match values.get((2 * q + 1) * width..(2 * q + 2) * width) {
                    Some(second) => {
                        for ((p, a), b) in packed.iter_mut().zip(first).zip(second) {
                            *p = Bf16Pair::new(*a, *b);
                        }
                    }
                    None => {
                        for (p, a) in packed.iter_mut().zip(first) {
                            *p = Bf16Pair::new(*a, 0.0);
                        }
                    }
                }
            }
        }
        packed
    }
}

/// Where a tile's rows go: `rows` rows of 16 values, `ld` apart from `ptr`, stored, or added
/// to what is there (`accumulate`).
#[derive(Clone, Copy)]
pub struct TileOut {
    pub ptr: *mut f32,
    pub ld: usize,
    pub rows: usize,
    pub accumulate: bool,
}

impl TileOut {
    /// The first `rows` rows of `buffer`, stored.
    pub(super) fn into_buffer(buffer: &mut [[f32; COLS]; MAX_ROWS], rows: usize) -> TileOut {
        TileOut {
            ptr: buffer.as_mut_ptr().cast(),
            ld: COLS,
            rows: rows.min(MAX_ROWS),
            accumulate: false,
        }
    }
}

/// The micro-kernel: `out[r][..16] (+)= Σ_j a[table[start + r] + cols[j]] · b[j·ldb ..][..16]`
/// for the first `out.rows` of the `S::ROWS` rows of a tile from `start` (the table's last
/// entry repeated past its end), its accumulators in registers over the whole reduction.
///
/// # Safety
/// The CPU runs `S`; every `a[table[i] + cols[j]]` and `b[j·ldb + 0..16]` is in bounds, and
/// so are the `out.rows` rows of `out`.
#[inline(always)]
pub(super) unsafe fn tile<S: Simd, T: Factor>(
    a: *const T,
    rows: (&[usize], usize),
    cols: &[usize],
    b: (*const T, usize),
    out: TileOut,
) {
    // A const generic cannot be an associated constant: one arm per tile height that a path
    // has (the match is resolved at compile time).
    match S::ROWS {
        4 => tile_of::<S, T, 4>(a, rows, cols, b, out),
        6 => tile_of::<S, T, 6>(a, rows, cols, b, out),
        16 => tile_of::<S, T, 16>(a, rows, cols, b, out),
        rows => unreachable!("no path has tiles of {rows} rows"),
    }
}

/// `tile` for `R` rows.
///
/// # Safety
/// As `tile`.
#[inline(always)]
unsafe fn tile_of<S: Simd, T: Factor, const R: usize>(
    a: *const T,
    (table, start): (&[usize], usize),
    cols: &[usize],
    (b, ldb): (*const T, usize),
    out: TileOut,
) {
    let last = table.len() - 1;
    let a_rows: [*const T; R] = std::array::from_fn(|r| a.add(table[(start + r).min(last)]));
    let mut acc = [S::zero(); R];
    if out.accumulate {
        for (r, acc) in acc.iter_mut().enumerate().take(out.rows) {
            *acc = S::load(out.ptr.add(r * out.ld));
        }
    }
    let mut b_row = b;
    for &col in cols {
        let a_col = a_rows.map(|row| row.add(col));
        T::accumulate::<S, R>(&mut acc, &a_col, b_row);
        b_row = b_row.add(ldb);
    }
    for (r, acc) in acc.iter().enumerate().take(out.rows) {
        S::store(out.ptr.add(r * out.ld), *acc);
    }
}

/// The `(scale, shift)` per filter of `max(·, 0)·scale + shift`: a ReLU and an
/// evaluation-mode BatchNorm.
pub type ReluAffine<'a> = (&'a [f32], &'a [f32]);

/// What a convolution does to its sums before storing them: adds the bias and, in
/// evaluation, may also run the ReLU and BatchNorm after it, `max(·, 0)·scale + shift` per
/// filter (the same operations as those layers, so bit for bit their result).
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub relu_affine: Option<ReluAffine<'a>>,
    /// Then 2×2 max pooling (stride 2), storing only the pooled image: the evaluation-mode
    /// MaxPool after CONV → RELU → BN. Winograd's tiles (2×2, 4×4) hold whole windows, so
    /// only its path does this ([`TiledConv::pools_as_it_stores`](super::conv::TiledConv::pools_as_it_stores)).
    pub pool: bool,
}

impl Epilogue<'_> {
    /// The stored value of filter `f` whose sum is `sum`.
    #[inline]
    pub fn apply(&self, f: usize, sum: f32) -> f32 {
        let v = match self.bias {
            Some(bias) => sum + bias[f],
            None => sum,
        };
        match self.relu_affine {
            Some((scale, shift)) => v.max(0.0) * scale[f] + shift[f],
            None => v,
        }
    }

    /// The epilogue of filters `f0 .. f0 + width` (width ≤ 16).
    ///
    /// # Safety
    /// The CPU runs `S`.
    #[inline(always)]
    #[allow(clippy::manual_map)] // a closure would not inline S's operations
    pub(super) unsafe fn lanes<S: Simd>(&self, f0: usize, width: usize) -> EpilogueLanes<S> {
        EpilogueLanes {
            bias: match self.bias {
                Some(bias) => Some(load_lanes::<S>(&bias[f0..f0 + width])),
                None => None,
            },
            relu_affine: match self.relu_affine {
                Some((scale, shift)) => Some((
                    load_lanes::<S>(&scale[f0..f0 + width]),
                    load_lanes::<S>(&shift[f0..f0 + width]),
                )),
                None => None,
            },
        }
    }
}

/// An [`Epilogue`] as vectors, for the 16 filters from some f0 (zero past those that exist).
pub(super) struct EpilogueLanes<S: Simd> {
    bias: Option<S::V>,
    relu_affine: Option<(S::V, S::V)>,
}

impl<S: Simd> EpilogueLanes<S> {
    /// What [`Epilogue::apply`] stores, for 16 sums at once (the same operations, so the
    /// same values).
    ///
    /// # Safety
    /// The CPU runs `S`.
    #[inline(always)]
    pub(super) unsafe fn apply(&self, sums: S::V) -> S::V {
        let mut v = match self.bias {
            Some(bias) => S::add(sums, bias),
            None => sums,
        };
        if let Some((scale, shift)) = self.relu_affine {
            // As BatchNorm computes it: a product, then a sum (no FMA).
            v = S::add(S::mul(S::max(v, S::zero()), scale), shift);
        }
        v
    }
}

/// Up to 16 values as a vector, zeros after them.
///
/// # Safety
/// The CPU runs `S`.
#[inline(always)]
pub(super) unsafe fn load_lanes<S: Simd>(values: &[f32]) -> S::V {
    if values.len() == LANES {
        return S::load(values.as_ptr());
    }
    let mut spill = [0.0; LANES];
    spill[..values.len()].copy_from_slice(values);
    S::load(spill.as_ptr())
}

/// The first `out.len()` (≤ 16) lanes of `v` into `out`.
///
/// # Safety
/// The CPU runs `S`.
#[inline(always)]
pub(super) unsafe fn store_lanes<S: Simd>(out: &mut [f32], v: S::V) {
    if out.len() == LANES {
        return S::store(out.as_mut_ptr(), v);
    }
    let mut spill = [0.0; LANES];
    S::store(spill.as_mut_ptr(), v);
    out.copy_from_slice(&spill[..out.len()]);
}
