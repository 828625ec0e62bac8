//! Hooks threaded through the forward pass: the 16 quantization sites of each Swin block and the
//! feature taps.
//!
//! The FP model calls [`SiteHook::weight`] on every quantizable weight and [`SiteHook::act`] on
//! every quantizable activation, and uses what the hook returns. [`FpHook`] returns its input, so
//! the forward pass is the full-precision one; a fake-quantization hook returns `Q(x; l, u)`
//! built from candle ops (its bounds may be `Var`s: the forward pass is made only of ops that have
//! a backward, so gradients reach them). [`SiteHook::feature`] is told intermediate results
//! ([`FeatureTap`]) and returns nothing.

use std::cell::RefCell;
use std::fmt;

use candle_core::{Result, Tensor};

use crate::weights::{DEPTH, NUM_LAYERS};

/// One of the 16 quantization sites of a Swin block, in the 2DQuant placements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Rows 0–59 of `attn.qkv.weight`, `[60, 60]` (`[out, in]`).
    QWeight,
    /// Rows 60–119 of `attn.qkv.weight`, `[60, 60]`.
    KWeight,
    /// Rows 120–179 of `attn.qkv.weight`, `[60, 60]`.
    VWeight,
    /// Input of the q linear: LayerNorm1 output, rolled and window-partitioned, `[B·nW, 64, 60]`.
    QInput,
    /// Input of the k linear (the same tensor as [`Site::QInput`]), `[B·nW, 64, 60]`.
    KInput,
    /// Input of the v linear (the same tensor as [`Site::QInput`]), `[B·nW, 64, 60]`.
    VInput,
    /// `attn.proj.weight`, `[60, 60]`.
    ProjWeight,
    /// Input of `proj`: `attn @ v` with heads merged, `[B·nW, 64, 60]`.
    ProjInput,
    /// `mlp.fc1.weight`, `[120, 60]`.
    Fc1Weight,
    /// Input of `fc1`: LayerNorm2 output, `[B, H·W, 60]`.
    Fc1Input,
    /// `mlp.fc2.weight`, `[60, 120]`.
    Fc2Weight,
    /// Input of `fc2`: GELU output, `[B, H·W, 120]`.
    Fc2Input,
    /// `mymodule_q`: q after the 10^-0.5 scaling, `[B·nW, 6, 64, 10]`.
    AttnQ,
    /// `mymodule_k`: k, `[B·nW, 6, 64, 10]`.
    AttnK,
    /// `mymodule_v`: v, `[B·nW, 6, 64, 10]`.
    AttnV,
    /// `mymodule_a`: attention probabilities after bias, mask and softmax, `[B·nW, 6, 64, 64]`.
    AttnProb,
}

impl Site {
    /// The 16 sites in their fixed order (the order of the enum).
    pub const ALL: [Site; 16] = [
        Site::QWeight,
        Site::KWeight,
        Site::VWeight,
        Site::QInput,
        Site::KInput,
        Site::VInput,
        Site::ProjWeight,
        Site::ProjInput,
        Site::Fc1Weight,
        Site::Fc1Input,
        Site::Fc2Weight,
        Site::Fc2Input,
        Site::AttnQ,
        Site::AttnK,
        Site::AttnV,
        Site::AttnProb,
    ];

    /// True for the 6 weight sites.
    pub fn is_weight(self) -> bool {
        matches!(
            self,
            Site::QWeight
                | Site::KWeight
                | Site::VWeight
                | Site::ProjWeight
                | Site::Fc1Weight
                | Site::Fc2Weight
        )
    }

    /// Position in [`Site::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Name of the quantizer module inside a block, as in the released 2DQuant checkpoints
    /// (relative to `layers.L.residual_group.blocks.B.`).
    pub fn module_name(self) -> &'static str {
        match self {
            Site::QWeight => "attn.qkv.q.weight_quantizer",
            Site::KWeight => "attn.qkv.k.weight_quantizer",
            Site::VWeight => "attn.qkv.v.weight_quantizer",
            Site::QInput => "attn.qkv.q.act_quantizer",
            Site::KInput => "attn.qkv.k.act_quantizer",
            Site::VInput => "attn.qkv.v.act_quantizer",
            Site::ProjWeight => "attn.proj.weight_quantizer",
            Site::ProjInput => "attn.proj.act_quantizer",
            Site::Fc1Weight => "mlp.fc1.weight_quantizer",
            Site::Fc1Input => "mlp.fc1.act_quantizer",
            Site::Fc2Weight => "mlp.fc2.weight_quantizer",
            Site::Fc2Input => "mlp.fc2.act_quantizer",
            Site::AttnQ => "attn.mymodule_q",
            Site::AttnK => "attn.mymodule_k",
            Site::AttnV => "attn.mymodule_v",
            Site::AttnProb => "attn.mymodule_a",
        }
    }
}

