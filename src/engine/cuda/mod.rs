//! The NVIDIA GPU backend (cargo feature `cuda`), in the CPU's shape:
//! - [`layers`]: each CPU layer's GPU twin, one file per kind under the CPU file's name, its
//!   forward and backward encoders side by side;
//! - `kernels.cu` and [`kernels`]: elementwise work, im2col, BN, pooling, dropout and the loss
//!   as NVRTC kernels, each naming the CPU function it mirrors, and their typed launchers
//!   under the same headings; [`reduce`]: the column sums;
//! - matrix products on cuBLAS ([`Gpu::matmul`]); convolutions on cuDNN ([`cudnn`]) or im2col,
//!   whichever [`autotune`] measures faster per layer on the card;
//! - [`sgd`]: the update, the twin of `engine/sgd.rs`;
//! - [`network`]: the device buffers, allocated once, and the passes over the layers.
//!
//! The driver, NVRTC, cuBLAS and cuDNN are loaded at run time, so the build needs no CUDA
//! toolkit; a machine without the first three gets an error, never a panic, and one without
//! cuDNN runs im2col.

pub mod autotune;
pub mod cudnn;
pub mod kernels;
pub mod layers;
pub mod network;
pub mod reduce;
pub mod sgd;

use super::cpu::matmul::Layout;
use super::device::Device;
use super::precision::Precision;
use anyhow::{anyhow, bail, Result};
use cudarc::cublas::sys::{
    cublasMath_t, cublasOperation_t, cublasSetMathMode, cublasSetWorkspace_v2, cublasStatus_t,
};
use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use kernels::{DeviceAddr, Kernel};
use std::collections::HashMap;
use std::sync::Arc;

const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// cuBLAS gets a workspace of its own, so no product allocates memory inside a captured graph.
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// How far a GPU result may be from its reference (the CPU's in the parity tests, im2col's
/// when a convolution's path is chosen), relative to the tensor's scale. Strict fp32: 1e-4.
/// tf32 rounds every product's factors to a 10-bit mantissa (relative error up to
/// 2^-11 ≈ 4.9e-4 each), summed over up to 4,096 terms and carried through the layers: 2e-2.
pub fn parity_tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::Tf32 => 2e-2,
        _ => 1e-4,
    }
}

/// max |a − b| / max |a|: the error relative to the tensor's scale.
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs() as f64))
        .max(1e-12);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() as f64))
        / scale
}

/// Suggests the way out in every CUDA error.
fn unusable(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("--device cuda: {what}; use --device cpu to train on the CPU")
}

/// One GPU: its context, the stream every kernel and product goes to, cuBLAS and the kernels.
pub struct Gpu {
    pub name: String,
    pub stream: Arc<CudaStream>,
    blas: CudaBlas,
    _workspace: CudaSlice<u8>,
    kernels: HashMap<&'static str, CudaFunction>,
}

