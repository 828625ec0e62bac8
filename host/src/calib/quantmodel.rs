//! Fake-quant SwinIR-light: a [`SiteHook`] ([`QuantHook`]) holding the 384
//! 2DQuant quantizers (one per [`SiteId`]), with bound initialization
//! (DOBI / MinMax / Percentile) and fake quantization.
//!
//! # Modes
//!
//! * [`HookMode::Observe`] — the released calibration pass
//!   (`TDQuantModel.calibration`): every site returns its input
//!   **unquantized** and initializes its quantizer from the tensor that
//!   passes, so every activation statistic comes from the FP network. The
//!   bound search ([`InitPlan`]) runs on the whole tensor as it streams by
//!   (nothing is stored; [`dobi`](super::dobi::dobi) itself is parallel over the cores). The
//!   three inputs of q, k and v are the same tensor: with identical search
//!   settings the result is computed once and reused (it is identical).
//! * [`HookMode::Quantize`] — every site returns `Q(x; l, u)` (the released
//!   f32 forward, [`fake_quant`]). With [`QuantHook::set_differentiable`]
//!   the bounds enter as their [`Var`]s (DQC); otherwise detached, so
//!   evaluation builds no autograd graph.
//! * [`HookMode::FullPrecision`] — identity (e.g. a teacher pass).
//!
//! The same bit width `b` is used for weights and activations, as in the
//! released code (`bit` sets both); `b ∈ {2, 3, 4, 8}` ([`check_bits`]).
//!
//! # DOBI strategy per site kind
//!
//! [`DobiMode::Paper`] (default) follows the paper's assignment (§3.2):
//! one-sided search (fix `l = min`, move `u`) for the exponential-like
//! post-softmax map ([`Site::AttnProb`], `mymodule_a`) and post-GELU fc2
//! input ([`Site::Fc2Input`]); two-sided for every other site; paper step
//! `Δ = (max − min)/(2K)`, `i = 0..=K`, ties to the last. [`DobiMode::Released`]
//! is what the released code runs: all two-sided, released step
//! ([`DobiConfig::released`]). Any site kind can be overridden with
//! [`InitPlan::set_strategy`].
//!
//! Feature taps: while [`QuantHook::record_features`] is on, the hook keeps the
//! four [`FeatureTap::ResidualGroup`] outputs (each RSTB's `residual_group`,
//! before its conv and residual — the released `hook_per_layer` points) for
//! the DQC feature loss.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::Instant;

use candle_core::{Tensor, TensorId, Var};
use serde::{Deserialize, Serialize};

use super::dobi::{
    dobi_objectives, minmax_bounds, ptq4sr_percentile_bounds, select_candidate, CalibError,
    DobiConfig, DobiStep, DobiStrategy, PTQ4SR_BINS, PTQ4SR_TAIL, PTQ4SR_TAIL_8BIT,
};
use super::fakequant::{fake_quant, FakeQuantizer};
use crate::model::hook::{FeatureTap, Site, SiteHook, SiteId, NUM_SITES};
use crate::weights::NUM_LAYERS;

/// Bit widths the calibration tool accepts (W = A).
pub const SUPPORTED_BITS: [u8; 4] = [2, 3, 4, 8];

/// Error for a bit width outside [`SUPPORTED_BITS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported bit width {0}: tdquant calibrates W{{b}}A{{b}} with b = 2, 3, 4 or 8")]
pub struct BitsError(pub u8);

/// `Ok(bits)` if `bits ∈ {2, 3, 4, 8}`, else a [`BitsError`] naming it.
pub fn check_bits(bits: u8) -> Result<u8, BitsError> {
    if SUPPORTED_BITS.contains(&bits) {
        Ok(bits)
    } else {
        Err(BitsError(bits))
    }
}

/// Stable name of a site kind (the [`Site`] variant name), as stored in
/// bounds metadata.
pub fn site_kind_name(site: Site) -> &'static str {
    match site {
        Site::QWeight => "QWeight",
        Site::KWeight => "KWeight",
        Site::VWeight => "VWeight",
        Site::QInput => "QInput",
        Site::KInput => "KInput",
        Site::VInput => "VInput",
        Site::ProjWeight => "ProjWeight",
        Site::ProjInput => "ProjInput",
        Site::Fc1Weight => "Fc1Weight",
        Site::Fc1Input => "Fc1Input",
        Site::Fc2Weight => "Fc2Weight",
        Site::Fc2Input => "Fc2Input",
        Site::AttnQ => "AttnQ",
        Site::AttnK => "AttnK",
        Site::AttnV => "AttnV",
        Site::AttnProb => "AttnProb",
    }
}

