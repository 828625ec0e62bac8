//! The `cust` backend: loads the committed PTX (`gpu/ptx/*.ptx`) and launches
//! the kernels of `gpu/kernels/*.cu`.
//!
//! Linking needs a `libcuda`: the real driver, or the stub of
//! `gpu/cuda-stub/` through `CUDA_LIBRARY_PATH` (see `scripts/gpu-cuda-test.sh`).
//! At run time `libcuda.so.1` must be loadable; with the stub (or a driver
//! and no GPU) [`CudaBackend::new`] records `CUDA_ERROR_NO_DEVICE` and every
//! entry point returns [`GpuError::NoDevice`] with the driver's message.

use cust::context::CurrentContext;
use cust::error::CudaError;
use cust::memory::DeviceCopy;
use cust::prelude::*;
use tdquant_core::{PackedLayout, Requantizer};

use std::collections::BTreeMap;
use std::time::Instant;

use tdquant_core::int::IntModel;

use crate::swinir::{self, KernelPath, KernelRunner, Launch, BLOCK_THREADS};
use crate::{
    check_same_len, cuda_capabilities, unpack_with, DeviceInfo, DriverFailure, GpuError,
    GpuOperators, KernelRequantizer, Operator, BLOCK,
};
use tdquant_core::backend::{BackendError, Capabilities, IntegerBackend, UpscaleArgs};

// SAFETY: plain-old-data `#[repr(C)]` struct of integers (no pointers, no
// padding), mirrored by `tdq_requantizer` in tdq_arith.cuh.
unsafe impl DeviceCopy for KernelRequantizer {}

/// Upper bound on blocks per launch; the kernels are grid-stride loops.
const MAX_BLOCKS: u64 = 16 * 1024;

/// The kernels on CUDA device 0, through the `cust` driver API; `path`
/// picks the kernel sequence of [`IntegerBackend::upscale`].
///
/// Construction never fails: without a usable device the error is kept and
/// returned by every entry point, so callers (and `cuda_backend()`) need no
/// special case.
pub struct CudaBackend {
    state: Result<Loaded, GpuError>,
    path: KernelPath,
}

/// Field order is drop order: everything goes before the context.
struct Loaded {
    stream: Stream,
    unpack: Module,
    requant: Module,
    swinir: Module,
    device_name: String,
    context: Context,
}

impl core::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.state {
            Ok(loaded) => f
                .debug_struct("CudaBackend")
                .field("device", &loaded.device_name)
                .finish(),
            Err(err) => f.debug_struct("CudaBackend").field("error", err).finish(),
        }
    }
}

impl Default for CudaBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CudaBackend {
    /// Initialises the driver, device 0 and the kernel modules. Without a
    /// device, the returned backend answers [`GpuError::NoDevice`].
    pub fn new() -> Self {
        Self {
            state: Loaded::init(),
            path: KernelPath::default(),
        }
    }

    /// The same backend on kernel path `path`.
    pub fn with_path(self, path: KernelPath) -> Self {
        Self { path, ..self }
    }

    /// Why this backend cannot run, if it cannot.
    pub fn init_error(&self) -> Option<&GpuError> {
        self.state.as_ref().err()
    }

    /// The loaded state, with the context made current on this thread (the
    /// driver's current context is per thread, and tests call from many).
    fn ready(&self) -> Result<&Loaded, GpuError> {
        let loaded = self.state.as_ref().map_err(Clone::clone)?;
        CurrentContext::set_current(&loaded.context).map_err(cuda_error("cuCtxSetCurrent"))?;
        Ok(loaded)
    }
}

/// `err` at `step`, with the driver's text (cust's `Display` quotes it).
fn driver_failure(step: &'static str, err: CudaError) -> DriverFailure {
    let text = err.to_string();
    DriverFailure {
        step,
        code: err as u32,
        message: format!("{step}: {} [{err:?}]", text.trim_matches('"')),
    }
}

fn no_device(step: &'static str) -> impl Fn(CudaError) -> GpuError {
    move |err| GpuError::NoDevice(driver_failure(step, err))
}

fn cuda_error(step: &'static str) -> impl Fn(CudaError) -> GpuError {
    move |err| GpuError::Cuda(driver_failure(step, err))
}

fn grid_for(n: u64) -> u32 {
    crate::grid_for(n, MAX_BLOCKS)
}

