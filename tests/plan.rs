//! The memory plan against what the engine really allocates: a counting allocator measures the
//! peak of a network's training steps and evaluation at two batch sizes, and the plan's bytes
//! per sample must cover the difference without overstating it much (an overstated plan
//! refuses batch sizes that fit).
//!
//! A test binary of its own: the allocator counts what every thread of the process allocates,
//! and the test makes rayon's global pool one thread, so no other test may share the process.

mod common;

use minivgg::engine::{Mode, Network};
use minivgg::model::ModelSpec;
use minivgg::train::plan::MemoryPlan;
use std::alloc::{GlobalAlloc, Layout, System};

use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak bytes above what was live before, while a network for batches of `batch` is built
/// and runs two training steps and an evaluation.
fn peak_of_a_step(spec: &ModelSpec, batch: usize) -> usize {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    {
        let mut net = Network::new(spec, batch, 1).unwrap();
        let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
        for step in 0..2 {
            for (i, x) in net.input_mut(batch).iter_mut().enumerate() {
                *x = ((i * 7 + step) % 255) as f32 / 255.0;
            }
            net.train_batch(&labels);
        }
        net.forward(batch, Mode::Eval);
    }
    PEAK.load(Ordering::SeqCst) - before
}

#[test]
fn the_plan_covers_what_a_batch_allocates_within_a_third_more() {
    let models = common::every_network();
    // One thread: the per-thread scratch of the kernels is not per sample.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .unwrap();
    let mut ratios = Vec::new();
    for spec in &models {
        let (small, large) = (32, 96);
        let per_sample = (peak_of_a_step(spec, large) - peak_of_a_step(spec, small)) as f64
            / (large - small) as f64;
        let plan = MemoryPlan::for_training(spec, 1, 1, 0).unwrap();
        let planned = plan.per_sample as f64;
        println!(
            "{}: {:.0} bytes per sample allocated, {planned:.0} planned ({:.2}×)",
            spec.name,
            per_sample,
            planned / per_sample
        );
        ratios.push((spec.name.clone(), planned / per_sample));
    }
    for (name, ratio) in ratios {
        assert!(ratio >= 1.0, "{name}: the plan is short");
        assert!(ratio <= 1.34, "{name}: the plan overstates");
    }
}

/// The GPU runs every layer on its own: ShallowNet (CONV 32 3×3 → RELU → FLATTEN → DENSE 10 →
/// SOFTMAX on 32×32×3) keeps, per sample, its input (3,072 floats), an output and a gradient
/// for each layer (32,768 for the conv, the ReLU and the Flatten, 10 for the dense layer and
/// the softmax) and the conv's im2col columns (3,072 · 9), as `engine/cuda/network.rs` and
/// `engine/cuda/layers/conv.rs` allocate them: 227,368 floats.
#[test]
fn the_gpu_plan_counts_every_layers_own_buffers() {
    let shallownet = minivgg::model::zoo::shallownet();
    let plan = MemoryPlan::for_training_on_gpu(&shallownet, 64, 0).unwrap();
    assert_eq!(
        plan.per_sample,
        4 * (3072 + 3 * 2 * 32_768 + 2 * 2 * 10 + 3072 * 9)
    );
    assert_eq!(plan.checkpoints, 0);
}