/// One quantization site of the model: RSTB `layer` (0..4), Swin block `block` (0..6), `site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId {
    /// RSTB index, 0..4.
    pub layer: u8,
    /// Block index inside the RSTB, 0..6.
    pub block: u8,
    /// The site inside the block.
    pub site: Site,
}

/// Number of quantization sites in SwinIR-light (24 blocks × 16).
pub const NUM_SITES: usize = NUM_LAYERS * DEPTH * 16;

impl SiteId {
    /// All 384 sites in a fixed order: layer-major, then block, then [`Site::ALL`] order; i.e.
    /// `index = (layer·6 + block)·16 + site.index()`.
    pub fn all() -> impl Iterator<Item = SiteId> {
        (0..NUM_SITES).map(|i| SiteId::from_index(i).expect("in range"))
    }

    /// Position in [`SiteId::all`].
    pub fn index(self) -> usize {
        (self.layer as usize * DEPTH + self.block as usize) * 16 + self.site.index()
    }

    /// Inverse of [`SiteId::index`]; `None` when `i >= 384`.
    pub fn from_index(i: usize) -> Option<SiteId> {
        if i >= NUM_SITES {
            return None;
        }
        let blk = i / 16;
        Some(SiteId {
            layer: (blk / DEPTH) as u8,
            block: (blk % DEPTH) as u8,
            site: Site::ALL[i % 16],
        })
    }

    /// The quantizer's name in the released 2DQuant checkpoints, e.g.
    /// `layers.0.residual_group.blocks.0.attn.qkv.q.weight_quantizer` or
    /// `layers.3.residual_group.blocks.5.attn.mymodule_a`; the caller appends `.lower_bound` /
    /// `.upper_bound`.
    pub fn checkpoint_prefix(self) -> String {
        format!(
            "layers.{}.residual_group.blocks.{}.{}",
            self.layer,
            self.block,
            self.site.module_name()
        )
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.checkpoint_prefix())
    }
}

/// An intermediate result reported to [`SiteHook::feature`]. Token tensors are `[B, H·W, 60]`
/// (row-major pixels), image tensors `[B, C, H, W]`; sizes are those of the (padded) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeatureTap {
    /// `conv_first` output, `[B, 60, H, W]`.
    ConvFirst,
    /// After `patch_embed.norm`, `[B, HW, 60]`.
    PatchEmbed,
    /// Residual stream of Swin block `block` of RSTB `layer` after its attention branch
    /// (`x + attn(LN1(x))`, the input of LayerNorm 2), `[B, HW, 60]`.
    AttnResidual {
        /// RSTB index.
        layer: u8,
        /// Block index.
        block: u8,
    },
    /// Output of Swin block `block` of RSTB `layer` (residuals included), `[B, HW, 60]`.
    Block {
        /// RSTB index.
        layer: u8,
        /// Block index.
        block: u8,
    },
    /// Output of RSTB `layer`'s `residual_group` (its BasicLayer), before the RSTB conv and
    /// residual, `[B, HW, 60]`: the DQC feature-loss points.
    ResidualGroup(u8),
    /// RSTB `layer` output, residual included, `[B, HW, 60]`.
    Layer(u8),
    /// After the final `norm`, `[B, HW, 60]`.
    Norm,
    /// `conv_after_body` output before adding the `conv_first` output, `[B, 60, H, W]`.
    ConvAfterBody,
    /// Upsampler conv + pixel shuffle, before adding the RGB mean, `[B, 3, sH, sW]`.
    Upsample,
}

