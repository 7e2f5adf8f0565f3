//! One kernel source for every vector width: the convolution kernels are written once against
//! [`Simd`], a vector of 16 f32 lanes, and compiled for each instruction set the CPU may have:
//! portable Rust (what any CPU runs), on x86-64 AVX2 + FMA (two 256-bit registers per vector)
//! and AVX-512 (one 512-bit register, with more of them for larger tiles), on aarch64 NEON
//! (four 128-bit registers per vector). The kernels tests run every path against the portable
//! one, so the shared logic is tested on any machine.
//!
//! [`CpuPath`] names a path; `MINIVGG_CPU=portable|avx2|avx512` (x86-64) or `portable|neon`
//! (aarch64) forces a lower one than the best the CPU has. [`dispatch`] runs a [`Kernel`]
//! compiled for an [`Isa`]: the path, with AVX512_BF16 for the bf16 products where the
//! precision asks for them.

use super::super::precision::Precision;
use std::fmt;

/// The environment variable that forces a CPU path.
pub const PATH_VARIABLE: &str = "MINIVGG_CPU";

/// Which instruction set the CPU kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuPath {
    Portable,
    Avx2,
    Avx512,
    Neon,
}

impl CpuPath {
    /// The paths of this architecture, lowest first.
    #[cfg(target_arch = "x86_64")]
    pub const ALL: [CpuPath; 3] = [CpuPath::Portable, CpuPath::Avx2, CpuPath::Avx512];
    /// The paths of this architecture, lowest first.
    #[cfg(target_arch = "aarch64")]
    pub const ALL: [CpuPath; 2] = [CpuPath::Portable, CpuPath::Neon];
    /// The paths of this architecture, lowest first.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const ALL: [CpuPath; 1] = [CpuPath::Portable];

    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Portable => "portable",
            CpuPath::Avx2 => "avx2",
            CpuPath::Avx512 => "avx512",
            CpuPath::Neon => "neon",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            CpuPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            CpuPath::Avx512 => {
                CpuPath::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            // NEON is part of the aarch64 baseline: every such CPU has it.
            #[cfg(target_arch = "aarch64")]
            CpuPath::Neon => true,
            _ => false,
        }
    }

    /// The paths this CPU runs, lowest first.
    pub fn supported_paths() -> Vec<CpuPath> {
        CpuPath::ALL.into_iter().filter(|p| p.supported()).collect()
    }

    /// The fastest path this CPU runs.
    pub fn best() -> CpuPath {
        *CpuPath::supported_paths()
            .last()
            .expect("portable always runs")
    }

    /// `MINIVGG_CPU` if it is set, else the best path; a path the CPU lacks, or an unknown
    /// name, is an error that says which paths this CPU has.
    pub fn from_env() -> Result<CpuPath, String> {
        match std::env::var(PATH_VARIABLE) {
            Ok(name) if !name.is_empty() => CpuPath::named(&name),
            _ => Ok(CpuPath::best()),
        }
    }

    /// This architecture's paths as the error lists them: `portable, avx2 or avx512`.
    fn listed() -> String {
        let names = CpuPath::ALL.map(CpuPath::name);
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    fn named(name: &str) -> Result<CpuPath, String> {
        let have = CpuPath::supported_paths()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ");
        let path = CpuPath::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let expected = CpuPath::listed();
                format!("{PATH_VARIABLE}={name:?} is not a CPU path; expected {expected} (this CPU runs {have})")
            })?;
        if !path.supported() {
            return Err(format!(
                "{PATH_VARIABLE}={name}: this CPU lacks the instructions of that path; it runs {have}"
            ));
        }
        Ok(path)
    }
}