impl Loaded {
    fn init() -> Result<Self, GpuError> {
        let context = cust::quick_init().map_err(no_device("cuInit / primary context"))?;
        let device = Device::get_device(0).map_err(no_device("cuDeviceGet"))?;
        let device_name = device.name().map_err(no_device("cuDeviceGetName"))?;
        let unpack = Module::from_ptx(crate::ptx::UNPACK, &[])
            .map_err(cuda_error("loading tdq_unpack.ptx (PTX ISA 9.0, sm_90)"))?;
        let requant = Module::from_ptx(crate::ptx::REQUANT, &[])
            .map_err(cuda_error("loading tdq_requant.ptx (PTX ISA 9.0, sm_90)"))?;
        let swinir = Module::from_ptx(crate::ptx::SWINIR, &[])
            .map_err(cuda_error("loading tdq_swinir.ptx (PTX ISA 9.0, sm_90)"))?;
        // A blocking stream (not NON_BLOCKING): cust's synchronous copies
        // (`from_slice`, `copy_to`) run on the legacy default stream, and a
        // pageable host-to-device copy may return before its DMA ends; a
        // blocking stream orders our launches after it.
        let stream =
            Stream::new(StreamFlags::DEFAULT, None).map_err(cuda_error("cuStreamCreate"))?;
        Ok(Self {
            stream,
            unpack,
            requant,
            swinir,
            device_name,
            context,
        })
    }

    /// The `tdq_unpack_codes` kernel on arguments [`unpack_with`] checked:
    /// the codes into `codes`, or the first word with nonzero padding.
    fn unpack_codes(
        &self,
        layout: PackedLayout,
        packed: &[u8],
        codes: &mut [u8],
    ) -> Result<Option<u64>, GpuError> {
        let words = u64::from(layout.rows) * u64::from(layout.words_per_row());
        // cuMemAlloc pointers are 256-byte aligned: the kernel's 32-bit word
        // loads are aligned.
        let d_packed =
            DeviceBuffer::from_slice(packed).map_err(cuda_error("cuMemAlloc/HtoD packed"))?;
        let d_out = DeviceBuffer::from_slice(&vec![0u8; codes.len()])
            .map_err(cuda_error("cuMemAlloc out"))?;
        let d_bad =
            DeviceBuffer::from_slice(&[u64::MAX]).map_err(cuda_error("cuMemAlloc first_bad"))?;
        let function = self
            .unpack
            .get_function("tdq_unpack_codes")
            .map_err(cuda_error("cuModuleGetFunction"))?;
        let stream = &self.stream;
        let (grid, block) = (grid_for(words), BLOCK);
        let (rows, cols, bits) = (layout.rows, layout.cols, u32::from(layout.bits.bits()));
        let (packed_ptr, out_ptr, bad_ptr) = (
            d_packed.as_device_ptr(),
            d_out.as_device_ptr(),
            d_bad.as_device_ptr(),
        );
        // SAFETY: matches tdq_unpack_codes(const uint8_t*, uint8_t*, uint32_t,
        // uint32_t, uint32_t, unsigned long long*); the buffers hold
        // rows·words_per_row·4 bytes, rows·cols bytes and one u64 (lengths
        // checked by check_unpack_args).
        let launched = unsafe {
            launch!(function<<<grid, block, 0, stream>>>(
                packed_ptr, out_ptr, rows, cols, bits, bad_ptr
            ))
        };
        launched.map_err(cuda_error("tdq_unpack_codes"))?;
        stream
            .synchronize()
            .map_err(cuda_error("cuStreamSynchronize"))?;
        let mut bad = [0u64];
        d_bad
            .copy_to(&mut bad)
            .map_err(cuda_error("DtoH first_bad"))?;
        if bad[0] != u64::MAX {
            return Ok(Some(bad[0]));
        }
        d_out.copy_to(codes).map_err(cuda_error("DtoH out"))?;
        Ok(None)
    }