/// The site kind named `name` ([`site_kind_name`], case-insensitive).
pub fn site_kind_from_name(name: &str) -> Option<Site> {
    Site::ALL
        .into_iter()
        .find(|&s| site_kind_name(s).eq_ignore_ascii_case(name))
}

/// Parse `one-sided` / `two-sided` (also `one` / `two`).
pub fn parse_strategy(s: &str) -> Result<DobiStrategy, String> {
    match s {
        "one-sided" | "one" => Ok(DobiStrategy::OneSided),
        "two-sided" | "two" => Ok(DobiStrategy::TwoSided),
        o => Err(format!(
            "unknown DOBI strategy {o:?} (one-sided or two-sided)"
        )),
    }
}

/// Name of a strategy (`one-sided` / `two-sided`).
pub fn strategy_name(s: DobiStrategy) -> &'static str {
    match s {
        DobiStrategy::OneSided => "one-sided",
        DobiStrategy::TwoSided => "two-sided",
    }
}

/// Which DOBI variant to run at the sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DobiMode {
    /// Paper §3.2 / Algorithm 1: one-sided for `AttnProb` and `Fc2Input`,
    /// two-sided elsewhere, paper step and tie rule.
    Paper,
    /// Released code: every site two-sided, released step as PyTorch
    /// computes it on the CPU (bit-exact target of the golden bounds).
    Released,
    /// Released code as run on a CUDA device (the step rounded as its CUDA
    /// kernel rounds it, `DobiStep::ReleasedCuda`).
    #[serde(rename = "released-cuda")]
    ReleasedCuda,
}

impl DobiMode {
    /// The DOBI configuration of `site` under this mode at `bits`.
    pub fn config(self, site: Site, bits: u8) -> DobiConfig {
        match self {
            DobiMode::Released => DobiConfig::released(bits),
            DobiMode::ReleasedCuda => DobiConfig::released_cuda(bits),
            DobiMode::Paper => DobiConfig::paper(bits, paper_strategy(site)),
        }
    }

    /// Lower-case name (`paper` / `released`).
    pub fn name(self) -> &'static str {
        match self {
            DobiMode::Paper => "paper",
            DobiMode::Released => "released",
            DobiMode::ReleasedCuda => "released-cuda",
        }
    }
}

impl fmt::Display for DobiMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The paper's strategy for a site kind: one-sided for the exponential-like
/// post-softmax map and post-GELU input, two-sided for the bell-shaped rest.
pub fn paper_strategy(site: Site) -> DobiStrategy {
    match site {
        Site::AttnProb | Site::Fc2Input => DobiStrategy::OneSided,
        _ => DobiStrategy::TwoSided,
    }
}

/// How the bounds are initialized in [`HookMode::Observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitMethod {
    /// `(min, max)` of the tensor.
    MinMax,
    /// PTQ4SR's histogram percentile for activations
    /// ([`ptq4sr_percentile_bounds`], 2048 bins, tail 1e-4, 1e-5 at 8 bits),
    /// MinMax for weights — the "Percentile" baseline of the 2DQuant tables
    /// (run with the DBDC+Pac / PTQ4SR code base).
    Percentile,
    /// DOBI with the per-site configuration of the [`InitPlan`].
    Dobi,
}

impl InitMethod {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            InitMethod::MinMax => "minmax",
            InitMethod::Percentile => "percentile",
            InitMethod::Dobi => "dobi",
        }
    }
}

/// Bound initialization: the method and, for DOBI, the configuration of
/// each of the 16 site kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct InitPlan {
    /// The method.
    pub method: InitMethod,
    /// Bit width.
    pub bits: u8,
    /// DOBI configuration per site kind, indexed by [`Site::index`].
    pub dobi: [DobiConfig; 16],
}

impl InitPlan {
    /// DOBI at every site with `mode`'s assignment.
    pub fn dobi(bits: u8, mode: DobiMode) -> Result<Self, BitsError> {
        check_bits(bits)?;
        Ok(Self {
            method: InitMethod::Dobi,
            bits,
            dobi: Site::ALL.map(|s| mode.config(s, bits)),
        })
    }