impl fmt::Display for CpuPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this CPU has the bf16 dot-product instructions (AVX512_BF16's `vdpbf16ps`).
pub fn has_bf16_dot_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        CpuPath::Avx512.supported() && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The CPU cannot run the kernels asked for (a forced path it lacks, bf16 without its
/// instructions): the message says what it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedCpu(pub String);

/// What the kernels are compiled for: a path and a precision. On the portable, AVX2 and NEON
/// paths the bf16 products are emulated (exactly what `vdpbf16ps` computes, up to the order of two
/// additions), so tests can check the bf16 logic anywhere; the command line offers bf16 only
/// where the CPU has the instructions.
///
/// An `Isa` exists only where the CPU runs it (its fields are private): holding one is the
/// proof that [`dispatch`] and `vectorized!` may use its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa {
    path: CpuPath,
    precision: Precision,
}

impl Isa {
    /// The kernels for `path` in `precision`: `None` where the CPU cannot run them (and for
    /// tf32, which is the GPU's: see [`Precision::on_cpu`]).
    pub fn new(path: CpuPath, precision: Precision) -> Option<Isa> {
        let bf16_native = path == CpuPath::Avx512 && precision == Precision::Bf16;
        (path.supported()
            && precision != Precision::Tf32
            && (!bf16_native || has_bf16_dot_products()))
        .then_some(Isa { path, precision })
    }

    /// The kernels of the path from `MINIVGG_CPU` (or the best one) in `precision`: bf16
    /// only where the CPU has its dot-product instructions, never emulated.
    pub fn from_env(precision: Precision) -> Result<Isa, UnsupportedCpu> {
        let path = CpuPath::from_env().map_err(UnsupportedCpu)?;
        if precision == Precision::Tf32 {
            return Err(UnsupportedCpu(
                "--precision tf32 runs on NVIDIA GPUs (--device cuda); the CPU runs fp32 or bf16"
                    .into(),
            ));
        }
        if precision == Precision::Bf16 {
            if !has_bf16_dot_products() {
                return Err(UnsupportedCpu(
                    "--precision bf16 needs a CPU with AVX512_BF16 (the vdpbf16ps \
                            instruction: AMD Zen 4 and later, Intel Xeon since Cooper Lake); \
                            this one has none, use --precision fp32"
                        .into(),
                ));
            }
            if path != CpuPath::Avx512 {
                return Err(UnsupportedCpu(format!(
                    "--precision bf16 runs on the avx512 path, but {PATH_VARIABLE}={path} \
                     forces another"
                )));
            }
        }
        Ok(Isa::new(path, precision).expect("checked above"))
    }

    pub fn path(self) -> CpuPath {
        self.path
    }

    pub fn precision(self) -> Precision {
        self.precision
    }

    /// The same path in fp32 (which every path runs).
    pub fn fp32(self) -> Isa {
        Isa {
            precision: Precision::Fp32,
            ..self
        }
    }

    /// What `bench` prints: e.g. `avx512, bf16 products (vdpbf16ps)`.
    pub fn describe(self) -> String {
        match self.precision {
            Precision::Fp32 => format!("{}, fp32", self.path),
            Precision::Bf16 if self.path == CpuPath::Avx512 => {
                format!("{}, bf16 products (vdpbf16ps)", self.path)
            }
            Precision::Bf16 => format!("{}, bf16 products (emulated)", self.path),
            Precision::Tf32 => unreachable!("an Isa is never tf32 (Isa::new)"),
        }
    }
}

/// Sixteen f32 lanes, and the bf16 dot product on them.
///
/// # Safety
/// Every method is unsafe: it runs the instructions of its implementation, which the CPU must
/// have ([`Isa::new`] checks), and the pointers must be valid for 16 values.
#[allow(clippy::missing_safety_doc)] // the trait's section covers every method
pub trait Simd: Copy {
    type V: Copy;
    /// Sixteen bf16 pairs (32 bf16 values), the right operand of [`Simd::dot_bf16`].
    type Pairs: Copy;
    /// Rows of the products' micro-kernel tile (at most [`MAX_ROWS`]): as many accumulators
    /// as the registers hold next to the operands.
    const ROWS: usize;

    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, fused where the instruction set has FMA.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn load_pairs(p: *const u32) -> Self::Pairs;
    /// `acc[i] + a.lo·b[i].lo + a.hi·b[i].hi`: `a` one pair of bf16 values (low half first),
    /// `b` sixteen pairs.
    unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V;
}

/// The most rows any path's tile has.
pub const MAX_ROWS: usize = 16;
/// The lanes of a [`Simd`] vector.
pub const LANES: usize = 16;

/// The f32 value of a bf16's bits.
#[inline(always)]
pub fn bf16_to_f32(bits: u32) -> f32 {
    f32::from_bits(bits << 16)
}

/// `x` rounded to the nearest bf16 (ties to even), as `vcvtneps2bf16` rounds.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16; // quiet, as the instruction does
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Plain Rust over arrays: what every CPU runs (the compiler vectorizes it for its baseline).
#[derive(Debug, Clone, Copy)]
pub struct Portable;

impl Simd for Portable {
    type V = [f32; LANES];
    type Pairs = [u32; LANES];
    const ROWS: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; LANES]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        p.cast::<[f32; LANES]>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        p.cast::<[f32; LANES]>().write_unaligned(v)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] - b[i])
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        // As `maxps`: b where the comparison fails (NaN), so every path agrees.
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // Unfused: without FMA hardware `f32::mul_add` is a slow library call.
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn load_pairs(p: *const u32) -> Self::Pairs {
        p.cast::<[u32; LANES]>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V {
        let (a_lo, a_hi) = (bf16_to_f32(a & 0xffff), bf16_to_f32(a >> 16));
        std::array::from_fn(|i| {
            acc[i] + a_lo * bf16_to_f32(b[i] & 0xffff) + a_hi * bf16_to_f32(b[i] >> 16)
        })
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512, Avx512Bf16};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Simd, LANES};
    use std::arch::x86_64::*;

    /// AVX2 + FMA: a vector is two 256-bit registers; 6 × 2 accumulators leave 4 of the 16
    /// registers to the operands.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2;

    impl Simd for Avx2 {
        type V = [__m256; 2];
        type Pairs = [__m256i; 2];
        const ROWS: usize = 6;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            [_mm256_setzero_ps(); 2]
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            [_mm256_set1_ps(x); 2]
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(LANES / 2))]
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v[0]);
            _mm256_storeu_ps(p.add(LANES / 2), v[1]);
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])]
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            [_mm256_sub_ps(a[0], b[0]), _mm256_sub_ps(a[1], b[1])]
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            [_mm256_mul_ps(a[0], b[0]), _mm256_mul_ps(a[1], b[1])]
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            [_mm256_max_ps(a[0], b[0]), _mm256_max_ps(a[1], b[1])]
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            [
                _mm256_fmadd_ps(a[0], b[0], c[0]),
                _mm256_fmadd_ps(a[1], b[1], c[1]),
            ]
        }
        #[inline(always)]
        unsafe fn load_pairs(p: *const u32) -> Self::Pairs {
            let p = p.cast::<__m256i>();
            [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]
        }
        #[inline(always)]
        unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V {
            // Emulated (tests only): each pair's halves widened to f32 by shifting.
            let lo = _mm256_set1_ps(f32::from_bits(a << 16));
            let hi = _mm256_set1_ps(f32::from_bits(a & 0xffff_0000));
            let mask = _mm256_set1_epi32(0xffff_0000_u32 as i32);
            let half = |pairs: __m256i, acc: __m256| {
                let b_lo = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
                let b_hi = _mm256_castsi256_ps(_mm256_and_si256(pairs, mask));
                _mm256_add_ps(
                    _mm256_add_ps(acc, _mm256_mul_ps(lo, b_lo)),
                    _mm256_mul_ps(hi, b_hi),
                )
            };
            [half(b[0], acc[0]), half(b[1], acc[1])]
        }
    }

    /// The fp32 operations of AVX-512F, shared by [`Avx512`] and [`Avx512Bf16`].
    macro_rules! avx512_f32 {
        () => {
            type V = __m512;
            type Pairs = __m512i;
            // 16 of the 32 registers accumulate, each a row of the tile: against 12 and 14
            // rows, `minivgg bench` measured the training step 4 % faster on Zen 4, and 16 tiles
            // (a 16×16 image's F(4×4) tiles) fill one tile exactly.
            const ROWS: usize = 16;

            #[inline(always)]
            unsafe fn zero() -> Self::V {
                _mm512_setzero_ps()
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self::V {
                _mm512_set1_ps(x)
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self::V {
                _mm512_loadu_ps(p)
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: Self::V) {
                _mm512_storeu_ps(p, v)
            }
            #[inline(always)]
            unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
                _mm512_add_ps(a, b)
            }
            #[inline(always)]
            unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
                _mm512_sub_ps(a, b)
            }
            #[inline(always)]
            unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
                _mm512_mul_ps(a, b)
            }
            #[inline(always)]
            unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
                _mm512_max_ps(a, b)
            }
            #[inline(always)]
            unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
                _mm512_fmadd_ps(a, b, c)
            }
            #[inline(always)]
            unsafe fn load_pairs(p: *const u32) -> Self::Pairs {
                _mm512_loadu_si512(p.cast())
            }
        };
    }

    /// AVX-512F: a vector is one 512-bit register.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512;

    impl Simd for Avx512 {
        avx512_f32!();

        #[inline(always)]
        unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V {
            // Emulated (tests only, or CPUs without AVX512_BF16).
            let lo = _mm512_set1_ps(f32::from_bits(a << 16));
            let hi = _mm512_set1_ps(f32::from_bits(a & 0xffff_0000));
            let b_lo = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16));
            let b_hi = _mm512_castsi512_ps(_mm512_and_si512(b, _mm512_set1_epi32(-65536)));
            _mm512_add_ps(
                _mm512_add_ps(acc, _mm512_mul_ps(lo, b_lo)),
                _mm512_mul_ps(hi, b_hi),
            )
        }
    }

    /// AVX-512F with AVX512_BF16: the bf16 products are `vdpbf16ps`, 32 multiply-adds an
    /// instruction, twice fp32's.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx512Bf16;

    impl Simd for Avx512Bf16 {
        avx512_f32!();

        #[inline(always)]
        unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V {
            let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(a as i32));
            _mm512_dpbf16_ps(acc, a, std::mem::transmute::<__m512i, __m512bh>(b))
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{Simd, LANES};
    use std::arch::aarch64::*;

    /// The 128-bit registers of one vector.
    const PARTS: usize = LANES / 4;

    /// NEON: a vector is four 128-bit registers; 6 × 4 accumulators leave 8 of the 32
    /// registers to the operands (7 rows would need 33).
    #[derive(Debug, Clone, Copy)]
    pub struct Neon;

    impl Simd for Neon {
        type V = [float32x4_t; PARTS];
        type Pairs = [uint32x4_t; PARTS];
        const ROWS: usize = 6;

        #[inline(always)]
        unsafe fn zero() -> Self::V {
            [vdupq_n_f32(0.0); PARTS]
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            [vdupq_n_f32(x); PARTS]
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            std::array::from_fn(|i| vld1q_f32(p.add(4 * i)))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            for (i, v) in v.into_iter().enumerate() {
                vst1q_f32(p.add(4 * i), v);
            }
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            std::array::from_fn(|i| vaddq_f32(a[i], b[i]))
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            std::array::from_fn(|i| vsubq_f32(a[i], b[i]))
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            std::array::from_fn(|i| vmulq_f32(a[i], b[i]))
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            // Not `vmaxq_f32` (NaN if either is, +0 over -0): b where a > b fails, as `maxps`
            // and the portable path, so every path agrees.
            std::array::from_fn(|i| vbslq_f32(vcgtq_f32(a[i], b[i]), a[i], b[i]))
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            // vfmaq_f32(c, a, b) is c + a·b, fused.
            std::array::from_fn(|i| vfmaq_f32(c[i], a[i], b[i]))
        }
        #[inline(always)]
        unsafe fn load_pairs(p: *const u32) -> Self::Pairs {
            std::array::from_fn(|i| vld1q_u32(p.add(4 * i)))
        }
        #[inline(always)]
        unsafe fn dot_bf16(acc: Self::V, a: u32, b: Self::Pairs) -> Self::V {
            // Emulated (tests only; BFDOT is optional on ARM and its rounding differs): each
            // pair's halves widened to f32 by shifting, summed unfused in the portable order.
            let lo = vdupq_n_f32(f32::from_bits(a << 16));
            let hi = vdupq_n_f32(f32::from_bits(a & 0xffff_0000));
            let mask = vdupq_n_u32(0xffff_0000);
            std::array::from_fn(|i| {
                let b_lo = vreinterpretq_f32_u32(vshlq_n_u32::<16>(b[i]));
                let b_hi = vreinterpretq_f32_u32(vandq_u32(b[i], mask));
                vaddq_f32(vaddq_f32(acc[i], vmulq_f32(lo, b_lo)), vmulq_f32(hi, b_hi))
            })
        }
    }
}

