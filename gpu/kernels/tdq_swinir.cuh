/*
 * tdq_swinir.cuh — the integer SwinIR-light operators of tdquant-core
 * (core/src/int/, contract: docs/integer-semantics.md) as __host__ __device__
 * functions, and the #[repr(C)] parameter structs the kernels receive.
 *
 * Every function is a transcription of the scalar oracle and must return
 * exactly its integers:
 *
 *   tdq_rshift_round          int::arith::rshift_round
 *   tdq_rshift_round_s128     int::arith::rshift_round_i128
 *   tdq_clamp_code/_stream/_i16/_abs   int::arith::clamp_*
 *   tdq_exp2_neg_q31          int::exp2::exp2_neg_q31
 *   tdq_ln_normalize          int::layernorm::normalize  (one token)
 *   tdq_ln_output             LnParams::output
 *   tdq_fixed_quant_code      FixedQuant::code
 *   tdq_affine_t              CodeAffine::t
 *   tdq_linear_t              one (token, row) output of int::linear::linear
 *   tdq_gelu_code             int::gelu::gelu_code
 *   tdq_softmax_row           one query row of int::attention::softmax_codes
 *   tdq_av_row                one query row of int::attention::av_codes
 *   tdq_conv_output           one (pixel, channel) value of Conv::run
 *   tdq_window_token          one token of int::runner::window_tokens
 *   tdq_mirror                the evaluation padding of int::runner
 *
 * Unlike tdq_arith.cuh this header needs C++ and a 128-bit integer
 * (`__int128`: gcc/clang on the host, nvcc ≥ 11.5 on the device) for the
 * LayerNorm's exact 2^122 / T and its i128 product; nothing else uses it.
 * No floating point anywhere. Left shifts of possibly negative values go
 * through unsigned types (the Rust oracle's `<<` is the same bit pattern).
 *
 * The per-element functions take plain pointers, so the CPU parity tests
 * (gpu/tests/swinir_op_parity.rs through gpu/csrc/tdq_host_shim.cpp) call
 * them on the same inputs as the oracle; the kernels (tdq_swinir.cu) add only
 * the thread mapping.
 */
#ifndef TDQ_SWINIR_CUH
#define TDQ_SWINIR_CUH

#include "tdq_arith.cuh"

__extension__ typedef __int128 tdq_s128;
__extension__ typedef unsigned __int128 tdq_u128;

/* Dimensions of SwinIR-light (core::int). */
#define TDQ_EMBED 60
#define TDQ_HEADS 6
#define TDQ_HEAD_DIM 10
#define TDQ_WINDOW 8
#define TDQ_TOKENS 64
#define TDQ_SHIFT 4
#define TDQ_MLP 120
#define TDQ_RPB_ROWS 225
/* Most quantizer levels N = 2^b − 1 of a .tdq model (b ≤ 4). */
#define TDQ_MAX_LEVELS 15
#define TDQ_STREAM_LIMIT (1 << 24)
#define TDQ_XHAT_FRAC 24
#define TDQ_PROB_FRAC 30
#define TDQ_PIXEL_FRAC 8
#define TDQ_INPUT_GAIN 128
#define TDQ_FIXED_QUANT_CLAMP ((int64_t)1 << 32)
/* round(−100·log2(e)·2^32): the shifted-window mask (attention::MASK_Z). */
#define TDQ_MASK_Z ((int64_t)-619632801872LL)

/* ------------------------------------------------------------------------ */
/* Parameter structs (mirrored by gpu/src/swinir.rs; sizes asserted both    */
/* sides). Every field is naturally aligned; no implicit padding.           */
/* ------------------------------------------------------------------------ */

/* LnParams: E, g_frac, y_frac, G_c, B_c (60 channels). 496 bytes. */
typedef struct tdq_ln_params {
  int64_t eps_t;
  uint32_t g_frac;
  uint32_t y_frac;
  int32_t gamma[TDQ_EMBED];
  int32_t beta[TDQ_EMBED];
} tdq_ln_params;

/* FixedQuant. 24 bytes. */
typedef struct tdq_fixed_quant {
  int64_t offset;
  int64_t mult;
  uint32_t shift;
  uint32_t levels;
} tdq_fixed_quant;

