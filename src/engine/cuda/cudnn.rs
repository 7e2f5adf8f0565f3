//! Convolutions on cuDNN (libcudnn.so.9, loaded at run time like the rest): NHWC activations,
//! KRSC filters (the Keras HWIO kernel transposed on the device), cross-correlation with
//! "same" padding as Keras'. [`super::autotune`] chooses, per layer and batch size on the
//! card it runs on, the fastest of cuDNN's deterministic algorithms whose results agree with
//! the im2col + cuBLAS path, and that path itself where it is faster or where cuDNN is
//! missing.

use super::kernels::DeviceAddr;
use super::{unusable, Gpu};
use crate::engine::precision::Precision;
use anyhow::{bail, Result};
use cudarc::cudnn::{result, sys};
use cudarc::driver::CudaSlice;
use std::ffi::{c_int, c_void};

/// The variable that forces a convolution path, as `MINIVGG_CPU` forces a CPU one.
pub const CONV_VARIABLE: &str = "MINIVGG_CUDA_CONV";

/// The largest cuDNN workspace a candidate algorithm may ask for; one buffer of this size
/// serves every layer, allocated before any graph is captured so no address ever changes.
pub const WORKSPACE_BYTES: usize = 64 << 20;

/// Which convolution path the layers may take (`MINIVGG_CUDA_CONV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// Whichever measures faster per layer (the default).
    Auto,
    /// im2col patches and a cuBLAS product everywhere (the path before cuDNN).
    Im2col,
    /// cuDNN wherever one of its algorithms agrees with im2col, however fast.
    Cudnn,
}

impl ConvPath {
    pub fn from_env() -> Result<ConvPath> {
        match std::env::var(CONV_VARIABLE).as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(ConvPath::Auto),
            Ok("im2col") => Ok(ConvPath::Im2col),
            Ok("cudnn") => Ok(ConvPath::Cudnn),
            Ok(other) => Err(unusable(format!(
                "{CONV_VARIABLE}={other:?} is not a convolution path; expected auto, im2col or cudnn"
            ))),
        }
    }
}

fn failed(what: &str) -> impl Fn(result::CudnnError) -> anyhow::Error + '_ {
    move |e| unusable(format!("cuDNN {what} failed: {e:?}"))
}

/// A cuDNN handle whose work goes to the network's stream, and the workspace every layer's
/// convolutions share.
pub struct Cudnn {
    handle: sys::cudnnHandle_t,
    /// Held for `workspace_addr`, which the algorithms are given.
    _workspace: CudaSlice<u8>,
    workspace_addr: DeviceAddr,
}

impl Cudnn {
    /// `None` where libcudnn is not installed: the convolutions then run on im2col.
    pub fn open(gpu: &Gpu) -> Result<Option<Cudnn>> {
        // SAFETY: this only tries to dlopen the library.
        if !unsafe { sys::is_culib_present() } {
            return Ok(None);
        }
        let workspace = gpu.zeros::<u8>(WORKSPACE_BYTES)?;
        let workspace_addr = gpu.addr(&workspace);
        let handle = result::create_handle().map_err(failed("start-up"))?;
        let cudnn = Cudnn {
            handle,
            _workspace: workspace,
            workspace_addr,
        };
        // SAFETY: the handle is live and the stream outlives it (both belong to the network).
        unsafe { result::set_stream(handle, gpu.stream.cu_stream() as sys::cudaStream_t) }
            .map_err(failed("set_stream"))?;
        Ok(Some(cudnn))
    }
}

