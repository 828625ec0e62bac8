//! The portable kernels compiled with AVX2 enabled: the same code (each is
//! `#[inline(always)]`), auto-vectorised for 256-bit registers. Integer
//! arithmetic gives the same bytes whatever the vector width. They run
//! where a model or a convolution does not fit the explicit kernels (codes
//! above 127, wide weights).

use anyhow::Result;

use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::scalar;

/// `$name`, a copy of the portable kernel `$kernel` (an `#[inline(always)]`
/// function with the same parameters) compiled for AVX2.
///
/// # Safety (of each)
/// The CPU must have AVX2.
macro_rules! compiled_for_avx2 {
    ($($name:ident = $kernel:path, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[doc = concat!("[`", stringify!($kernel), "`] compiled for AVX2.")]
        ///
        /// # Safety
        /// The CPU must have AVX2.
        #[target_feature(enable = "avx2")]
        pub(crate) unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            $kernel($($arg),*)
        }
    )*};
}

compiled_for_avx2! {
    conv_row = scalar::conv::conv_row, (conv: &FastConv, input: &[i32], h: usize, w: usize, y: usize, orow: &mut [i64]);
    window = scalar::attention::window, (m: &FastIntModel<'_>, index: usize, r: &[i32], hp: usize, wp: usize, win: usize, delta: &mut [i64]) -> Result<()>;
    mlp_chunk = scalar::mlp::mlp_chunk, (m: &FastIntModel<'_>, index: usize, chunk: &mut [i32]) -> Result<()>;
}
