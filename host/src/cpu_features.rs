//! The one place that asks the CPU which instruction sets it has: asked once,
//! on first use, and kept. Every runtime-dispatched kernel of the host crate
//! (the fast integer backend, the FP convolution kernels, fake quantization,
//! DOBI's search) chooses its code path from [`cpu_features`].

use std::sync::OnceLock;

/// What the running CPU supports, as far as the host's kernels care.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX2 (256-bit integer and float vectors).
    pub avx2: bool,
    /// AVX2 and FMA together (the FP kernels are compiled for both).
    pub avx2_fma: bool,
    /// AVX-512 F, BW, DQ, VL and VNNI together (the integer backend's
    /// explicit kernels use all five).
    pub avx512_vnni: bool,
}

/// The CPU's features, detected on the first call.
pub fn cpu_features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CpuFeatures {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2");
    CpuFeatures {
        avx2,
        avx2_fma: avx2 && has!("fma"),
        avx512_vnni: has!("avx512f")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx512vl")
            && has!("avx512vnni"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CpuFeatures {
    CpuFeatures::default()
}

/// An instruction-set level of the fast integer backend, lowest first: each
/// level runs the kernels of the one below where it has none of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, compiled for the baseline target.
    Portable,
    /// Explicit AVX2 kernels, and the portable ones compiled with AVX2
    /// enabled where a model does not fit them (x86-64).
    Avx2,
    /// Explicit AVX-512 VNNI kernels (x86-64; F, BW, DQ, VL and VNNI).
    Avx512Vnni,
}

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni];

    /// The level's name in test reports and backend names.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        let f = cpu_features();
        match self {
            Isa::Portable => true,
            Isa::Avx2 => f.avx2,
            Isa::Avx512Vnni => f.avx512_vnni && f.avx2,
        }
    }

    /// The highest level this CPU can run.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.available())
            .unwrap_or(Isa::Portable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_best_is_available() {
        assert!(Isa::Portable.available());
        assert!(Isa::best().available());
        assert!(Isa::ALL.windows(2).all(|w| w[0] < w[1]));
        // A level above the best is not available (the levels nest).
        for isa in Isa::ALL {
            assert_eq!(isa.available(), isa <= Isa::best(), "{isa:?}");
        }
        let f = cpu_features();
        assert!(!f.avx2_fma || f.avx2);
        assert_eq!(f, cpu_features(), "detected once, kept");
    }
}