impl Gpu {
    /// Opens CUDA device `ordinal`, compiles the kernels and sets up cuBLAS.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        // SAFETY: these only try to dlopen the libraries; nothing is called through them.
        let present = unsafe {
            [
                (
                    "the NVIDIA driver (libcuda.so)",
                    cudarc::driver::sys::is_culib_present(),
                ),
                (
                    "NVRTC (libnvrtc.so, CUDA 13)",
                    cudarc::nvrtc::sys::is_culib_present(),
                ),
                (
                    "cuBLAS (libcublas.so.13)",
                    cudarc::cublas::sys::is_culib_present(),
                ),
            ]
        };
        if let Some((missing, _)) = present.iter().find(|(_, found)| !found) {
            return Err(unusable(format!("{missing} was not found")));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unusable(format!("the NVIDIA driver failed: {e}")))?;
        if count <= 0 {
            return Err(unusable("no CUDA device is present"));
        }
        if ordinal >= count as usize {
            return Err(unusable(format!(
                "there is no device cuda:{ordinal} ({count} present)"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unusable(format!("cannot open cuda:{ordinal}: {e}")))?;
        // Cross-stream event tracking breaks graph capture (CUDA_ERROR_STREAM_CAPTURE_ISOLATION);
        // everything here runs on one stream.
        // SAFETY: no buffer exists yet, and this program uses one stream only.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().unwrap_or_else(|_| format!("cuda:{ordinal}"));
        let stream = ctx
            .new_stream()
            .map_err(|e| unusable(format!("cannot create a stream: {e}")))?;
        // No FMA contraction: the kernels round like the CPU code they mirror.
        let options = CompileOptions {
            fmad: Some(false),
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(KERNEL_SOURCE, options)
            .map_err(|e| unusable(format!("NVRTC could not compile the kernels: {e}")))?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| unusable(format!("cannot load the kernels: {e}")))?;
        let mut kernels = HashMap::new();
        for &(name, _) in kernels::SIGNATURES {
            let f = module
                .load_function(name)
                .map_err(|e| unusable(format!("kernel {name}: {e}")))?;
            kernels.insert(name, f);
        }
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| unusable(format!("cuBLAS failed to start: {e}")))?;
        let workspace = stream
            .alloc_zeros::<u8>(CUBLAS_WORKSPACE_BYTES)
            .map_err(|e| out_of_memory(&e))?;
        let (workspace_ptr, _) = workspace.device_ptr(&stream);
        // SAFETY: the workspace outlives the handle's use (both live in this struct).
        let status = unsafe {
            cublasSetWorkspace_v2(
                *blas.handle(),
                workspace_ptr as *mut _,
                CUBLAS_WORKSPACE_BYTES,
            )
        };
        if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(unusable(format!(
                "cuBLAS refused its workspace: {status:?}"
            )));
        }
        Ok(Gpu {
            name,
            stream,
            blas,
            _workspace: workspace,
            kernels,
        })
    }