    /// Elementwise requantization kernels share this shape.
    fn requantize<A: DeviceCopy, O: DeviceCopy + Default + Clone>(
        &self,
        kernel: &'static str,
        acc: &[A],
        out: &mut [O],
        rq: Requantizer,
        clamp: Option<(i32, i32)>,
    ) -> Result<(), GpuError> {
        check_same_len(acc.len(), out.len())?;
        if acc.is_empty() {
            return Ok(());
        }
        let n = u64::try_from(acc.len()).unwrap_or(u64::MAX);
        let d_acc = DeviceBuffer::from_slice(acc).map_err(cuda_error("cuMemAlloc/HtoD acc"))?;
        let d_out = DeviceBuffer::from_slice(&vec![O::default(); out.len()])
            .map_err(cuda_error("cuMemAlloc out"))?;
        let function = self
            .requant
            .get_function(kernel)
            .map_err(cuda_error("cuModuleGetFunction"))?;
        let stream = &self.stream;
        let rq = KernelRequantizer::from(rq);
        let (grid, block) = (grid_for(n), BLOCK);
        let acc_ptr = d_acc.as_device_ptr();
        let out_ptr = d_out.as_device_ptr();
        // SAFETY: the argument list matches the kernel's C signature
        // (tdq_requant.cu): two device pointers to buffers of n elements of
        // the right types, n, the requantizer by value [, min, max].
        let launched = unsafe {
            match clamp {
                None => launch!(function<<<grid, block, 0, stream>>>(acc_ptr, out_ptr, n, rq)),
                Some((min, max)) => launch!(
                    function<<<grid, block, 0, stream>>>(acc_ptr, out_ptr, n, rq, min, max)
                ),
            }
        };
        launched.map_err(cuda_error(kernel))?;
        stream
            .synchronize()
            .map_err(cuda_error("cuStreamSynchronize"))?;
        d_out.copy_to(out).map_err(cuda_error("DtoH out"))?;
        Ok(())
    }
}

impl GpuOperators for CudaBackend {
    fn device(&self) -> Result<DeviceInfo, GpuError> {
        let loaded = self.ready()?;
        Ok(DeviceInfo {
            name: loaded.device_name.clone(),
            accelerator: true,
        })
    }

    fn run_operator(&self, op: Operator<'_>) -> Result<(), GpuError> {
        let loaded = self.ready()?;
        match op {
            Operator::UnpackCodes {
                layout,
                packed,
                out,
            } => unpack_with(layout, packed, out, |layout, packed, codes| {
                loaded.unpack_codes(layout, packed, codes)
            }),
            Operator::RequantizeI32 { rq, acc, out } => {
                loaded.requantize("tdq_requantize_i32", acc, out, rq, None)
            }
            Operator::RequantizeI32Clamped {
                rq,
                acc,
                clamp,
                out,
            } => loaded.requantize("tdq_requantize_i32_clamp", acc, out, rq, Some(clamp)),
            Operator::RequantizeI64 { rq, acc, out } => {
                loaded.requantize("tdq_requantize_i64", acc, out, rq, None)
            }
        }
    }
}

impl IntegerBackend for CudaBackend {
    fn name(&self) -> &str {
        self.path.backend_name(true)
    }
    fn capabilities(&self) -> Capabilities {
        cuda_capabilities(self.state.is_ok())
    }
    fn run(&self, args: UpscaleArgs<'_>) -> Result<(), BackendError> {
        Ok(self.upscale_path(args, self.path)?)
    }
}

impl CudaBackend {
    /// [`IntegerBackend::upscale`] on `path`, with the GPU crate's error.
    pub fn upscale_path(&self, args: UpscaleArgs<'_>, path: KernelPath) -> Result<(), GpuError> {
        let loaded = self.ready()?;
        swinir::run(&mut CudaRunner::new(loaded, false), args, path)
    }
}

/// Time and minimum memory traffic of one kernel over a profiled run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelProfile {
    /// Entry point.
    pub kernel: &'static str,
    /// Launches.
    pub launches: u32,
    /// Seconds, launch to completion (each launch synchronised).
    pub seconds: f64,
    /// Bytes the launches must at least read and write.
    pub bytes: u64,
}