impl Drop for Cudnn {
    fn drop(&mut self) {
        // SAFETY: created in open, destroyed once.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

/// One convolution layer at one batch size, described to cuDNN, with the algorithms chosen
/// for it among [`CudnnConv::forward_candidates`] and the others.
pub struct CudnnConv {
    x: sys::cudnnTensorDescriptor_t,
    y: sys::cudnnTensorDescriptor_t,
    w: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
    pub forward: Option<sys::cudnnConvolutionFwdAlgo_t>,
    pub backward_data: Option<sys::cudnnConvolutionBwdDataAlgo_t>,
    pub backward_filter: Option<sys::cudnnConvolutionBwdFilterAlgo_t>,
}

/// The geometry of a "same" convolution with a square kernel, stride 1.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub filters: usize,
    pub kernel: usize,
}

impl CudnnConv {
    /// The descriptors of `shape`. Strict fp32 keeps cuDNN to FMA kernels (its default math
    /// lets Ampere and later use TF32); tf32 allows the tensor cores.
    pub fn new(shape: ConvShape, precision: Precision) -> Result<CudnnConv> {
        let ConvShape {
            n,
            h,
            w,
            c,
            filters,
            kernel,
        } = shape;
        if kernel % 2 == 0 {
            bail!("cuDNN's path takes odd kernels only (\"same\" padding is symmetric)");
        }
        let dims = |v: [usize; 4]| v.map(|d| d as c_int);
        use sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC;
        let x = result::create_tensor_descriptor().map_err(failed("descriptor"))?;
        let y = result::create_tensor_descriptor().map_err(failed("descriptor"))?;
        let wd = result::create_filter_descriptor().map_err(failed("descriptor"))?;
        let conv = result::create_convolution_descriptor().map_err(failed("descriptor"))?;
        // Owned from here: Drop destroys them whatever fails below.
        let conv_desc = CudnnConv {
            x,
            y,
            w: wd,
            conv,
            forward: None,
            backward_data: None,
            backward_filter: None,
        };
        let pad = (kernel / 2) as c_int;
        let math = match precision {
            Precision::Tf32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            _ => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        };
        // SAFETY: the descriptors were just created; the dimensions are the layer's.
        unsafe {
            result::set_tensor4d_descriptor(
                x,
                CUDNN_TENSOR_NHWC,
                CUDNN_DATA_FLOAT,
                dims([n, c, h, w]),
            )
            .map_err(failed("input descriptor"))?;
            result::set_tensor4d_descriptor(
                y,
                CUDNN_TENSOR_NHWC,
                CUDNN_DATA_FLOAT,
                dims([n, filters, h, w]),
            )
            .map_err(failed("output descriptor"))?;
            result::set_filter4d_descriptor(
                wd,
                CUDNN_DATA_FLOAT,
                CUDNN_TENSOR_NHWC,
                dims([filters, c, kernel, kernel]),
            )
            .map_err(failed("filter descriptor"))?;
            result::set_convolution2d_descriptor(
                conv,
                pad,
                pad,
                1,
                1,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                CUDNN_DATA_FLOAT,
            )
            .map_err(failed("convolution descriptor"))?;
            result::set_convolution_math_type(conv, math).map_err(failed("math type"))?;
        }
        Ok(conv_desc)
    }

    /// cuDNN's forward algorithms for this shape that succeed, are deterministic and fit the
    /// workspace, in its heuristics' order.
    pub fn forward_candidates(&self, cudnn: &Cudnn) -> Result<Vec<sys::cudnnConvolutionFwdAlgo_t>> {
        // SAFETY (all three): live descriptors; `perf` holds the `len` results asked for.
        candidates("forward heuristics", |len, count, perf| unsafe {
            result::get_convolution_forward_algorithm(
                cudnn.handle,
                self.x,
                self.w,
                self.conv,
                self.y,
                len,
                count,
                perf,
            )
        })
    }

    /// As [`CudnnConv::forward_candidates`], for the input gradient.
    pub fn backward_data_candidates(
        &self,
        cudnn: &Cudnn,
    ) -> Result<Vec<sys::cudnnConvolutionBwdDataAlgo_t>> {
        candidates("backward-data heuristics", |len, count, perf| unsafe {
            result::get_convolution_backward_data_algorithm(
                cudnn.handle,
                self.w,
                self.y,
                self.conv,
                self.x,
                len,
                count,
                perf,
            )
        })
    }

    /// As [`CudnnConv::forward_candidates`], for the kernel gradient.
    pub fn backward_filter_candidates(
        &self,
        cudnn: &Cudnn,
    ) -> Result<Vec<sys::cudnnConvolutionBwdFilterAlgo_t>> {
        candidates("backward-filter heuristics", |len, count, perf| unsafe {
            result::get_convolution_backward_filter_algorithm(
                cudnn.handle,
                self.x,
                self.y,
                self.conv,
                self.w,
                len,
                count,
                perf,
            )
        })
    }

    /// Enqueues `y = conv(x, w) + beta·y` (beta 1: onto the bias already in `y`).
    ///
    /// # Safety
    /// `x`, `w` and `y` address these shapes in NHWC, KRSC and NHWC.
    pub unsafe fn forward(
        &self,
        cudnn: &Cudnn,
        algo: sys::cudnnConvolutionFwdAlgo_t,
        (x, w, y): (DeviceAddr, DeviceAddr, DeviceAddr),
        beta: f32,
    ) -> Result<()> {
        let alpha = 1.0f32;
        result::convolution_forward(
            cudnn.handle,
            &alpha as *const f32 as *const c_void,
            self.x,
            x.0 as *const c_void,
            self.w,
            w.0 as *const c_void,
            self.conv,
            algo,
            cudnn.workspace_addr.0 as *mut c_void,
            WORKSPACE_BYTES,
            &beta as *const f32 as *const c_void,
            self.y,
            y.0 as *mut c_void,
        )
        .map_err(failed("forward"))
    }

