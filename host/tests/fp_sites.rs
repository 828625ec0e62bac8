//! Site naming and ordering, and that the forward pass visits every site exactly once.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use candle_core::{Device, Result, Tensor};
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::model::{FeatureTap, Site, SiteHook, SiteId, SwinIR, NUM_SITES};
use tdquant_host::weights;

#[test]
fn site_order_and_names() {
    let all: Vec<SiteId> = SiteId::all().collect();
    assert_eq!(all.len(), NUM_SITES);
    assert_eq!(NUM_SITES, 384);
    for (i, s) in all.iter().enumerate() {
        assert_eq!(s.index(), i);
        assert_eq!(SiteId::from_index(i), Some(*s));
    }
    assert_eq!(SiteId::from_index(384), None);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, all, "all() is in (layer, block, site) order");
    assert_eq!(all.iter().filter(|s| s.site.is_weight()).count(), 24 * 6);
    assert_eq!(
        all[0].checkpoint_prefix(),
        "layers.0.residual_group.blocks.0.attn.qkv.q.weight_quantizer"
    );
    assert_eq!(
        all[383].checkpoint_prefix(),
        "layers.3.residual_group.blocks.5.attn.mymodule_a"
    );
    let s = SiteId {
        layer: 2,
        block: 3,
        site: Site::Fc2Input,
    };
    assert_eq!(
        s.checkpoint_prefix(),
        "layers.2.residual_group.blocks.3.mlp.fc2.act_quantizer"
    );
    let names: HashSet<String> = all.iter().map(|s| s.checkpoint_prefix()).collect();
    assert_eq!(names.len(), 384);
}

#[test]
fn names_match_the_released_bounds_file() {
    let Some(root) = data_root_for("names_match_released", TestData::Bundle) else {
        return;
    };
    let bytes = std::fs::read(root.join("golden/dobi_released_w4.safetensors")).unwrap();
    let (_, t) = weights::read_raw(&bytes, "dobi_released_w4").unwrap();
    let keys: HashSet<&str> = t.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys.len(), 769);
    let mut expected: HashSet<String> = HashSet::new();
    for s in SiteId::all() {
        for b in ["lower_bound", "upper_bound"] {
            let k = format!("{}.{b}", s.checkpoint_prefix());
            assert!(keys.contains(k.as_str()), "{k} not in the released file");
            expected.insert(k);
        }
    }
    for k in keys {
        assert!(
            k == "calibration_batch" || expected.contains(k),
            "unmapped key {k}"
        );
    }
}

/// Records every call.
#[derive(Default)]
struct Tracer {
    sites: RefCell<BTreeMap<SiteId, Vec<Vec<usize>>>>,
    taps: RefCell<Vec<(FeatureTap, Vec<usize>)>>,
}

impl Tracer {
    /// Records the shape `t` has at `site`, which must be a weight site
    /// exactly when `weight`; passes `t` through.
    fn record(&self, site: SiteId, t: &Tensor, weight: bool) -> Result<Tensor> {
        assert_eq!(site.site.is_weight(), weight, "{site:?}");
        let mut sites = self.sites.borrow_mut();
        sites.entry(site).or_default().push(t.dims().to_vec());
        Ok(t.clone())
    }
}

impl SiteHook for Tracer {
    fn weight(&self, site: SiteId, w: &Tensor) -> Result<Tensor> {
        self.record(site, w, true)
    }
    fn act(&self, site: SiteId, x: &Tensor) -> Result<Tensor> {
        self.record(site, x, false)
    }
    fn feature(&self, tap: FeatureTap, x: &Tensor) -> Result<()> {
        self.taps.borrow_mut().push((tap, x.dims().to_vec()));
        Ok(())
    }
}

#[test]
fn forward_visits_every_site_once_with_documented_shapes() {
    let Some(root) = data_root_for("forward_visits_every_site", TestData::Bundle) else {
        return;
    };
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let (b, h, w) = (2usize, 16usize, 24usize);
    let nw = (h / 8) * (w / 8);
    let x = Tensor::rand(0f32, 1., (b, 3, h, w), &Device::Cpu).unwrap();
    let t = Tracer::default();
    let y = model.forward_with(&x, &t).unwrap();
    assert_eq!(y.dims(), &[b, 3, 4 * h, 4 * w]);
    let sites = t.sites.borrow();
    assert_eq!(sites.len(), 384);
    for (s, calls) in sites.iter() {
        assert_eq!(calls.len(), 1, "{s} visited {} times", calls.len());
        let want: Vec<usize> = match s.site {
            Site::QWeight | Site::KWeight | Site::VWeight | Site::ProjWeight => vec![60, 60],
            Site::Fc1Weight => vec![120, 60],
            Site::Fc2Weight => vec![60, 120],
            Site::QInput | Site::KInput | Site::VInput | Site::ProjInput => vec![b * nw, 64, 60],
            Site::Fc1Input => vec![b, h * w, 60],
            Site::Fc2Input => vec![b, h * w, 120],
            Site::AttnQ | Site::AttnK | Site::AttnV => vec![b * nw, 6, 64, 10],
            Site::AttnProb => vec![b * nw, 6, 64, 64],
        };
        assert_eq!(calls[0], want, "{s}");
    }
    let taps = t.taps.borrow();
    let find = |tap: FeatureTap| {
        taps.iter()
            .find(|(t, _)| *t == tap)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    assert_eq!(find(FeatureTap::ConvFirst), vec![b, 60, h, w]);
    assert_eq!(find(FeatureTap::ResidualGroup(3)), vec![b, h * w, 60]);
    assert_eq!(find(FeatureTap::ConvAfterBody), vec![b, 60, h, w]);
    assert_eq!(find(FeatureTap::Upsample), vec![b, 3, 4 * h, 4 * w]);
    assert_eq!(
        taps.iter()
            .filter(|(t, _)| matches!(t, FeatureTap::ResidualGroup(_)))
            .count(),
        4
    );
}

/// Zeroes one site.
struct ZeroAt(SiteId);

impl SiteHook for ZeroAt {
    fn weight(&self, site: SiteId, w: &Tensor) -> Result<Tensor> {
        if site == self.0 {
            w.zeros_like()
        } else {
            Ok(w.clone())
        }
    }
    fn act(&self, site: SiteId, x: &Tensor) -> Result<Tensor> {
        if site == self.0 {
            x.zeros_like()
        } else {
            Ok(x.clone())
        }
    }
}

#[test]
fn hook_results_are_used() {
    let Some(root) = data_root_for("hook_results_are_used", TestData::Bundle) else {
        return;
    };
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let x = Tensor::rand(0f32, 1., (1, 3, 16, 16), &Device::Cpu).unwrap();
    let fp = model.forward(&x).unwrap();
    // Every one of the 16 kinds, in an odd (shifted) block.
    for site in Site::ALL {
        let s = SiteId {
            layer: 1,
            block: 3,
            site,
        };
        let y = model.forward_with(&x, &ZeroAt(s)).unwrap();
        let d = common::max_abs(&(&y - &fp).unwrap());
        assert!(d > 0.0, "zeroing {s} changed nothing");
    }
}
