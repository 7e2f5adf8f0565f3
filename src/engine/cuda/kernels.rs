//! Typed launchers for the kernels of `kernels.cu`: one struct per kernel, its fields the
//! kernel's parameters in their order and under their names, so a launch names every
//! argument (`gpu.launch(ReluForward { x, y, len })`) and a wrong type does not compile.
//! Device addresses are [`DeviceAddr`]s; a parameter the kernel may ignore (a null pointer)
//! is an `Option`. The sections follow kernels.cu's headings.

use cudarc::driver::LaunchConfig;

/// A device address: where a buffer starts, or a place inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAddr(pub u64);

impl DeviceAddr {
    /// The address `count` values of `T` further on.
    pub fn offset<T>(self, count: usize) -> DeviceAddr {
        DeviceAddr(self.0 + (count * std::mem::size_of::<T>()) as u64)
    }
}

/// A kernel argument. Every scalar parameter of kernels.cu is 8 bytes wide (a pointer,
/// `long long` or `double`), so each argument travels as the bits of one u64.
#[derive(Debug, Clone, Copy)]
pub struct Arg(pub u64);

impl From<DeviceAddr> for Arg {
    fn from(v: DeviceAddr) -> Arg {
        Arg(v.0)
    }
}

/// `None` is the null pointer the kernel tests for.
impl From<Option<DeviceAddr>> for Arg {
    fn from(v: Option<DeviceAddr>) -> Arg {
        Arg(v.map_or(0, |a| a.0))
    }
}

impl From<usize> for Arg {
    fn from(v: usize) -> Arg {
        Arg(v as u64)
    }
}