    /// A non-DOBI method (the DOBI table keeps the paper assignment, unused).
    pub fn baseline(bits: u8, method: InitMethod) -> Result<Self, BitsError> {
        let mut p = Self::dobi(bits, DobiMode::Paper)?;
        p.method = method;
        Ok(p)
    }

    /// Override the DOBI strategy of one site kind (keeping its step rule).
    pub fn set_strategy(&mut self, site: Site, strategy: DobiStrategy) {
        self.dobi[site.index()].strategy = strategy;
    }

    /// Human-readable description of the search at `site` (stored in the
    /// bounds metadata), e.g. `dobi two-sided released K=100`.
    pub fn describe(&self, site: Site) -> String {
        match self.method {
            InitMethod::MinMax => "minmax".into(),
            InitMethod::Percentile => {
                if site.is_weight() {
                    "minmax (weights; percentile baseline)".into()
                } else {
                    format!(
                        "ptq4sr-percentile bins={PTQ4SR_BINS} tail={}",
                        self.percentile_tail()
                    )
                }
            }
            InitMethod::Dobi => {
                let c = &self.dobi[site.index()];
                format!(
                    "dobi {} {} K={}",
                    strategy_name(c.strategy),
                    match c.step {
                        DobiStep::Released => "released",
                        DobiStep::ReleasedCuda => "released-cuda",
                        DobiStep::Paper => "paper",
                    },
                    c.k
                )
            }
        }
    }

    fn percentile_tail(&self) -> f64 {
        if self.bits >= 8 {
            PTQ4SR_TAIL_8BIT
        } else {
            PTQ4SR_TAIL
        }
    }

    /// Run the initializer of `site` on `data`.
    pub fn init(&self, site: Site, data: &[f32]) -> Result<SiteInit, CalibError> {
        let t0 = Instant::now();
        let (mn, mx) = minmax_bounds(data)?;
        let mut out = SiteInit {
            lower: mn,
            upper: mx,
            min: mn,
            max: mx,
            index: None,
            objective: None,
            runner_up: None,
            seconds: 0.0,
        };
        match self.method {
            InitMethod::MinMax => {}
            InitMethod::Percentile => {
                if !site.is_weight() {
                    let (l, u) =
                        ptq4sr_percentile_bounds(data, self.percentile_tail(), PTQ4SR_BINS)?;
                    out.lower = l;
                    out.upper = u;
                }
            }
            InitMethod::Dobi => {
                let cfg = &self.dobi[site.index()];
                let evals = dobi_objectives(data, cfg)?;
                let r = select_candidate(&evals, cfg.step)?;
                out.lower = r.lower;
                out.upper = r.upper;
                out.index = Some(r.index);
                out.objective = Some(r.objective);
                // The closest competitor: its relative objective gap says how
                // near a tie the choice was.
                out.runner_up = evals
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| *i != r.index && e.objective.is_finite())
                    .min_by(|a, b| a.1.objective.total_cmp(&b.1.objective))
                    .map(|(i, e)| (i, e.objective));
            }
        }
        out.seconds = t0.elapsed().as_secs_f64();
        Ok(out)
    }
}

/// What the initializer found at one site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteInit {
    /// Chosen lower bound.
    pub lower: f32,
    /// Chosen upper bound.
    pub upper: f32,
    /// Minimum of the tensor.
    pub min: f32,
    /// Maximum of the tensor.
    pub max: f32,
    /// DOBI: index of the chosen candidate (0 = MinMax).
    pub index: Option<usize>,
    /// DOBI: its objective `‖v − Q(v)‖₂`.
    pub objective: Option<f64>,
    /// DOBI: the best other candidate `(index, objective)`.
    pub runner_up: Option<(usize, f64)>,
    /// Seconds spent in the search.
    pub seconds: f64,
}

/// Callback run after each observed site.
type ObserveCallback = Box<dyn FnMut(SiteId, &SiteInit)>;

/// What a [`QuantHook`] does at the sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// Initialize each quantizer from the tensor that passes; return it
    /// unquantized.
    Observe,
    /// Fake-quantize every site.
    Quantize,
    /// Identity at every site.
    FullPrecision,
}