impl FeatureTap {
    /// The module name used in the golden files (`Set5/butterfly/<name>`), e.g. `conv_first`,
    /// `layers.0.blocks.1`, `layers.2`, `layers.2.residual_group`.
    pub fn name(&self) -> String {
        match self {
            FeatureTap::ConvFirst => "conv_first".into(),
            FeatureTap::PatchEmbed => "patch_embed".into(),
            FeatureTap::AttnResidual { layer, block } => {
                format!("layers.{layer}.blocks.{block}.attn_residual")
            }
            FeatureTap::Block { layer, block } => format!("layers.{layer}.blocks.{block}"),
            FeatureTap::ResidualGroup(l) => format!("layers.{l}.residual_group"),
            FeatureTap::Layer(l) => format!("layers.{l}"),
            FeatureTap::Norm => "norm".into(),
            FeatureTap::ConvAfterBody => "conv_after_body".into(),
            FeatureTap::Upsample => "upsample".into(),
        }
    }
}

/// Called at every quantization site and feature tap of the forward pass.
pub trait SiteHook {
    /// The weight to use at a weight site (`w` is `[out, in]`, PyTorch layout).
    fn weight(&self, site: SiteId, w: &Tensor) -> Result<Tensor>;
    /// The activation to use at an activation site.
    fn act(&self, site: SiteId, x: &Tensor) -> Result<Tensor>;
    /// Told an intermediate result; the default ignores it.
    fn feature(&self, tap: FeatureTap, x: &Tensor) -> Result<()> {
        let _ = (tap, x);
        Ok(())
    }
}

/// The identity hook: full precision, no taps.
#[derive(Debug, Clone, Copy, Default)]
pub struct FpHook;

impl SiteHook for FpHook {
    fn weight(&self, _site: SiteId, w: &Tensor) -> Result<Tensor> {
        Ok(w.clone())
    }
    fn act(&self, _site: SiteId, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

/// Wraps another hook and records the feature taps that `filter` accepts (in call order).
pub struct FeatureRecorder<'a, H: SiteHook + ?Sized = FpHook> {
    inner: &'a H,
    filter: Box<dyn Fn(&FeatureTap) -> bool + 'a>,
    records: RefCell<Vec<(FeatureTap, Tensor)>>,
}

impl FeatureRecorder<'static, FpHook> {
    /// Records every tap, full precision otherwise.
    pub fn all() -> Self {
        FeatureRecorder::wrap(&FpHook, |_| true)
    }

    /// Records the taps in `taps`, full precision otherwise.
    pub fn only(taps: &[FeatureTap]) -> Self {
        let taps = taps.to_vec();
        FeatureRecorder::wrap(&FpHook, move |t| taps.contains(t))
    }
}

impl<'a, H: SiteHook + ?Sized> FeatureRecorder<'a, H> {
    /// Records the taps accepted by `filter`, delegating sites (and taps) to `inner`.
    pub fn wrap(inner: &'a H, filter: impl Fn(&FeatureTap) -> bool + 'a) -> Self {
        FeatureRecorder {
            inner,
            filter: Box::new(filter),
            records: RefCell::new(Vec::new()),
        }
    }

    /// The recorded taps, in call order, emptying the recorder.
    pub fn take(&self) -> Vec<(FeatureTap, Tensor)> {
        std::mem::take(&mut *self.records.borrow_mut())
    }

    /// The last recorded tensor for `tap`.
    pub fn get(&self, tap: FeatureTap) -> Option<Tensor> {
        self.records
            .borrow()
            .iter()
            .rev()
            .find(|(t, _)| *t == tap)
            .map(|(_, x)| x.clone())
    }
}

impl<H: SiteHook + ?Sized> SiteHook for FeatureRecorder<'_, H> {
    fn weight(&self, site: SiteId, w: &Tensor) -> Result<Tensor> {
        self.inner.weight(site, w)
    }
    fn act(&self, site: SiteId, x: &Tensor) -> Result<Tensor> {
        self.inner.act(site, x)
    }
    fn feature(&self, tap: FeatureTap, x: &Tensor) -> Result<()> {
        if (self.filter)(&tap) {
            self.records.borrow_mut().push((tap, x.clone()));
        }
        self.inner.feature(tap, x)
    }
}