/// A computation written once over [`Simd`], run by [`dispatch`] compiled for an [`Isa`].
/// `run` must be `#[inline(always)]`, and so must what it calls, so that the instruction set's
/// code is generated inside the function compiled for it.
pub trait Kernel {
    type Output;
    /// # Safety
    /// The CPU runs `S` (the caller is [`dispatch`]); what the kernel's own fields require.
    unsafe fn run<S: Simd>(self) -> Self::Output;
}

/// Runs `kernel` on `isa`'s instructions.
///
/// # Safety
/// What the kernel requires of its fields (bounds of its pointers); the instructions are
/// there (an Isa exists only where the CPU runs it).
pub unsafe fn dispatch<K: Kernel>(isa: Isa, kernel: K) -> K::Output {
    match (isa.path, isa.precision) {
        (CpuPath::Portable, _) => kernel.run::<Portable>(),
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx2, _) => on_avx2(kernel),
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx512, Precision::Fp32) => on_avx512(kernel),
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx512, Precision::Bf16) => on_avx512_bf16(kernel),
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx512, Precision::Tf32) => unreachable!("an Isa is never tf32 (Isa::new)"),
        #[cfg(target_arch = "aarch64")]
        (CpuPath::Neon, _) => on_neon(kernel),
        _ => unreachable!("Isa::new admits only the paths this CPU runs"),
    }
}

