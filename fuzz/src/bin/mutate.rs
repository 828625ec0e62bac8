//! The structure-aware mutation fuzzer (stable Rust): mutates the seeds of a target (built in
//! code, plus the committed regression corpus) for a given time and runs every mutant under
//! the same limits the libFuzzer runs use: a panic is a finding, an input running over 10 s is
//! a hang, more than 1 GiB of live heap is an over-allocation. Each finding's input is saved to
//! `--out` (default `fuzz/out/<target>/`) and makes the exit status 1.
//!
//! ```text
//! mutate <target|all> [--seconds N] [--seed S] [--out DIR]
//! mutate <target|all> --write-seeds DIR     # initial libFuzzer corpora
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tdquant_fuzz::mutate::mutate;
use tdquant_fuzz::rng::Rng;
use tdquant_fuzz::seeds::seeds;
use tdquant_fuzz::Target;

/// Live-heap limit (libFuzzer's `-malloc_limit_mb=1024` / `-rss_limit_mb=1024`).
const HEAP_LIMIT: usize = 1 << 30;
/// Per-input time limit (libFuzzer's `-timeout=10`).
const TIME_LIMIT: Duration = Duration::from_secs(10);

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The input being run, for the allocator and the watchdog to save before aborting.
static CUR_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CUR_LEN: AtomicUsize = AtomicUsize::new(0);
/// NUL-terminated path the current input is saved to on an abort.
static ABORT_PATH: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// Milliseconds since `EPOCH` at which the current input started (0: idle).
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

/// Counts live heap bytes; refuses (so the process aborts) past [`HEAP_LIMIT`], saving the
/// input first with raw syscalls (no allocation inside the allocator).
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        if live > HEAP_LIMIT {
            save_current_raw(b"tdquant-fuzz: live heap over 1 GiB; input saved, aborting\n");
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Writes `msg` to stderr and the current input to [`ABORT_PATH`], without allocating.
fn save_current_raw(msg: &[u8]) {
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let path = ABORT_PATH.load(Ordering::SeqCst);
        let ptr = CUR_PTR.load(Ordering::SeqCst);
        if !path.is_null() && !ptr.is_null() {
            let fd = libc::open(
                path.cast(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o644,
            );
            if fd >= 0 {
                libc::write(fd, ptr.cast(), CUR_LEN.load(Ordering::SeqCst));
                libc::close(fd);
            }
        }
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    })
}

struct Stats {
    execs: u64,
    findings: u64,
    slowest: Duration,
}

fn fuzz(target: Target, seconds: u64, seed: u64, out: &Path, epoch: Instant) -> Stats {
    let mut corpus = seeds(target);
    let reg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target.name());
    if let Ok(rd) = std::fs::read_dir(&reg) {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        // Large regression inputs (the 600 KB nesting bomb) are replayed by the regression
        // test; as mutation bases they would only slow every target down.
        corpus.extend(
            files
                .iter()
                .filter_map(|f| std::fs::read(f).ok())
                .filter(|d| d.len() <= 64 << 10),
        );
    }
    std::fs::create_dir_all(out).expect("creating the output folder");
    let abort_path = std::ffi::CString::new(
        out.join(format!("abort-{}", target.name()))
            .to_string_lossy()
            .into_owned(),
    )
    .expect("path without NUL");
    ABORT_PATH.store(abort_path.into_raw().cast(), Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut st = Stats {
        execs: 0,
        findings: 0,
        slowest: Duration::ZERO,
    };
    let salt = fnv(target.name().as_bytes());
    while Instant::now() < deadline {
        let mut rng = Rng(seed ^ salt ^ st.execs.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let base = &corpus[rng.below(corpus.len())];
        let input = if st.execs < corpus.len() as u64 {
            corpus[st.execs as usize].clone()
        } else {
            mutate(target, &mut rng, base, &corpus)
        };
        CUR_PTR.store(input.as_ptr().cast_mut(), Ordering::SeqCst);
        CUR_LEN.store(input.len(), Ordering::SeqCst);
        STARTED_MS.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(|| target.run(&input));
        let dt = t0.elapsed();
        STARTED_MS.store(0, Ordering::SeqCst);
        CUR_PTR.store(std::ptr::null_mut(), Ordering::SeqCst);
        st.slowest = st.slowest.max(dt);
        st.execs += 1;
        if r.is_err() {
            st.findings += 1;
            let p = out.join(format!("crash-{:016x}", fnv(&input)));
            std::fs::write(&p, &input).expect("saving the crashing input");
            eprintln!("{}: PANIC, input saved to {}", target.name(), p.display());
        }
    }
    st
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mutate <target|all> [--seconds N] [--seed S] [--out DIR] | \
                 mutate <target|all> --write-seeds DIR";
    let Some(which) = args.first() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let targets: Vec<Target> = if which == "all" {
        Target::ALL.to_vec()
    } else if let Some(t) = Target::from_name(which) {
        vec![t]
    } else {
        eprintln!("unknown target {which:?} (pth, tdq, bounds, checkpoint, image, all)\n{usage}");
        std::process::exit(2);
    };
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(dir) = opt("--write-seeds") {
        for t in &targets {
            let d = Path::new(&dir).join(t.name());
            std::fs::create_dir_all(&d).expect("creating the seed folder");
            for (i, s) in seeds(*t).iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i}")), s).expect("writing a seed");
            }
        }
        return;
    }
    let seconds: u64 = opt("--seconds").map_or(10, |s| s.parse().expect("--seconds N"));
    let seed: u64 = opt("--seed").map_or(1, |s| s.parse().expect("--seed S"));
    let out_root = opt("--out").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("out"),
        PathBuf::from,
    );
    let epoch = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        let s = STARTED_MS.load(Ordering::SeqCst);
        if s != 0 && epoch.elapsed().as_millis() as u64 > s + TIME_LIMIT.as_millis() as u64 {
            save_current_raw(b"tdquant-fuzz: an input ran over 10 s; input saved, aborting\n");
            std::process::abort();
        }
    });
    let mut findings = 0;
    for t in targets {
        let t0 = Instant::now();
        let st = fuzz(t, seconds, seed, &out_root.join(t.name()), epoch);
        findings += st.findings;
        println!(
            "{:<10} {:>9} execs in {:>5.1} s ({:>7.0}/s), {} findings, slowest input {:.1} ms, \
             peak live heap {:.1} MiB",
            t.name(),
            st.execs,
            t0.elapsed().as_secs_f64(),
            st.execs as f64 / t0.elapsed().as_secs_f64(),
            st.findings,
            st.slowest.as_secs_f64() * 1e3,
            PEAK.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
        );
    }
    if findings > 0 {
        std::process::exit(1);
    }
}