/* CodeAffine. 24 bytes. */
typedef struct tdq_code_affine {
  int64_t a;
  int64_t b;
  uint32_t c_shift;
  uint32_t frac;
} tdq_code_affine;

/* QkParams. 24 bytes. */
typedef struct tdq_qk_params {
  int64_t a;
  int64_t b;
  uint32_t rpb_shift;
  uint32_t reserved;
} tdq_qk_params;

/* AvParams. 40 bytes. */
typedef struct tdq_av_params {
  int64_t a;
  int64_t b;
  int64_t c;
  int64_t d;
  uint32_t frac;
  uint32_t reserved;
} tdq_av_params;

/* Everything one Swin block needs (core::int::model::BlockParams), decoded
   from the .tdq file once on the host. Levels beyond `levels` are unused. */
typedef struct tdq_block_params {
  tdq_ln_params ln1;
  tdq_ln_params ln2;
  tdq_fixed_quant fq_q, fq_k, fq_v, fq_fc1;
  tdq_code_affine aff_q, aff_k, aff_v, aff_proj, aff_fc1, aff_fc2;
  tdq_qk_params qk;
  tdq_av_params av;
  int64_t prob_t[TDQ_MAX_LEVELS];  /* AttnProb decision levels T_k */
  int64_t gelu_hi[TDQ_MAX_LEVELS]; /* GELU thresholds H_k */
  int64_t gelu_lo[TDQ_MAX_LEVELS]; /* GELU thresholds L_k */
  int32_t c_q[TDQ_EMBED], c_k[TDQ_EMBED], c_v[TDQ_EMBED], c_proj[TDQ_EMBED];
  int32_t c_fc1[TDQ_MLP], c_fc2[TDQ_EMBED];
  int16_t rpb[TDQ_HEADS * TDQ_RPB_ROWS];
  uint32_t levels;   /* N */
  uint32_t shifted;  /* 1 in odd blocks */
  uint32_t reserved; /* zero; makes the size a multiple of 8 without padding */
} tdq_block_params;

TDQ_STATIC_ASSERT(sizeof(tdq_ln_params) == 496, "tdq_ln_params layout");
TDQ_STATIC_ASSERT(sizeof(tdq_fixed_quant) == 24, "tdq_fixed_quant layout");
TDQ_STATIC_ASSERT(sizeof(tdq_code_affine) == 24, "tdq_code_affine layout");
TDQ_STATIC_ASSERT(sizeof(tdq_qk_params) == 24, "tdq_qk_params layout");
TDQ_STATIC_ASSERT(sizeof(tdq_av_params) == 40, "tdq_av_params layout");
TDQ_STATIC_ASSERT(sizeof(tdq_block_params) == 6048, "tdq_block_params layout");

/* A packed b-bit weight matrix (core::packed): `rows` rows of
   tdq_words_per_row(bits, cols) little-endian 32-bit words; code i of a row
   sits in word i / codes_per_word at bit (i % codes_per_word)·bits. 24 bytes. */
typedef struct tdq_packed_matrix {
  const uint32_t *words;
  uint32_t bits;
  uint32_t rows;
  uint32_t cols;
  uint32_t words_per_row;
} tdq_packed_matrix;

/* ------------------------------------------------------------------------ */
/* Primitives (int::arith)                                                  */
/* ------------------------------------------------------------------------ */

/* ⌊v / 2^k + 1/2⌋; k = 0 → v; k ≥ 64 → 0. */
TDQ_FN int64_t tdq_rshift_round(int64_t v, uint32_t k) {
  if (k == 0) return v;
  if (k >= 64) return 0;
  return (int64_t)((uint64_t)(v >> k) + (uint64_t)((v >> (k - 1)) & 1));
}

/* rshift_round_i128 for |v| < 2^126, 1 ≤ k ≤ 127. */
TDQ_FN tdq_s128 tdq_rshift_round_s128(tdq_s128 v, uint32_t k) {
  if (k == 0) return v;
  if (k >= 128) return 0;
  return (v >> k) + ((v >> (k - 1)) & 1);
}

TDQ_FN uint8_t tdq_clamp_code(int64_t v, uint32_t levels) {
  if (v <= 0) return 0;
  if (v >= (int64_t)levels) return (uint8_t)levels;
  return (uint8_t)v;
}

