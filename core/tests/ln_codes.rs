//! `LnCodes` (a LayerNorm output quantizer as thresholds on `x̂`) against the
//! formula it replaces, `FixedQuant::code(LnParams::output(c, x̂))`: `==` on
//! every channel of 1,000 random parameter sets, at random `x̂`, at `i32`'s
//! extremes and on both sides of every stored threshold, plus hand-picked
//! edge parameters (zero, extreme and negative `G`, output shifts 0 and 64,
//! extreme `L` and `M`, one level).

use proptest::prelude::*;
use tdquant_core::int::layernorm::{FixedQuant, LnParams};
use tdquant_core::int::ln_codes::{LnCodes, LnQuantizer, MAX_TABLE_LEVELS};
use tdquant_core::int::EMBED;

/// The keys probed on channel `c`: extremes, zero, `random`, and every
/// stored threshold and its neighbours, mapped back to `x̂`.
fn probes(table: &LnCodes, c: usize, random: &[i32]) -> Vec<i32> {
    let (thresholds, mask, _) = table.channel(c).unwrap();
    let mut keys = vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
    for &t in thresholds {
        keys.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
    }
    let mut xs: Vec<i32> = keys.into_iter().map(|k| k ^ mask).collect();
    xs.extend_from_slice(random);
    xs
}

/// Every channel of `table` at every probe equals the formula; the first
/// difference is reported with everything needed to reproduce it.
fn check(ln: &LnParams<[i32; EMBED]>, fq: &FixedQuant, random: &[i32]) -> Result<(), String> {
    let table = LnCodes::new(ln, fq)
        .map_err(|e| format!("valid parameters refused: {e:?}"))?
        .ok_or("no table for a quantizer of at most 15 levels")?;
    let quantizer = LnQuantizer::new(ln, fq).unwrap();
    for c in 0..EMBED {
        for x in probes(&table, c, random) {
            let mut xhat = [0i32; EMBED];
            xhat[c] = x;
            let (mut by_table, mut by_quantizer) = ([0u8; EMBED], [0u8; EMBED]);
            table.codes(&xhat, &mut by_table);
            quantizer.codes(&xhat, &mut by_quantizer);
            let formula = fq.code(ln.output(c, x));
            if by_table[c] != formula || by_quantizer[c] != formula {
                let (thresholds, mask, reach) = table.channel(c).unwrap();
                return Err(format!(
                    "channel {c}, x̂ = {x}: table {} / quantizer {} != formula {formula}\n  \
                     G = {}, B = {}, g_frac = {}, y_frac = {} (shift {}), Y = {}\n  \
                     {fq:?}\n  thresholds {thresholds:?}, mask {mask}, reach {reach}",
                    by_table[c],
                    by_quantizer[c],
                    ln.gamma[c],
                    ln.beta[c],
                    ln.g_frac,
                    ln.y_frac,
                    ln.shift(),
                    ln.output(c, x),
                ));
            }
        }
    }
    Ok(())
}

/// A multiplier that passes `FixedQuant::validate`'s clamp rule
/// (`2^32·M ≥ N·2^S`) for `levels` and `shift`, or `None`.
fn mult_range(levels: u8, shift: u32) -> Option<(i64, i64)> {
    let low = ((i128::from(levels) << shift) + (1 << 32) - 1) >> 32;
    let low = i64::try_from(low.max(1)).ok()?;
    (low < (1 << 31)).then_some((low, (1 << 31) - 1))
}

fn gamma() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        -(1i32 << 20)..(1 << 20),
        Just(0),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(1),
        Just(-1),
    ]
}