impl From<u64> for Arg {
    fn from(v: u64) -> Arg {
        Arg(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg(v as u64)
    }
}

impl From<f64> for Arg {
    fn from(v: f64) -> Arg {
        Arg(v.to_bits())
    }
}

/// A kernel of kernels.cu with its arguments: what [`super::Gpu::launch`] runs.
pub trait Kernel {
    /// Its `extern "C"` name in kernels.cu.
    const NAME: &'static str;
    /// Its parameters' names and Rust types, in order (what the test against kernels.cu's
    /// signatures reads).
    const PARAMS: &'static [(&'static str, &'static str)];
    fn config(&self) -> LaunchConfig;
    /// The arguments in the kernel's parameter order.
    fn args(&self) -> Vec<Arg>;
}

/// A grid-stride launch over `len` values.
pub fn elementwise(len: usize) -> LaunchConfig {
    let blocks = len.div_ceil(256).clamp(1, 16_384) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of 256 threads (the loss, and the step counters).
pub fn one_block() -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Declares each kernel's struct (fields in the kernel's parameter order) and its [`Kernel`]
/// impl, and lists every kernel in [`SIGNATURES`].
macro_rules! kernels {
    ($(
        $(#[$doc:meta])*
        $kernel:ident = $name:literal, launch |$k:ident| $config:expr,
        { $($field:ident: $ty:ty),* $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $kernel {
                $(pub $field: $ty),*
            }

            impl Kernel for $kernel {
                const NAME: &'static str = $name;
                const PARAMS: &'static [(&'static str, &'static str)] =
                    &[$((stringify!($field), stringify!($ty))),*];
                fn config(&self) -> LaunchConfig {
                    let $k = self;
                    $config
                }
                fn args(&self) -> Vec<Arg> {
                    vec![$(Arg::from(self.$field)),*]
                }
            }
        )*

        /// Every `extern "C"` kernel of kernels.cu, with its parameters.
        pub const SIGNATURES: &[(&str, &[(&str, &str)])] =
            &[$(($name, <$kernel as Kernel>::PARAMS)),*];
    };
}

kernels! {
    // ==== Step state and batches ====

    /// data::batches::gather at the cursor, with data::augment's crop and flip if `augment`.
    GatherBatch = "gather_batch", launch |k| elementwise(k.n * k.height * k.width * k.channels), {
        images: DeviceAddr,
        labels: DeviceAddr,
        order: DeviceAddr,
        state: DeviceAddr,
        n: usize,
        height: usize,
        width: usize,
        channels: usize,
        augment: bool,
        pad: usize,
        out: DeviceAddr,
        out_labels: DeviceAddr,
    }
    SetAugmentKey = "set_augment_key", launch |_k| one_block(), {
        state: DeviceAddr,
        key: u64,
    }
    EndPass = "end_pass", launch |_k| one_block(), {
        state: DeviceAddr,
        n: usize,
        training: bool,
    }
    CountUpdate = "count_update", launch |_k| one_block(), {
        state: DeviceAddr,
    }
    ResetCursor = "reset_cursor", launch |_k| one_block(), {
        state: DeviceAddr,
    }

    // ==== Convolution ====

    /// cpu::im2col::im2col: `cols[n·h·w × k·k·c]`.
    Im2col = "im2col", launch |k| elementwise(k.n * k.h * k.w * k.k * k.k * k.c), {
        x: DeviceAddr,
        cols: DeviceAddr,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        k: usize,
    }
    /// cpu::im2col::col2im, one thread per input value.
    Col2im = "col2im", launch |k| elementwise(k.n * k.h * k.w * k.c), {
        cols: DeviceAddr,
        dx: DeviceAddr,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        k: usize,
    }
    /// `y[cols × rows] = x[rows × cols]ᵀ` (HWIO kernels to cuDNN's KRSC and back).
    Transpose = "transpose", launch |k| elementwise(k.rows * k.cols), {
        x: DeviceAddr,
        y: DeviceAddr,
        rows: usize,
        cols: usize,
    }

    // ==== Affine layers and column reductions ====

    /// The bias in every row of `y`, before cuBLAS adds the product.
    FillRows = "fill_rows", launch |k| elementwise(k.rows * k.cols), {
        y: DeviceAddr,
        bias: DeviceAddr,
        rows: usize,
        cols: usize,
    }
    /// One chunk of rows' column sums per block (see [`super::reduce`]).
    ColumnPartials = "column_partials", launch |k| super::reduce::partials_config(k.rows.div_ceil(k.rows_per_chunk), k.cols), {
        x: DeviceAddr,
        dy: Option<DeviceAddr>,
        mean64: Option<DeviceAddr>,
        mean: Option<DeviceAddr>,
        inv_std: Option<DeviceAddr>,
        rows: usize,
        cols: usize,
        rows_per_chunk: usize,
        what: usize,
        partials: DeviceAddr,
    }
    BiasGradFinish = "bias_grad_finish", launch |k| elementwise(k.cols), {
        partials: DeviceAddr,
        chunks: usize,
        cols: usize,
        out: DeviceAddr,
    }

    // ==== BatchNorm ====

    BnMeanFinish = "bn_mean_finish", launch |k| elementwise(k.c), {
        partials: DeviceAddr,
        chunks: usize,
        c: usize,
        rows: usize,
        mean64: DeviceAddr,
    }
    BnVarFinish = "bn_var_finish", launch |k| elementwise(k.c), {
        partials: DeviceAddr,
        chunks: usize,
        c: usize,
        rows: usize,
        mean64: DeviceAddr,
        mean: DeviceAddr,
        inv_std: DeviceAddr,
        moving_mean: DeviceAddr,
        moving_var: DeviceAddr,
        momentum: f64,
        eps: f64,
    }
    BnEvalStats = "bn_eval_stats", launch |k| elementwise(k.c), {
        moving_mean: DeviceAddr,
        moving_var: DeviceAddr,
        c: usize,
        eps: f64,
        mean: DeviceAddr,
        inv_std: DeviceAddr,
    }
    BnApply = "bn_apply", launch |k| elementwise(k.rows * k.c), {
        x: DeviceAddr,
        y: DeviceAddr,
        mean: DeviceAddr,
        inv_std: DeviceAddr,
        gamma: DeviceAddr,
        beta: DeviceAddr,
        rows: usize,
        c: usize,
    }
    BnBackwardFinish = "bn_backward_finish", launch |k| elementwise(k.c), {
        partials: DeviceAddr,
        chunks: usize,
        c: usize,
        rows: usize,
        training: bool,
        gamma_grad: DeviceAddr,
        beta_grad: DeviceAddr,
        mean_dy: DeviceAddr,
        mean_dy_xhat: DeviceAddr,
    }
    BnBackwardDx = "bn_backward_dx", launch |k| elementwise(k.rows * k.c), {
        x: DeviceAddr,
        dy: DeviceAddr,
        mean: DeviceAddr,
        inv_std: DeviceAddr,
        gamma: DeviceAddr,
        mean_dy: DeviceAddr,
        mean_dy_xhat: DeviceAddr,
        rows: usize,
        c: usize,
        dx: DeviceAddr,
    }

    // ==== Elementwise layers ====

    ReluForward = "relu_forward", launch |k| elementwise(k.len), {
        x: DeviceAddr,
        y: DeviceAddr,
        len: usize,
    }
    ReluBackward = "relu_backward", launch |k| elementwise(k.len), {
        y: DeviceAddr,
        dy: DeviceAddr,
        dx: DeviceAddr,
        len: usize,
    }
    /// Flatten, and Dropout in evaluation.
    CopyValues = "copy", launch |k| elementwise(k.len), {
        x: DeviceAddr,
        y: DeviceAddr,
        len: usize,
    }
    /// Dropout's forward (training) and backward alike, its mask drawn from (seed, training
    /// step, layer).
    DropoutApply = "dropout_apply", launch |k| elementwise(k.len), {
        input: DeviceAddr,
        output: DeviceAddr,
        len: usize,
        rate: f64,
        seed: u64,
        layer: usize,
        state: DeviceAddr,
    }

    // ==== MaxPool ====

    MaxpoolForward = "maxpool_forward", launch |k| elementwise(k.n * (k.h / 2) * (k.w / 2) * k.c), {
        x: DeviceAddr,
        y: DeviceAddr,
        winners: DeviceAddr,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
    }
    MaxpoolBackward = "maxpool_backward", launch |k| elementwise(k.n * k.h * k.w * k.c), {
        dy: DeviceAddr,
        winners: DeviceAddr,
        dx: DeviceAddr,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
    }

    // ==== Softmax and the loss ====

    /// Probabilities, the logits' gradient (`grad`, training), predictions at the cursor
    /// (`predictions`), and the batch's loss, correct count and samples added to `metrics`.
    SoftmaxCrossEntropy = "softmax_cross_entropy", launch |_k| one_block(), {
        logits: DeviceAddr,
        labels: DeviceAddr,
        n: usize,
        classes: usize,
        probs: DeviceAddr,
        grad: Option<DeviceAddr>,
        predictions: Option<DeviceAddr>,
        state: DeviceAddr,
        metrics: DeviceAddr,
    }

    // ==== SGD ====

    /// engine::sgd::Sgd::step, the update count read on the device.
    SgdStep = "sgd_step", launch |k| elementwise(k.len), {
        w: DeviceAddr,
        g: DeviceAddr,
        v: DeviceAddr,
        len: usize,
        lr: f64,
        decay: f64,
        anneal_updates: u64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
        state: DeviceAddr,
    }
}

#[cfg(test)]
mod tests {
    use super::SIGNATURES;

    /// kernels.cu's `extern "C"` kernels: each name with its parameters' C types and names.
    fn cuda_signatures() -> Vec<(String, Vec<(String, String)>)> {
        let source = include_str!("kernels.cu");
        source
            .split("extern \"C\" __global__ void ")
            .skip(1)
            .map(|rest| {
                let (name, rest) = rest.split_once('(').unwrap();
                let (params, _) = rest.split_once(')').unwrap();
                let params = params
                    .split(',')
                    .map(|p| {
                        let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
                        let (ty, name) = p.rsplit_once([' ', '*']).unwrap();
                        let pointer = p.contains('*');
                        let ty = if pointer {
                            format!("{ty}*")
                        } else {
                            ty.to_string()
                        };
                        (ty.trim().to_string(), name.to_string())
                    })
                    .collect();
                (name.trim().to_string(), params)
            })
            .collect()
    }

    /// Every launcher's fields are its kernel's parameters: the same names in the same order,
    /// a device address for each pointer, an f64 for each double, an integer or bool for the
    /// other 8-byte scalars; and every kernel has a launcher.
    #[test]
    fn launchers_match_the_kernels_signatures() {
        let kernels = cuda_signatures();
        let names: Vec<&str> = kernels.iter().map(|(n, _)| n.as_str()).collect();
        let launchers: Vec<&str> = SIGNATURES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names, launchers,
            "kernels.cu and kernels.rs list other kernels"
        );
        for ((name, params), (_, fields)) in kernels.iter().zip(SIGNATURES) {
            let cuda: Vec<&str> = params.iter().map(|(_, p)| p.as_str()).collect();
            let rust: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
            assert_eq!(cuda, rust, "{name}: parameters");
            for ((c_type, param), (_, rust_type)) in params.iter().zip(*fields) {
                let fits = match c_type.as_str() {
                    t if t.ends_with('*') => {
                        ["DeviceAddr", "Option<DeviceAddr>"].contains(rust_type)
                    }
                    "double" => *rust_type == "f64",
                    "i64" | "u64" => ["usize", "u64", "bool"].contains(rust_type),
                    other => panic!("{name}: {param} has a type of {other}, not 8 bytes wide"),
                };
                assert!(
                    fits,
                    "{name}: {param} is {c_type} in kernels.cu, {rust_type} here"
                );
            }
        }
    }
}