impl CudaBackend {
    /// [`Self::upscale_path`], synchronising after every launch to time
    /// it: per-kernel times and minimum traffic (for the bandwidth
    /// roofline), sorted by time. Also returns the output.
    pub fn profile_upscale(
        &self,
        model: &IntModel<'_>,
        img: &[u8],
        h: usize,
        w: usize,
        path: KernelPath,
    ) -> Result<(Vec<u8>, Vec<KernelProfile>), GpuError> {
        let loaded = self.ready()?;
        let mut runner = CudaRunner::new(loaded, true);
        let mut out = vec![
            0u8;
            h.saturating_mul(w)
                .saturating_mul(3 * model.scale() * model.scale())
        ];
        let args = UpscaleArgs {
            model,
            img,
            h,
            w,
            out: &mut out,
        };
        swinir::run(&mut runner, args, path)?;
        let mut rows: Vec<KernelProfile> = runner.profile.into_values().collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Ok((out, rows))
    }
}

/// [`KernelRunner`] on the device through `cust`.
struct CudaRunner<'a> {
    loaded: &'a Loaded,
    buffers: Vec<DeviceBuffer<u8>>,
    profiling: bool,
    profile: BTreeMap<&'static str, KernelProfile>,
}

impl<'a> CudaRunner<'a> {
    fn new(loaded: &'a Loaded, profiling: bool) -> Self {
        Self {
            loaded,
            buffers: Vec::new(),
            profiling,
            profile: BTreeMap::new(),
        }
    }

    /// The buffer holding `[ptr, ptr + len)` and the offset of `ptr` in it.
    fn find(&self, ptr: u64, len: usize) -> Result<(usize, usize), GpuError> {
        for (i, b) in self.buffers.iter().enumerate() {
            let base = b.as_device_ptr().as_raw();
            if ptr >= base && ptr - base + len as u64 <= b.len() as u64 {
                return Ok((i, (ptr - base) as usize));
            }
        }
        Err(GpuError::Cuda(DriverFailure {
            step: "host-side copy bounds",
            // CUDA_ERROR_INVALID_VALUE: the copy the driver would have refused.
            code: 1,
            message: format!("copy of {len} bytes at {ptr:#x} is outside every allocation"),
        }))
    }
}

impl KernelRunner for CudaRunner<'_> {
    fn alloc(&mut self, bytes: usize) -> Result<u64, GpuError> {
        // cuMemAlloc is 256-byte aligned.
        let b = DeviceBuffer::<u8>::zeroed(bytes.max(1)).map_err(cuda_error("cuMemAlloc"))?;
        let ptr = b.as_device_ptr().as_raw();
        self.buffers.push(b);
        Ok(ptr)
    }
    fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), GpuError> {
        let (i, off) = self.find(dst, src.len())?;
        let mut slice = self.buffers[i].index(off..off + src.len());
        slice.copy_from(src).map_err(cuda_error("HtoD"))
    }
    fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), GpuError> {
        let (i, off) = self.find(src, dst.len())?;
        let slice = self.buffers[i].index(off..off + dst.len());
        slice.copy_to(dst).map_err(cuda_error("DtoH"))
    }
    fn launch(&mut self, launch: Launch<'_>) -> Result<(), GpuError> {
        let Launch {
            kernel,
            items,
            args,
            bytes,
        } = launch;
        let function = self
            .loaded
            .swinir
            .get_function(kernel.entry())
            .map_err(cuda_error("cuModuleGetFunction"))?;
        let grid = crate::grid_for(items, MAX_BLOCKS);
        let t0 = Instant::now();
        // The kernel's single parameter is its argument struct by value:
        // cuLaunchKernel copies sizeof(struct) bytes from this pointer.
        let params = [args.as_ptr() as *mut core::ffi::c_void];
        // SAFETY: `args` is the exact #[repr(C)] argument struct of this
        // kernel (sizes asserted on both sides), whose device addresses
        // point into this runner's live buffers, each sized by swinir::run
        // for the launch's work items.
        unsafe {
            self.loaded
                .stream
                .launch(&function, grid, BLOCK_THREADS, 0, &params)
                .map_err(cuda_error(kernel.entry()))?;
        }
        if self.profiling {
            self.synchronize()?;
            let row = self.profile.entry(kernel.entry()).or_insert(KernelProfile {
                kernel: kernel.entry(),
                ..KernelProfile::default()
            });
            row.launches += 1;
            row.seconds += t0.elapsed().as_secs_f64();
            row.bytes += bytes;
        }
        Ok(())
    }
    fn synchronize(&mut self) -> Result<(), GpuError> {
        self.loaded
            .stream
            .synchronize()
            .map_err(cuda_error("cuStreamSynchronize (a kernel failed)"))
    }
}
