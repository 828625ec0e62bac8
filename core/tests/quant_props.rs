//! The quantizer against the textbook f32 formula evaluated with std's
//! `round_ties_even`, over random bounds, widths and inputs.

use proptest::prelude::*;
use tdquant_core::{BitWidth, QuantParams};

fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -4.0f32..4.0,
        1 => any::<f32>().prop_filter("finite", |x| x.is_finite()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn encode_and_decode_match_torch_formula(
        a in finite_f32(),
        b in finite_f32(),
        bits in prop::sample::select(BitWidth::ALL.to_vec()),
        xs in prop::collection::vec(finite_f32(), 1..16),
        on_grid in 0u8..=255,
    ) {
        let (lower, upper) = if a < b { (a, b) } else { (b, a) };
        let Ok(q) = QuantParams::new(lower, upper, bits) else {
            // Only degenerate bounds may be rejected.
            let step = (upper - lower) / f32::from(bits.levels());
            prop_assert!(lower == upper || !step.is_finite() || step == 0.0);
            return Ok(());
        };
        let step = (upper - lower) / f32::from(bits.levels());
        prop_assert_eq!(q.step().to_bits(), step.to_bits());
        let grid_point = q.decode(on_grid.min(bits.max_code()));
        for x in xs.into_iter().chain([lower, upper, grid_point]) {
            let c = x.clamp(lower, upper);
            let r = ((c - lower) / step).round_ties_even().clamp(0.0, f32::from(bits.max_code()));
            let code = q.encode(x);
            prop_assert_eq!(f32::from(code), r, "x = {}", x);
            prop_assert!(code <= bits.max_code());
            prop_assert_eq!(q.fake_quant(x).to_bits(), (step * r + lower).to_bits());
        }
    }
}