/// LayerNorm constants and a valid quantizer, with realistic and extreme
/// magnitudes mixed.
fn params() -> impl Strategy<Value = (LnParams<[i32; EMBED]>, FixedQuant)> {
    let ln = (
        prop::collection::vec(gamma(), EMBED),
        prop::collection::vec(any::<i32>(), EMBED),
        0u32..=40,
        any::<u32>(),
    )
        .prop_map(|(g, b, g_frac, y)| LnParams {
            gamma: g.try_into().unwrap(),
            beta: b.try_into().unwrap(),
            g_frac,
            y_frac: y % ((24 + g_frac).min(40) + 1),
            eps_t: 1,
        });
    let fq = (
        prop::sample::select(vec![1u8, 3, 7, MAX_TABLE_LEVELS]),
        1u32..=62,
        any::<u64>(),
        prop_oneof![-(1i64 << 60)..=(1 << 60), -(1i64 << 34)..(1 << 34)],
    )
        .prop_filter_map("no valid multiplier", |(levels, shift, m, offset)| {
            let (lo, hi) = mult_range(levels, shift)?;
            let mult = lo + (m % (hi - lo + 1) as u64) as i64;
            Some(FixedQuant {
                offset,
                mult,
                shift,
                levels,
            })
        });
    (ln, fq)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn table_equals_formula(
        (ln, fq) in params(),
        random in prop::collection::vec(any::<i32>(), 8),
    ) {
        let outcome = check(&ln, &fq, &random);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

#[test]
fn edge_parameters() {
    let gammas = [0, 1, -1, i32::MAX, i32::MIN, 1 << 24, -(1 << 24), 3, -7];
    let betas = [0, i32::MAX, i32::MIN, 1 << 30, -(1 << 30), 12345, -1, 1, 99];
    let mut checked = 0;
    for (g_frac, y_frac) in [(0, 24), (16, 40), (40, 0), (40, 40), (0, 0), (8, 12)] {
        let mut gamma = [0i32; EMBED];
        let mut beta = [0i32; EMBED];
        for c in 0..EMBED {
            gamma[c] = gammas[c % gammas.len()];
            beta[c] = betas[(c / gammas.len()) % betas.len()];
        }
        let ln = LnParams {
            gamma,
            beta,
            g_frac,
            y_frac,
            eps_t: 1,
        };
        for levels in [1u8, 3, 7, 15] {
            for shift in [1u32, 2, 31, 32, 33, 62] {
                let Some((lo, hi)) = mult_range(levels, shift) else {
                    continue;
                };
                for mult in [lo, hi, (lo + hi) / 2] {
                    for offset in [0, 1 << 60, -(1 << 60), 1 << 35, -(1 << 24) + 7] {
                        let fq = FixedQuant {
                            offset,
                            mult,
                            shift,
                            levels,
                        };
                        let random = [-(1 << 27), 1 << 27, 1 << 24, -(1 << 24), 5, -5];
                        if let Err(diff) = check(&ln, &fq, &random) {
                            panic!("{diff}");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked} edge parameter sets");
}

#[test]
fn wider_quantizers_use_the_formula() {
    let ln = LnParams {
        gamma: [1 << 20; EMBED],
        beta: [0; EMBED],
        g_frac: 20,
        y_frac: 24,
        eps_t: 1,
    };
    let fq = FixedQuant {
        offset: -(1 << 24),
        mult: 1 << 20,
        shift: 20,
        levels: 255,
    };
    assert!(LnCodes::new(&ln, &fq).unwrap().is_none());
    let quantizer = LnQuantizer::new(&ln, &fq).unwrap();
    assert!(matches!(quantizer, LnQuantizer::Formula(..)));
    let xhat: [i32; EMBED] = core::array::from_fn(|c| (c as i32 - 30) << 20);
    let mut out = [0u8; EMBED];
    quantizer.codes(&xhat, &mut out);
    for c in 0..EMBED {
        assert_eq!(out[c], fq.code(ln.output(c, xhat[c])), "channel {c}");
    }
    assert!(out.windows(2).all(|w| w[0] <= w[1]) && out[0] < out[EMBED - 1]);
}

#[test]
fn invalid_parameters_are_refused() {
    let ln = LnParams {
        gamma: [1; EMBED],
        beta: [0; EMBED],
        g_frac: 41,
        y_frac: 0,
        eps_t: 1,
    };
    let fq = FixedQuant {
        offset: 0,
        mult: 1 << 20,
        shift: 20,
        levels: 15,
    };
    assert!(LnCodes::new(&ln, &fq).is_err(), "g_frac 41");
    let ln = LnParams { g_frac: 0, ..ln };
    let bad = FixedQuant { mult: 0, ..fq };
    assert!(LnCodes::new(&ln, &bad).is_err(), "M = 0");
    // 2^32·M < N·2^S: the clamp would change codes.
    let bad = FixedQuant {
        mult: 1,
        shift: 40,
        ..fq
    };
    assert!(LnCodes::new(&ln, &bad).is_err(), "clamp rule");
}