/// The fake-quant SwinIR-light hook: 384 [`FakeQuantizer`]s in
/// [`SiteId::all`] order. See the module docs.
pub struct QuantHook {
    bits: u8,
    quantizers: Vec<FakeQuantizer>,
    mode: Cell<HookMode>,
    differentiable: Cell<bool>,
    plan: InitPlan,
    observed: RefCell<Vec<Option<SiteInit>>>,
    /// Last activation initialization: (tensor, site kind config key, result).
    last: RefCell<Option<(TensorId, String, SiteInit)>>,
    record: Cell<bool>,
    features: RefCell<[Option<Tensor>; NUM_LAYERS]>,
    /// Called after each site is observed (progress display).
    on_observe: RefCell<Option<ObserveCallback>>,
}

impl fmt::Debug for QuantHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantHook")
            .field("bits", &self.bits)
            .field("mode", &self.mode.get())
            .field("differentiable", &self.differentiable.get())
            .field("method", &self.plan.method)
            .finish_non_exhaustive()
    }
}

fn cerr(site: SiteId, e: impl fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("quantizer {site}: {e}"))
}

impl QuantHook {
    /// A hook in [`HookMode::Observe`] that will initialize its bounds with
    /// `plan` (bounds start at `(0, 1)`).
    pub fn new(plan: InitPlan) -> Result<Self, BitsError> {
        let bits = check_bits(plan.bits)?;
        let quantizers = (0..NUM_SITES)
            .map(|_| FakeQuantizer::new(0.0, 1.0, bits).expect("bits checked"))
            .collect();
        Ok(Self::over(plan, bits, quantizers))
    }

    /// A hook in [`HookMode::Observe`] over `quantizers`, with no pass state.
    fn over(plan: InitPlan, bits: u8, quantizers: Vec<FakeQuantizer>) -> Self {
        Self {
            bits,
            quantizers,
            mode: Cell::new(HookMode::Observe),
            differentiable: Cell::new(false),
            plan,
            observed: RefCell::new(vec![None; NUM_SITES]),
            last: RefCell::new(None),
            record: Cell::new(false),
            features: RefCell::new(Default::default()),
            on_observe: RefCell::new(None),
        }
    }

    /// A hook in [`HookMode::Quantize`] with the given bounds (384 pairs
    /// `(l, u)` in [`SiteId::all`] order).
    pub fn from_bounds(bits: u8, bounds: &[(f32, f32)]) -> anyhow::Result<Self> {
        let h = Self::new(InitPlan::dobi(bits, DobiMode::Paper)?)?;
        h.set_bounds(bounds)?;
        h.set_mode(HookMode::Quantize);
        Ok(h)
    }