    /// Enqueues `dx = conv_backward_data(w, dy)`.
    ///
    /// # Safety
    /// As [`CudnnConv::forward`], for `w`, `dy` and `dx`.
    pub unsafe fn backward_data(
        &self,
        cudnn: &Cudnn,
        algo: sys::cudnnConvolutionBwdDataAlgo_t,
        (w, dy, dx): (DeviceAddr, DeviceAddr, DeviceAddr),
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        result::convolution_backward_data(
            cudnn.handle,
            &alpha as *const f32 as *const c_void,
            self.w,
            w.0 as *const c_void,
            self.y,
            dy.0 as *const c_void,
            self.conv,
            algo,
            cudnn.workspace_addr.0 as *mut c_void,
            WORKSPACE_BYTES,
            &beta as *const f32 as *const c_void,
            self.x,
            dx.0 as *mut c_void,
        )
        .map_err(failed("backward data"))
    }

    /// Enqueues `dw = conv_backward_filter(x, dy)` (KRSC).
    ///
    /// # Safety
    /// As [`CudnnConv::forward`], for `x`, `dy` and `dw`.
    pub unsafe fn backward_filter(
        &self,
        cudnn: &Cudnn,
        algo: sys::cudnnConvolutionBwdFilterAlgo_t,
        (x, dy, dw): (DeviceAddr, DeviceAddr, DeviceAddr),
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        result::convolution_backward_filter(
            cudnn.handle,
            &alpha as *const f32 as *const c_void,
            self.x,
            x.0 as *const c_void,
            self.y,
            dy.0 as *const c_void,
            self.conv,
            algo,
            cudnn.workspace_addr.0 as *mut c_void,
            WORKSPACE_BYTES,
            &beta as *const f32 as *const c_void,
            self.w,
            dw.0 as *mut c_void,
        )
        .map_err(failed("backward filter"))
    }
}

/// cuDNN's performance record of one pass's algorithm: the three passes' structs share these
/// fields.
trait AlgoPerf: Copy {
    type Algo: Copy;
    fn algo(&self) -> Self::Algo;
    fn status(&self) -> sys::cudnnStatus_t;
    fn determinism(&self) -> sys::cudnnDeterminism_t;
    fn memory(&self) -> usize;
}

macro_rules! algo_perf {
    ($($perf:ty => $algo:ty),*) => {$(
        impl AlgoPerf for $perf {
            type Algo = $algo;
            fn algo(&self) -> $algo {
                self.algo
            }
            fn status(&self) -> sys::cudnnStatus_t {
                self.status
            }
            fn determinism(&self) -> sys::cudnnDeterminism_t {
                self.determinism
            }
            fn memory(&self) -> usize {
                self.memory
            }
        }
    )*};
}

algo_perf!(
    sys::cudnnConvolutionFwdAlgoPerf_t => sys::cudnnConvolutionFwdAlgo_t,
    sys::cudnnConvolutionBwdDataAlgoPerf_t => sys::cudnnConvolutionBwdDataAlgo_t,
    sys::cudnnConvolutionBwdFilterAlgoPerf_t => sys::cudnnConvolutionBwdFilterAlgo_t
);

/// The algorithms cuDNN's heuristics (`query(len, &mut count, perf)`) offer for a pass that
/// run, give the same bits every time (runs stay reproducible) and fit the workspace.
fn candidates<P: AlgoPerf>(
    what: &str,
    query: impl FnOnce(c_int, &mut c_int, *mut P) -> Result<(), result::CudnnError>,
) -> Result<Vec<P::Algo>> {
    // SAFETY: cuDNN's performance records are plain C structs, valid all-zero.
    let mut perf = [unsafe { std::mem::zeroed::<P>() }; 8];
    let mut count = 0;
    query(perf.len() as c_int, &mut count, perf.as_mut_ptr()).map_err(failed(what))?;
    Ok(perf[..count as usize]
        .iter()
        .filter(|p| {
            p.status() == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                && p.determinism() == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC
                && p.memory() <= WORKSPACE_BYTES
        })
        .map(|p| p.algo())
        .collect())
}

impl Drop for CudnnConv {
    fn drop(&mut self) {
        // SAFETY: created in new, destroyed once.
        unsafe {
            let _ = result::destroy_tensor_descriptor(self.x);
            let _ = result::destroy_tensor_descriptor(self.y);
            let _ = result::destroy_filter_descriptor(self.w);
            let _ = result::destroy_convolution_descriptor(self.conv);
        }
    }
}