    /// A zeroed device buffer (at least one element, so every buffer has an address).
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(|e| out_of_memory(&e))
    }

    pub fn upload<T: DeviceRepr>(&self, host: &[T], device: &mut CudaSlice<T>) -> Result<()> {
        self.stream
            .memcpy_htod(host, device)
            .map_err(|e| unusable(format!("copy to the GPU failed: {e}")))
    }

    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        device: &CudaSlice<T>,
        len: usize,
    ) -> Result<Vec<T>> {
        let mut host = vec![T::default(); device.len()];
        self.stream
            .memcpy_dtoh(device, &mut host)
            .map_err(|e| unusable(format!("copy from the GPU failed: {e}")))?;
        self.synchronize()?;
        host.truncate(len);
        Ok(host)
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| unusable(format!("the GPU failed: {e}")))
    }

    /// The device address of a buffer, for kernel arguments and cuBLAS.
    pub fn addr<T>(&self, buffer: &CudaSlice<T>) -> DeviceAddr {
        DeviceAddr(buffer.device_ptr(&self.stream).0)
    }

    /// `len` floats at a device address inside a live buffer, to the host, after the work
    /// enqueued before.
    pub fn download_at(&self, addr: DeviceAddr, len: usize) -> Result<Vec<f32>> {
        let mut host = vec![0f32; len];
        self.bind_to_thread()?;
        // SAFETY: the callers pass an address of at least `len` floats of a live buffer; the
        // copy is on the stream, and `host` lives until the synchronize after it.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(&mut host, addr.0, self.stream.cu_stream())
        }
        .map_err(|e| unusable(format!("copy from the GPU failed: {e}")))?;
        self.synchronize()?;
        Ok(host)
    }

    /// `host`'s floats to a device address inside a live buffer, in the stream's order.
    pub fn upload_at(&self, host: &[f32], addr: DeviceAddr) -> Result<()> {
        self.bind_to_thread()?;
        // SAFETY: the callers pass an address of at least `host.len()` floats of a live
        // buffer; `host` lives until the synchronize after the copy.
        unsafe { cudarc::driver::result::memcpy_htod_async(addr.0, host, self.stream.cu_stream()) }
            .map_err(|e| unusable(format!("copy to the GPU failed: {e}")))?;
        self.synchronize()
    }

    /// Makes the GPU's context current on this thread, as cudarc's own copies do, for the raw
    /// copies at addresses.
    fn bind_to_thread(&self) -> Result<()> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| unusable(format!("cannot use the GPU from this thread: {e}")))
    }

    /// Enqueues `kernel` with its arguments.
    pub fn launch<K: Kernel>(&self, kernel: K) -> Result<()> {
        let name = K::NAME;
        let f = self
            .kernels
            .get(name)
            .ok_or_else(|| anyhow!("no kernel {name}"))?;
        let args = kernel.args();
        let mut builder = self.stream.launch_builder(f);
        for arg in &args {
            builder.arg(&arg.0);
        }
        // SAFETY: each `Kernel` struct lists its kernel's 8-byte parameters in kernels.cu's
        // order; the buffers they address are sized by the network for its capacity.
        unsafe { builder.launch(kernel.config()) }
            .map_err(|e| unusable(format!("kernel {name} failed: {e}")))?;
        Ok(())
    }

    /// The mirror of [`super::cpu::matmul::matmul`]: `c[m×n] = a[m×k] · b[k×n]` (+ old `c`), all
    /// row-major at device addresses. cuBLAS is column-major, so it computes `cᵀ = bᵀ · aᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        c: DeviceAddr,
        a: DeviceAddr,
        a_layout: Layout,
        b: DeviceAddr,
        b_layout: Layout,
        m: usize,
        k: usize,
        n: usize,
        accumulate: bool,
    ) -> Result<()> {
        use cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let (op_b, ld_b) = match b_layout {
            Layout::AsIs => (CUBLAS_OP_N, n),
            Layout::Transposed => (CUBLAS_OP_T, k),
        };
        let (op_a, ld_a) = match a_layout {
            Layout::AsIs => (CUBLAS_OP_N, k),
            Layout::Transposed => (CUBLAS_OP_T, m),
        };
        let (alpha, beta) = (1.0f32, if accumulate { 1.0f32 } else { 0.0 });
        // SAFETY: the callers pass buffers of at least m·k, k·n and m·n floats.
        unsafe {
            cudarc::cublas::result::sgemm(
                *self.blas.handle(),
                op_b,
                op_a,
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b.0 as *const f32,
                ld_b as i32,
                a.0 as *const f32,
                ld_a as i32,
                &beta,
                c.0 as *mut f32,
                n as i32,
            )
        }
        .map_err(|e| unusable(format!("cuBLAS sgemm failed: {e:?}")))
    }

    /// What the matrix products multiply: strict fp32, or tf32 on the tensor cores (cuBLAS'
    /// TF32 math mode: factors rounded to a 10-bit mantissa, sums in f32). bf16 is the CPU's.
    pub fn set_precision(&self, precision: Precision) -> Result<()> {
        precision.check_device(Device::Cuda(0)).map_err(unusable)?;
        let mode = match precision {
            Precision::Tf32 => cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
            _ => cublasMath_t::CUBLAS_DEFAULT_MATH,
        };
        // SAFETY: the handle is live (owned by self); the mode is one of cuBLAS' own values.
        let status = unsafe { cublasSetMathMode(*self.blas.handle(), mode) };
        if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(unusable(format!(
                "cuBLAS refused the {precision} math mode: {status:?}"
            )));
        }
        Ok(())
    }

    /// An event recorded on the stream now, for timing the work between two of them.
    pub fn timing_event(&self) -> Result<CudaEvent> {
        use cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
        self.stream
            .record_event(Some(CU_EVENT_DEFAULT))
            .map_err(|e| unusable(format!("cannot record a CUDA event: {e}")))
    }

    /// Milliseconds between two [`Gpu::timing_event`]s (both complete: after a synchronize).
    pub fn elapsed_ms(start: &CudaEvent, end: &CudaEvent) -> Result<f64> {
        let ms = start
            .elapsed_ms(end)
            .map_err(|e| unusable(format!("cannot read a CUDA event: {e}")))?;
        Ok(ms as f64)
    }

    /// Records what `encode` enqueues as a CUDA graph instead of running it.
    pub fn capture(&self, encode: impl FnOnce() -> Result<()>) -> Result<CudaGraph> {
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| unusable(format!("cannot capture a CUDA graph: {e}")))?;
        let encoded = encode();
        let graph = self
            .stream
            .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
            .map_err(|e| unusable(format!("cannot capture a CUDA graph: {e}")))?;
        encoded?;
        let Some(graph) = graph else {
            bail!("the captured CUDA graph is empty")
        };
        graph
            .upload()
            .map_err(|e| unusable(format!("cannot upload a CUDA graph: {e}")))?;
        Ok(graph)
    }
}

fn out_of_memory(e: &dyn std::fmt::Display) -> anyhow::Error {
    unusable(format!(
        "cannot allocate GPU memory ({e}); a smaller --batch-size needs less"
    ))
}