    /// A hook in [`HookMode::Quantize`] over clones of `quantizers` (another
    /// hook's): the bound [`Var`]s are shared, so the gradients a pass
    /// through this hook reaches are those of the other hook's bounds. A
    /// hook keeps per-pass state in cells, so a worker thread builds its own.
    pub fn sharing(bits: u8, quantizers: &[FakeQuantizer]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            quantizers.len() == NUM_SITES,
            "expected {NUM_SITES} quantizers, got {}",
            quantizers.len()
        );
        let plan = InitPlan::dobi(bits, DobiMode::Paper)?;
        let hook = Self::over(plan, check_bits(bits)?, quantizers.to_vec());
        hook.set_mode(HookMode::Quantize);
        Ok(hook)
    }

    /// Bit width (W = A).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The initialization plan.
    pub fn plan(&self) -> &InitPlan {
        &self.plan
    }

    /// Current mode.
    pub fn mode(&self) -> HookMode {
        self.mode.get()
    }

    /// Switch mode.
    pub fn set_mode(&self, mode: HookMode) {
        self.mode.set(mode);
    }

    /// In [`HookMode::Quantize`], use the bound [`Var`]s (so gradients reach
    /// them) instead of detached copies.
    pub fn set_differentiable(&self, on: bool) {
        self.differentiable.set(on);
    }

    /// Keep the four `residual_group` outputs of the next forward passes
    /// (see [`QuantHook::take_features`]).
    pub fn record_features(&self, on: bool) {
        self.record.set(on);
        if !on {
            *self.features.borrow_mut() = Default::default();
        }
    }

    /// The recorded `residual_group` outputs of RSTB 0..4 (emptying them);
    /// errors if one is missing.
    pub fn take_features(&self) -> anyhow::Result<Vec<Tensor>> {
        let f = std::mem::take(&mut *self.features.borrow_mut());
        f.into_iter()
            .enumerate()
            .map(|(l, t)| t.ok_or_else(|| anyhow::anyhow!("feature of RSTB {l} was not recorded")))
            .collect()
    }

    /// Set a callback run after each site is observed.
    pub fn on_observe(&self, f: impl FnMut(SiteId, &SiteInit) + 'static) {
        *self.on_observe.borrow_mut() = Some(Box::new(f));
    }

    /// The quantizer of `site`.
    pub fn quantizer(&self, site: SiteId) -> &FakeQuantizer {
        &self.quantizers[site.index()]
    }

    /// All 384 quantizers in [`SiteId::all`] order.
    pub fn quantizers(&self) -> &[FakeQuantizer] {
        &self.quantizers
    }

    /// Current bounds `(l, u)` of all 384 sites.
    pub fn bounds(&self) -> anyhow::Result<Vec<(f32, f32)>> {
        Ok(self
            .quantizers
            .iter()
            .map(|q| q.bounds())
            .collect::<candle_core::Result<_>>()?)
    }

    /// Overwrite all bounds (384 pairs in [`SiteId::all`] order).
    pub fn set_bounds(&self, bounds: &[(f32, f32)]) -> anyhow::Result<()> {
        anyhow::ensure!(
            bounds.len() == NUM_SITES,
            "expected {NUM_SITES} bound pairs, got {}",
            bounds.len()
        );
        for (q, &(l, u)) in self.quantizers.iter().zip(bounds) {
            q.set_bounds(l, u)?;
        }
        Ok(())
    }

    /// The 768 bound variables, `[l₀, u₀, l₁, u₁, …]` in site order.
    pub fn vars(&self) -> Vec<Var> {
        self.quantizers.iter().flat_map(|q| q.vars()).collect()
    }

    /// Per-site results of the observation pass; errors naming the first
    /// site that was not observed.
    pub fn observed(&self) -> anyhow::Result<Vec<SiteInit>> {
        let obs = self.observed.borrow();
        SiteId::all()
            .map(|s| obs[s.index()].ok_or_else(|| anyhow::anyhow!("site {s} was never observed")))
            .collect()
    }

    /// Forget previous observations (before a new observation pass).
    pub fn reset_observed(&self) {
        *self.observed.borrow_mut() = vec![None; NUM_SITES];
        *self.last.borrow_mut() = None;
    }

    fn observe(&self, site: SiteId, x: &Tensor) -> candle_core::Result<()> {
        let key = self.plan.describe(site.site);
        let cached = {
            let last = self.last.borrow();
            match &*last {
                Some((id, k, r)) if *id == x.id() && *k == key => Some(*r),
                _ => None,
            }
        };
        let r = match cached {
            Some(r) => r,
            None => {
                let data = x.flatten_all()?.to_vec1::<f32>()?;
                let r = self
                    .plan
                    .init(site.site, &data)
                    .map_err(|e| cerr(site, e))?;
                *self.last.borrow_mut() = Some((x.id(), key, r));
                r
            }
        };
        self.quantizers[site.index()].set_bounds(r.lower, r.upper)?;
        self.observed.borrow_mut()[site.index()] = Some(r);
        if let Some(cb) = self.on_observe.borrow_mut().as_mut() {
            cb(site, &r);
        }
        Ok(())
    }

    fn quantize(&self, site: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        let q = &self.quantizers[site.index()];
        if self.differentiable.get() {
            fake_quant(x, q.lower().as_tensor(), q.upper().as_tensor(), self.bits)
        } else {
            fake_quant(
                x,
                &q.lower().as_tensor().detach(),
                &q.upper().as_tensor().detach(),
                self.bits,
            )
        }
    }

    fn site(&self, site: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.mode.get() {
            HookMode::Observe => {
                self.observe(site, x)?;
                Ok(x.clone())
            }
            HookMode::Quantize => self.quantize(site, x),
            HookMode::FullPrecision => Ok(x.clone()),
        }
    }
}

impl SiteHook for QuantHook {
    fn weight(&self, site: SiteId, w: &Tensor) -> candle_core::Result<Tensor> {
        self.site(site, w)
    }

    fn act(&self, site: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        self.site(site, x)
    }

    fn feature(&self, tap: FeatureTap, x: &Tensor) -> candle_core::Result<()> {
        if let FeatureTap::ResidualGroup(l) = tap {
            if self.record.get() {
                if let Some(slot) = self.features.borrow_mut().get_mut(l as usize) {
                    *slot = Some(x.clone());
                }
            }
        }
        Ok(())
    }
}