TDQ_FN int32_t tdq_clamp_stream(int64_t v) {
  if (v <= -(int64_t)TDQ_STREAM_LIMIT) return -TDQ_STREAM_LIMIT;
  if (v >= (int64_t)TDQ_STREAM_LIMIT) return TDQ_STREAM_LIMIT;
  return (int32_t)v;
}

TDQ_FN int32_t tdq_clamp_i16(int64_t v) {
  if (v <= -32768) return -32768;
  if (v >= 32767) return 32767;
  return (int32_t)v;
}

/* clamp to [−limit, limit], limit ≥ 0. */
TDQ_FN int64_t tdq_clamp_abs(int64_t v, int64_t limit) {
  if (v < -limit) return -limit;
  if (v > limit) return limit;
  return v;
}

/* i64 saturating add (Rust's saturating_add). */
TDQ_FN int64_t tdq_sat_add_i64(int64_t a, int64_t b) {
  const uint64_t s = (uint64_t)a + (uint64_t)b;
  /* Overflow iff a and b share a sign that s does not. */
  if (((a ^ (int64_t)s) & (b ^ (int64_t)s)) < 0) return a < 0 ? TDQ_I64_MIN : TDQ_I64_MAX;
  return (int64_t)s;
}

/* i64 saturating subtract (Rust's saturating_sub). */
TDQ_FN int64_t tdq_sat_sub_i64(int64_t a, int64_t b) {
  const uint64_t s = (uint64_t)a - (uint64_t)b;
  if (((a ^ b) & (a ^ (int64_t)s)) < 0) return a < 0 ? TDQ_I64_MIN : TDQ_I64_MAX;
  return (int64_t)s;
}

/* v << k as the Rust oracle computes it (two's-complement bits). */
TDQ_FN int64_t tdq_shl_i64(int64_t v, uint32_t k) { return (int64_t)((uint64_t)v << (k & 63)); }