/// Plain Rust loops (no intrinsics; those go through [`Kernel`] by hand) compiled for each
/// path, so that the compiler vectorizes them to its width:
/// `vectorized!(isa, Name<'a> { field: Type = value, … } => { loops over the fields })`
/// defines a [`Kernel`] of those fields and [`dispatch`]es it. (A closure would not do: it is
/// compiled once, without the instruction sets, and not inlined into three callers.) The
/// results are the same on every path: Rust never fuses a·b + c by itself, and vectorizing a
/// loop keeps each element's own order of operations.
macro_rules! vectorized {
    ($isa:expr, $name:ident<$lt:lifetime> { $($field:ident: $ty:ty = $value:expr),* $(,)? } => $body:block) => {{
        struct $name<$lt> {
            $($field: $ty),*
        }
        impl<$lt> $crate::engine::cpu::simd::Kernel for $name<$lt> {
            type Output = ();
            #[inline(always)]
            unsafe fn run<S: $crate::engine::cpu::simd::Simd>(self) {
                let $name { $($field),* } = self;
                $body
            }
        }
        let kernel = $name { $($field: $value),* };
        // SAFETY: loops over the fields' slices, bounds-checked; the instructions are there
        // (an Isa exists only where the CPU runs it).
        unsafe { $crate::engine::cpu::simd::dispatch($isa, kernel) }
    }};
}
pub(crate) use vectorized;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Avx2>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn on_avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Avx512>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")]
unsafe fn on_avx512_bf16<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Avx512Bf16>()
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn on_neon<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Neon>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa, 1.
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_to_f32(f32_to_bf16(-2.5) as u32), -2.5);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN) as u32).is_nan());
    }

    #[test]
    fn unknown_or_missing_paths_are_errors() {
        let err = CpuPath::named("sse9").unwrap_err();
        let expected = if cfg!(target_arch = "x86_64") {
            "portable, avx2 or avx512"
        } else if cfg!(target_arch = "aarch64") {
            "portable or neon"
        } else {
            "portable"
        };
        assert!(
            err.starts_with(&format!("MINIVGG_CPU=\"sse9\" is not a CPU path; expected {expected} (this CPU runs portable")),
            "{err}"
        );
        for path in CpuPath::ALL {
            assert_eq!(CpuPath::named(path.name()).is_ok(), path.supported());
        }
        assert_eq!(CpuPath::named("portable"), Ok(CpuPath::Portable));
        // NEON is aarch64's baseline, so the path tests there always run it against portable.
        #[cfg(target_arch = "aarch64")]
        assert_eq!(CpuPath::best(), CpuPath::Neon);
    }
}