/* ⌊√n⌋ exactly (bitwise, no floating point). */
TDQ_FN tdq_u128 tdq_isqrt_u128(tdq_u128 n) {
  tdq_u128 root = 0;
  tdq_u128 bit = (tdq_u128)1 << 126;
  while (bit > n) bit >>= 2;
  while (bit != 0) {
    if (n >= root + bit) {
      n -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return root;
}

/* ------------------------------------------------------------------------ */
/* Softmax exponential (int::exp2)                                          */
/* ------------------------------------------------------------------------ */

/* round(2^31 · 2^(−i/256)); a __constant__ table on the device, a static one
   on the host (nvcc compiles this header once for each side). */
#if defined(__CUDA_ARCH__)
#define TDQ_TABLE __constant__ const
#else
#define TDQ_TABLE static const
#endif

TDQ_TABLE uint32_t TDQ_EXP2_LUT[256] = {
    2147483648u, 2141676973u, 2135885998u, 2130110682u, 2124350982u, 2118606857u, 2112878262u,
    2107165158u, 2101467502u, 2095785251u, 2090118366u, 2084466803u, 2078830522u, 2073209480u,
    2067603638u, 2062012954u, 2056437387u, 2050876895u, 2045331439u, 2039800978u, 2034285470u,
    2028784876u, 2023299156u, 2017828268u, 2012372174u, 2006930832u, 2001504204u, 1996092249u,
    1990694927u, 1985312200u, 1979944027u, 1974590370u, 1969251188u, 1963926443u, 1958616096u,
    1953320108u, 1948038440u, 1942771053u, 1937517909u, 1932278970u, 1927054196u, 1921843549u,
    1916646992u, 1911464486u, 1906295993u, 1901141476u, 1896000896u, 1890874216u, 1885761398u,
    1880662405u, 1875577199u, 1870505744u, 1865448001u, 1860403934u, 1855373507u, 1850356681u,
    1845353420u, 1840363688u, 1835387448u, 1830424663u, 1825475297u, 1820539314u, 1815616678u,
    1810707353u, 1805811301u, 1800928489u, 1796058879u, 1791202437u, 1786359126u, 1781528911u,
    1776711757u, 1771907628u, 1767116489u, 1762338305u, 1757573041u, 1752820662u, 1748081133u,
    1743354420u, 1738640488u, 1733939301u, 1729250827u, 1724575029u, 1719911875u, 1715261330u,
    1710623359u, 1705997930u, 1701385007u, 1696784557u, 1692196547u, 1687620943u, 1683057710u,
    1678506817u, 1673968228u, 1669441912u, 1664927835u, 1660425963u, 1655936265u, 1651458706u,
    1646993254u, 1642539877u, 1638098541u, 1633669214u, 1629251865u, 1624846459u, 1620452965u,
    1616071351u, 1611701585u, 1607343634u, 1602997467u, 1598663052u, 1594340357u, 1590029350u,
    1585730000u, 1581442275u, 1577166143u, 1572901575u, 1568648537u, 1564406999u, 1560176931u,
    1555958300u, 1551751076u, 1547555228u, 1543370725u, 1539197537u, 1535035634u, 1530884983u,
    1526745556u, 1522617322u, 1518500250u, 1514394310u, 1510299473u, 1506215708u, 1502142985u,
    1498081275u, 1494030547u, 1489990772u, 1485961921u, 1481943963u, 1477936870u, 1473940611u,
    1469955159u, 1465980482u, 1462016553u, 1458063343u, 1454120821u, 1450188960u, 1446267730u,
    1442357104u, 1438457051u, 1434567544u, 1430688553u, 1426820052u, 1422962010u, 1419114401u,
    1415277195u, 1411450365u, 1407633882u, 1403827719u, 1400031848u, 1396246240u, 1392470869u,
    1388705706u, 1384950723u, 1381205894u, 1377471191u, 1373746586u, 1370032052u, 1366327563u,
    1362633090u, 1358948606u, 1355274085u, 1351609500u, 1347954824u, 1344310030u, 1340675091u,
    1337049980u, 1333434672u, 1329829140u, 1326233356u, 1322647296u, 1319070932u, 1315504238u,
    1311947188u, 1308399756u, 1304861917u, 1301333643u, 1297814910u, 1294305692u, 1290805962u,
    1287315695u, 1283834865u, 1280363448u, 1276901417u, 1273448747u, 1270005413u, 1266571390u,
    1263146652u, 1259731174u, 1256324931u, 1252927899u, 1249540052u, 1246161366u, 1242791816u,
    1239431376u, 1236080024u, 1232737732u, 1229404479u, 1226080238u, 1222764986u, 1219458698u,
    1216161350u, 1212872918u, 1209593378u, 1206322705u, 1203060876u, 1199807867u, 1196563654u,
    1193328213u, 1190101520u, 1186883552u, 1183674286u, 1180473697u, 1177281762u, 1174098458u,
    1170923762u, 1167757650u, 1164600099u, 1161451085u, 1158310587u, 1155178580u, 1152055042u,
    1148939949u, 1145833280u, 1142735011u, 1139645120u, 1136563583u, 1133490379u, 1130425485u,
    1127368878u, 1124320536u, 1121280436u, 1118248556u, 1115224875u, 1112209370u, 1109202018u,
    1106202798u, 1103211687u, 1100228665u, 1097253708u, 1094286796u, 1091327906u, 1088377016u,
    1085434106u, 1082499153u, 1079572136u, 1076653033u,
};

#define TDQ_LN2_Q32 2977044472ull

/* exp2_neg_q31: 2^31 · 2^(−d/2^32), every step as in core/src/int/exp2.rs. */
TDQ_FN uint32_t tdq_exp2_neg_q31(uint64_t d) {
  const uint64_t n = d >> 32;
  if (n >= 32) return 0;
  const uint64_t f = d & 0xFFFFFFFFull;
  const uint32_t i = (uint32_t)(f >> 24);
  const uint64_t r = f & 0x00FFFFFFull;
  const uint64_t v = (r * TDQ_LN2_Q32 + (1ull << 31)) >> 32;
  const uint64_t v2 = (v * v) >> 33;
  const uint64_t v3 = (v2 * v) / (3ull << 32);
  const uint64_t p = (1ull << 32) - v + v2 - v3;
  const uint64_t lut = (uint64_t)TDQ_EXP2_LUT[i];
  const uint64_t g = (lut * p + (1ull << 31)) >> 32;
  if (n == 0) return (uint32_t)g;
  return (uint32_t)((g + (1ull << (n - 1))) >> n);
}

/* ------------------------------------------------------------------------ */
/* LayerNorm and the quantizer on its output (int::layernorm)               */
/* ------------------------------------------------------------------------ */

/* normalize: x̂ (Q24) of one token of n ≤ 64 stream values. The caller
   guarantees 1 ≤ n ≤ 64 and 1 ≤ eps_t ≤ 2^40 (validated at model load). */
TDQ_FN void tdq_ln_normalize(const int32_t *x, uint32_t n_u, int64_t eps_t, int32_t *xhat) {
  const int64_t n = (int64_t)n_u;
  int64_t s1 = 0;
  for (uint32_t i = 0; i < n_u; ++i) s1 += (int64_t)tdq_clamp_stream(x[i]);
  /* μ = ⌊(2·S1 + n) / (2n)⌋ (Euclidean division: the divisor is positive). */
  const int64_t num = 2 * s1 + n;
  const int64_t den = 2 * n;
  int64_t mu = num / den;
  if (num % den < 0) mu -= 1;
  const int64_t e = s1 - n * mu;
  int64_t sd2 = 0;
  for (uint32_t i = 0; i < n_u; ++i) {
    const int64_t d = (int64_t)tdq_clamp_stream(x[i]) - mu;
    sd2 += d * d;
  }
  int64_t q = n * sd2 - e * e;
  if (q < 0) q = 0;
  int64_t t = q + eps_t;
  if (t < 1) t = 1;
  const tdq_s128 rho = (tdq_s128)tdq_isqrt_u128(((tdq_u128)1 << 122) / (tdq_u128)(uint64_t)t);
  for (uint32_t i = 0; i < n_u; ++i) {
    const tdq_s128 v = (tdq_s128)(n * ((int64_t)tdq_clamp_stream(x[i]) - mu) - e);
    xhat[i] = (int32_t)tdq_rshift_round_s128(v * rho, 61 - TDQ_XHAT_FRAC);
  }
}

/* LnParams::output: Y_c = rshift_round(x̂·G_c, 24 + g_frac − y_frac) + B_c. */
TDQ_FN int64_t tdq_ln_output(const tdq_ln_params *ln, uint32_t c, int32_t xhat) {
  const uint32_t up = TDQ_XHAT_FRAC + ln->g_frac;
  const uint32_t shift = up > ln->y_frac ? up - ln->y_frac : 0;
  return tdq_rshift_round((int64_t)xhat * (int64_t)ln->gamma[c], shift) + (int64_t)ln->beta[c];
}

/* FixedQuant::code. */
TDQ_FN uint8_t tdq_fixed_quant_code(const tdq_fixed_quant *fq, int64_t y) {
  const int64_t diff = tdq_clamp_abs(tdq_sat_sub_i64(y, fq->offset), TDQ_FIXED_QUANT_CLAMP);
  return tdq_clamp_code(tdq_rshift_round(diff * fq->mult, fq->shift), fq->levels);
}

/* ------------------------------------------------------------------------ */
/* Linear layers on codes (int::linear) and GELU thresholds (int::gelu)     */
/* ------------------------------------------------------------------------ */

/* CodeAffine::t = acc·A + Σa·B + (C << c_shift). */
TDQ_FN int64_t tdq_affine_t(const tdq_code_affine *aff, int32_t acc, int32_t asum, int32_t c) {
  return (int64_t)acc * aff->a + (int64_t)asum * aff->b + tdq_shl_i64((int64_t)c, aff->c_shift);
}

/* Code `i` of row `row` of a packed matrix (row < rows, i < cols). */
TDQ_FN uint32_t tdq_packed_code(const tdq_packed_matrix *w, uint32_t row, uint32_t i) {
  const uint32_t per = tdq_codes_per_word(w->bits);
  const uint32_t word = w->words[(uint64_t)row * w->words_per_row + i / per];
  return tdq_word_code(word, w->bits, i % per);
}

/* t of input row `x` (k codes) against weight row `row`, with C_j = c. */
TDQ_FN int64_t tdq_linear_t(const uint8_t *x, uint32_t k, const tdq_packed_matrix *w,
                            uint32_t row, const tdq_code_affine *aff, int32_t c) {
  int32_t acc = 0;
  int32_t asum = 0;
  for (uint32_t i = 0; i < k; ++i) {
    acc += (int32_t)x[i] * (int32_t)tdq_packed_code(w, row, i);
    asum += (int32_t)x[i];
  }
  return tdq_affine_t(aff, acc, asum, c);
}

/* gelu_code: #{k : t ≥ H_k or t ≤ L_k}. */
TDQ_FN uint8_t tdq_gelu_code(int64_t t, const int64_t *hi, const int64_t *lo, uint32_t levels) {
  uint32_t count = 0;
  for (uint32_t k = 0; k < levels; ++k) {
    if (t >= hi[k] || t <= lo[k]) ++count;
  }
  return (uint8_t)(count > 255 ? 255 : count);
}

/* ------------------------------------------------------------------------ */
/* Window attention (int::attention)                                        */
/* ------------------------------------------------------------------------ */

/* rpb_index(i, j). */
TDQ_FN uint32_t tdq_rpb_index(uint32_t i, uint32_t j) {
  const uint32_t yi = i / TDQ_WINDOW % TDQ_WINDOW, xi = i % TDQ_WINDOW;
  const uint32_t yj = j / TDQ_WINDOW % TDQ_WINDOW, xj = j % TDQ_WINDOW;
  return (yi + TDQ_WINDOW - 1 - yj) * (2 * TDQ_WINDOW - 1) + (xi + TDQ_WINDOW - 1 - xj);
}

/*
 * One query row `i` of softmax_codes for one head: q, k are 64 × stride code
 * maps whose head columns start at `col`; rpb is the head's 225 entries;
 * labels (64 region labels) or NULL for no mask; thresholds the N levels T_k;
 * out the 64 AttnProb codes of the row.
 */
TDQ_FN void tdq_softmax_row(const uint8_t *q, const uint8_t *k, uint32_t stride, uint32_t col,
                            const tdq_qk_params *qk, const int16_t *rpb, const uint8_t *labels,
                            const int64_t *thresholds, uint32_t levels, uint32_t i,
                            uint8_t *out) {
  int64_t z[TDQ_TOKENS];
  int64_t m = TDQ_I64_MIN;
  const uint8_t *qi = q + (uint64_t)i * stride + col;
  for (uint32_t j = 0; j < TDQ_TOKENS; ++j) {
    const uint8_t *kj = k + (uint64_t)j * stride + col;
    int64_t acc = 0;
    int64_t kb = 0;
    for (uint32_t d = 0; d < TDQ_HEAD_DIM; ++d) {
      acc += (int64_t)qi[d] * (int64_t)kj[d];
      kb += (int64_t)kj[d];
    }
    const int64_t bias = tdq_shl_i64((int64_t)rpb[tdq_rpb_index(i, j)], qk->rpb_shift);
    const int masked = labels != 0 && labels[i] != labels[j];
    z[j] = acc * qk->a + kb * qk->b + bias + (masked ? TDQ_MASK_Z : 0);
    if (z[j] > m) m = z[j];
  }
  uint32_t e[TDQ_TOKENS];
  uint64_t sum = 0;
  for (uint32_t j = 0; j < TDQ_TOKENS; ++j) {
    e[j] = tdq_exp2_neg_q31((uint64_t)(m - z[j]));
    sum += (uint64_t)e[j];
  }
  int64_t edges[TDQ_MAX_LEVELS];
  const uint32_t n = levels < TDQ_MAX_LEVELS ? levels : TDQ_MAX_LEVELS;
  for (uint32_t kk = 0; kk < n; ++kk) {
    const tdq_s128 prod = (tdq_s128)sum * (tdq_s128)thresholds[kk];
    /* ceil_shift_i128: ⌈v / 2^30⌉ = −⌊−v / 2^30⌋. */
    edges[kk] = (int64_t)(-((-prod) >> TDQ_PROB_FRAC));
  }
  for (uint32_t j = 0; j < TDQ_TOKENS; ++j) {
    uint32_t count = 0;
    for (uint32_t kk = 0; kk < n; ++kk) {
      if ((int64_t)e[j] >= edges[kk]) ++count;
    }
    out[j] = (uint8_t)count;
  }
}

/*
 * One query row `i` of av_codes: probs_row the 64 codes of the row, v a
 * 64 × stride code map (head columns from `col`); writes out[col .. col + 10)
 * of the row (`out` points at the row).
 */
TDQ_FN void tdq_av_row(const uint8_t *probs_row, const uint8_t *v, uint32_t stride,
                       uint32_t col, const tdq_av_params *av, uint32_t levels, uint8_t *out) {
  int64_t cs = 0;
  for (uint32_t j = 0; j < TDQ_TOKENS; ++j) cs += (int64_t)probs_row[j];
  for (uint32_t d = 0; d < TDQ_HEAD_DIM; ++d) {
    int32_t acc = 0;
    int64_t vs = 0;
    for (uint32_t j = 0; j < TDQ_TOKENS; ++j) {
      const uint8_t x = v[(uint64_t)j * stride + col + d];
      acc += (int32_t)probs_row[j] * (int32_t)x;
      vs += (int64_t)x;
    }
    const int64_t t = (int64_t)acc * av->a + cs * av->b + vs * av->c + av->d;
    out[col + d] = tdq_clamp_code(tdq_rshift_round(t, av->frac), levels);
  }
}

/* ------------------------------------------------------------------------ */
/* Convolutions (int::conv) and the runner's index maps (int::runner)       */
/* ------------------------------------------------------------------------ */

/*
 * One output of a 3×3 convolution (padding 1, zeros): input is an h × w × cin
 * HWC map (values read clamped to i16), w_row the 9·cin weights of output
 * channel o, (multiplier, shift, bias) its requantization. Returns
 * Requantizer(M, shift, HalfUp).apply_i64(acc) saturating_add bias.
 */
TDQ_FN int64_t tdq_conv_output(const int32_t *input, uint32_t h, uint32_t w, uint32_t cin,
                               uint32_t y, uint32_t x, const int16_t *w_row, int32_t multiplier,
                               int32_t shift, int32_t bias) {
  int64_t acc = 0;
  for (uint32_t tap = 0; tap < 9; ++tap) {
    const int64_t yy = (int64_t)y + (int64_t)(tap / 3) - 1;
    const int64_t xx = (int64_t)x + (int64_t)(tap % 3) - 1;
    if (yy < 0 || xx < 0 || yy >= (int64_t)h || xx >= (int64_t)w) continue;
    const int32_t *px = input + ((uint64_t)yy * w + (uint64_t)xx) * cin;
    const int16_t *wt = w_row + (uint64_t)tap * cin;
    for (uint32_t c = 0; c < cin; ++c) {
      acc += (int64_t)(tdq_clamp_i16(px[c]) * (int32_t)wt[c]);
    }
  }
  tdq_requantizer rq;
  rq.multiplier = multiplier;
  rq.shift = (int8_t)shift;
  rq.rounding = TDQ_ROUND_HALF_UP;
  rq.reserved[0] = 0;
  rq.reserved[1] = 0;
  return tdq_sat_add_i64(tdq_requant_i64(rq, acc), (int64_t)bias);
}

/* The edge-repeating mirror: source index of position i of a side of n. */
TDQ_FN uint32_t tdq_mirror(uint32_t i, uint32_t n) {
  const uint32_t period = 2 * n;
  const uint32_t m = i % period;
  return m < n ? m : period - 1 - m;
}

/* Region label (0, 1, 2) of rolled coordinate i of a side of n. */
TDQ_FN uint32_t tdq_region(uint32_t i, uint32_t n) {
  if (i + TDQ_WINDOW < n) return 0;
  if (i + TDQ_SHIFT < n) return 1;
  return 2;
}

/* window_tokens for token t of window (wy, wx): the pixel index it reads and
   writes (*pos) and its region label (*label). */
TDQ_FN void tdq_window_token(uint32_t wy, uint32_t wx, uint32_t t, uint32_t hp, uint32_t wp,
                             uint32_t shifted, uint32_t *pos, uint8_t *label) {
  const uint32_t shift = shifted ? TDQ_SHIFT : 0;
  const uint32_t ry = wy * TDQ_WINDOW + t / TDQ_WINDOW;
  const uint32_t rx = wx * TDQ_WINDOW + t % TDQ_WINDOW;
  *pos = ((ry + shift) % hp) * wp + (rx + shift) % wp;
  *label = (uint8_t)(3 * tdq_region(ry, hp) + tdq_region(rx, wp));
}

#endif /* TDQ_SWINIR_CUH */
