/*
 * tdq_swinir.cu — the integer SwinIR-light forward pass as CUDA kernels.
 *
 * One kernel per operator of docs/integer-semantics.md, each a grid-stride
 * loop over independent work items (a pixel, a (token, row) output, a
 * (window, head, query) row) calling the __host__ __device__ arithmetic of
 * tdq_swinir.cuh; plus two fused kernels (attention softmax + P·v per query
 * row, and the whole MLP per pixel) that keep the intermediate codes in
 * registers/local memory instead of global buffers.
 *
 * Threads never communicate (no shared memory, no barriers), which is what
 * lets gpu/csrc/tdq_host_shim.cpp run these very kernels on the CPU under an
 * emulated launch: CI then checks the whole forward pass of the kernels
 * against the core oracle without a GPU, and a device run is left with the
 * hardware and the driver plumbing.
 *
 * Every kernel takes one argument struct by value; gpu/src/swinir.rs mirrors
 * each struct (#[repr(C)], sizes asserted on both sides) and
 * gpu/src/pipeline.rs sequences the launches exactly like
 * core::int::runner::upscale.
 */
#include "tdq_swinir.cuh"

/* Which linear layer tdq_k_linear runs. */
#define TDQ_LIN_Q 0
#define TDQ_LIN_K 1
#define TDQ_LIN_V 2
#define TDQ_LIN_PROJ 3
#define TDQ_LIN_FC1 4
#define TDQ_LIN_FC2 5

/* tdq_k_conv3x3 epilogues. */
#define TDQ_CONV_STREAM 0      /* out = clamp_stream(v) */
#define TDQ_CONV_STREAM_SKIP 1 /* out = clamp_stream(clamp_stream(v) + skip) */
#define TDQ_CONV_PIXELS 2      /* pixel-shuffled u8 output, cropped to h × w */

/* u8 RGB (h × w × 3) → X = 128·p − M_c on the mirror-padded hp × wp map. 48 B. */
typedef struct tdq_input_args {
  const uint8_t *img;
  int32_t *out;
  uint32_t h, w, hp, wp;
  int32_t offset[3];
  uint32_t reserved;
} tdq_input_args;

/* 3×3 conv over an hp × wp × cin map. 80 B. */
typedef struct tdq_conv_args {
  const int32_t *input;
  const int16_t *weights; /* [cout, 9·cin], (ky, kx, c) order */
  const int32_t *quant;   /* [cout, 3]: multiplier, shift, bias */
  const int32_t *skip;    /* TDQ_CONV_STREAM_SKIP */
  int32_t *out;           /* TDQ_CONV_STREAM(_SKIP): hp × wp × cout */
  uint8_t *pixels;        /* TDQ_CONV_PIXELS: (s·h) × (s·w) × 3 */
  uint32_t hp, wp, cin, cout;
  uint32_t mode, h, w, scale;
} tdq_conv_args;

/* LayerNorm into the stream, in place, one token per work item. 24 B. */
typedef struct tdq_ln_stream_args {
  int32_t *r;
  const tdq_ln_params *ln;
  uint64_t pixels;
} tdq_ln_stream_args;

/* a = clamp_i16(rshift_round(r, k)). 32 B. */
typedef struct tdq_to_i16_args {
  const int32_t *r;
  int32_t *a;
  uint64_t n;
  uint32_t k, reserved;
} tdq_to_i16_args;

/* dst = src. 24 B. */
typedef struct tdq_copy_args {
  const int32_t *src;
  int32_t *dst;
  uint64_t n;
} tdq_copy_args;

/* Per-block kernels: the stream, the block's constants, the code buffers
   (window-token order for attention, pixel order for the MLP), the weights. 136 B. */
typedef struct tdq_block_args {
  int32_t *r;
  const tdq_block_params *blk;
  uint8_t *qin, *kin, *vin; /* LN1 codes for the q/k/v linears */
  uint8_t *qc, *kc, *vc;    /* AttnQ/AttnK/AttnV codes */
  uint8_t *probs;           /* AttnProb codes, [windows, heads, 64, 64] */
  uint8_t *oc;              /* ProjInput codes */
  uint8_t *fc1in;           /* fc1 input codes, [pixels, 60] */
  uint8_t *hidden;          /* fc2 input codes, [pixels, 120] */
  tdq_packed_matrix w;      /* the layer's matrix (tdq_k_linear) */
  uint32_t hp, wp;
  uint32_t block;           /* 0..24: row offsets into w_attn / w_fc1 / w_fc2 */
  uint32_t layer;           /* TDQ_LIN_* (tdq_k_linear) */
} tdq_block_args;

/* The fused MLP needs both of its matrices. 80 B. */
typedef struct tdq_mlp_args {
  int32_t *r;
  const tdq_block_params *blk;
  tdq_packed_matrix w1, w2;
  uint64_t pixels;
  uint32_t block, reserved;
} tdq_mlp_args;

TDQ_STATIC_ASSERT(sizeof(tdq_packed_matrix) == 24, "tdq_packed_matrix layout");
TDQ_STATIC_ASSERT(sizeof(tdq_input_args) == 48, "tdq_input_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_conv_args) == 80, "tdq_conv_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_ln_stream_args) == 24, "tdq_ln_stream_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_to_i16_args) == 32, "tdq_to_i16_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_copy_args) == 24, "tdq_copy_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_block_args) == 136, "tdq_block_args layout");
TDQ_STATIC_ASSERT(sizeof(tdq_mlp_args) == 80, "tdq_mlp_args layout");

#define TDQ_GRID_STRIDE(i, n)                                                             \
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (uint64_t)(n); \
       i += (uint64_t)blockDim.x * gridDim.x)

/* r[at] = clamp_stream(r[at] + clamp_stream(y)) (runner::add_to_stream). */
TDQ_FN void tdq_add_to_stream(int32_t *r, uint64_t at, int64_t y) {
  r[at] = tdq_clamp_stream((int64_t)r[at] + (int64_t)tdq_clamp_stream(y));
}

/* The fixed quantizers of LN output channel c. */
TDQ_FN void tdq_ln_token(const int32_t *x, const tdq_ln_params *ln, int32_t *xhat) {
  tdq_ln_normalize(x, TDQ_EMBED, ln->eps_t, xhat);
}

extern "C" __global__ void tdq_k_input(const tdq_input_args a) {
  TDQ_GRID_STRIDE(p, (uint64_t)a.hp * a.wp) {
    const uint32_t sy = tdq_mirror((uint32_t)(p / a.wp), a.h);
    const uint32_t sx = tdq_mirror((uint32_t)(p % a.wp), a.w);
    const uint8_t *src = a.img + ((uint64_t)sy * a.w + sx) * 3;
    for (uint32_t c = 0; c < 3; ++c) {
      a.out[p * 3 + c] = TDQ_INPUT_GAIN * (int32_t)src[c] - a.offset[c];
    }
  }
}

extern "C" __global__ void tdq_k_conv3x3(const tdq_conv_args a) {
  TDQ_GRID_STRIDE(item, (uint64_t)a.hp * a.wp * a.cout) {
    const uint64_t p = item / a.cout;
    const uint32_t o = (uint32_t)(item % a.cout);
    const uint32_t y = (uint32_t)(p / a.wp), x = (uint32_t)(p % a.wp);
    const int32_t *q = a.quant + (uint64_t)o * 3;
    const int64_t v = tdq_conv_output(a.input, a.hp, a.wp, a.cin, y, x,
                                      a.weights + (uint64_t)o * 9 * a.cin, q[0], q[1], q[2]);
    if (a.mode == TDQ_CONV_STREAM) {
      a.out[item] = tdq_clamp_stream(v);
    } else if (a.mode == TDQ_CONV_STREAM_SKIP) {
      a.out[item] = tdq_clamp_stream((int64_t)tdq_clamp_stream(v) + (int64_t)a.skip[item]);
    } else if (y < a.h && x < a.w) {
      const uint32_t s = a.scale, s2 = s * s;
      const uint32_t c = o / s2, sub = o % s2;
      const uint32_t i = sub / s, j = sub % s;
      int64_t pixel = tdq_rshift_round(v, TDQ_PIXEL_FRAC);
      pixel = pixel < 0 ? 0 : (pixel > 255 ? 255 : pixel);
      const uint64_t at =
          ((uint64_t)y * s + i) * ((uint64_t)a.w * s * 3) + ((uint64_t)x * s + j) * 3 + c;
      a.pixels[at] = (uint8_t)pixel;
    }
  }
}

extern "C" __global__ void tdq_k_ln_stream(const tdq_ln_stream_args a) {
  TDQ_GRID_STRIDE(p, a.pixels) {
    int32_t *px = a.r + p * TDQ_EMBED;
    int32_t xhat[TDQ_EMBED];
    tdq_ln_token(px, a.ln, xhat);
    for (uint32_t c = 0; c < TDQ_EMBED; ++c) px[c] = tdq_clamp_stream(tdq_ln_output(a.ln, c, xhat[c]));
  }
}

extern "C" __global__ void tdq_k_to_i16(const tdq_to_i16_args a) {
  TDQ_GRID_STRIDE(i, a.n) { a.a[i] = tdq_clamp_i16(tdq_rshift_round((int64_t)a.r[i], a.k)); }
}

extern "C" __global__ void tdq_k_copy(const tdq_copy_args a) {
  TDQ_GRID_STRIDE(i, a.n) { a.dst[i] = a.src[i]; }
}

/* LN1 of every window token (window order) → q, k, v input codes. */
extern "C" __global__ void tdq_k_attn_in(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  const uint32_t wins_x = a.wp / TDQ_WINDOW;
  TDQ_GRID_STRIDE(tok, (uint64_t)a.hp * a.wp) {
    const uint32_t win = (uint32_t)(tok / TDQ_TOKENS), t = (uint32_t)(tok % TDQ_TOKENS);
    uint32_t pos;
    uint8_t label;
    tdq_window_token(win / wins_x, win % wins_x, t, a.hp, a.wp, bp->shifted, &pos, &label);
    int32_t xhat[TDQ_EMBED];
    tdq_ln_token(a.r + (uint64_t)pos * TDQ_EMBED, &bp->ln1, xhat);
    for (uint32_t c = 0; c < TDQ_EMBED; ++c) {
      const int64_t y = tdq_ln_output(&bp->ln1, c, xhat[c]);
      const uint64_t at = tok * TDQ_EMBED + c;
      a.qin[at] = tdq_fixed_quant_code(&bp->fq_q, y);
      a.kin[at] = tdq_fixed_quant_code(&bp->fq_k, y);
      a.vin[at] = tdq_fixed_quant_code(&bp->fq_v, y);
    }
  }
}

/* One linear layer of block a.block, one (token, row) output per item. */
extern "C" __global__ void tdq_k_linear(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  const uint32_t layer = a.layer;
  const uint32_t k = layer == TDQ_LIN_FC2 ? TDQ_MLP : TDQ_EMBED;
  const uint32_t rows = layer == TDQ_LIN_FC1 ? TDQ_MLP : TDQ_EMBED;
  const uint8_t *input;
  const tdq_code_affine *aff;
  const int32_t *c;
  uint32_t row0;
  switch (layer) {
    case TDQ_LIN_Q: input = a.qin; aff = &bp->aff_q; c = bp->c_q; row0 = a.block * 240; break;
    case TDQ_LIN_K: input = a.kin; aff = &bp->aff_k; c = bp->c_k; row0 = a.block * 240 + 60; break;
    case TDQ_LIN_V: input = a.vin; aff = &bp->aff_v; c = bp->c_v; row0 = a.block * 240 + 120; break;
    case TDQ_LIN_PROJ: input = a.oc; aff = &bp->aff_proj; c = bp->c_proj; row0 = a.block * 240 + 180; break;
    case TDQ_LIN_FC1: input = a.fc1in; aff = &bp->aff_fc1; c = bp->c_fc1; row0 = a.block * TDQ_MLP; break;
    default: input = a.hidden; aff = &bp->aff_fc2; c = bp->c_fc2; row0 = a.block * TDQ_EMBED; break;
  }
  const uint32_t wins_x = a.wp / TDQ_WINDOW;
  TDQ_GRID_STRIDE(item, (uint64_t)a.hp * a.wp * rows) {
    const uint64_t tok = item / rows;
    const uint32_t j = (uint32_t)(item % rows);
    const int64_t t = tdq_linear_t(input + tok * k, k, &a.w, row0 + j, aff, c[j]);
    switch (layer) {
      case TDQ_LIN_Q: a.qc[item] = tdq_clamp_code(tdq_rshift_round(t, aff->frac), bp->levels); break;
      case TDQ_LIN_K: a.kc[item] = tdq_clamp_code(tdq_rshift_round(t, aff->frac), bp->levels); break;
      case TDQ_LIN_V: a.vc[item] = tdq_clamp_code(tdq_rshift_round(t, aff->frac), bp->levels); break;
      case TDQ_LIN_PROJ: {
        const uint32_t win = (uint32_t)(tok / TDQ_TOKENS), tt = (uint32_t)(tok % TDQ_TOKENS);
        uint32_t pos;
        uint8_t label;
        tdq_window_token(win / wins_x, win % wins_x, tt, a.hp, a.wp, bp->shifted, &pos, &label);
        tdq_add_to_stream(a.r, (uint64_t)pos * TDQ_EMBED + j, tdq_rshift_round(t, aff->frac));
        break;
      }
      case TDQ_LIN_FC1:
        a.hidden[item] = tdq_gelu_code(t, bp->gelu_hi, bp->gelu_lo, bp->levels);
        break;
      default:
        tdq_add_to_stream(a.r, tok * TDQ_EMBED + j, tdq_rshift_round(t, aff->frac));
        break;
    }
  }
}

/* The 64 region labels of window `win` (shifted blocks only). */
TDQ_FN void tdq_window_labels(uint32_t win, uint32_t hp, uint32_t wp, uint8_t *labels) {
  const uint32_t wins_x = wp / TDQ_WINDOW;
  for (uint32_t t = 0; t < TDQ_TOKENS; ++t) {
    uint32_t pos;
    tdq_window_token(win / wins_x, win % wins_x, t, hp, wp, 1, &pos, &labels[t]);
  }
}

/* Softmax → AttnProb codes, one (window, head, query) row per item. */
extern "C" __global__ void tdq_k_softmax(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  TDQ_GRID_STRIDE(item, (uint64_t)a.hp * a.wp * TDQ_HEADS) {
    const uint32_t i = (uint32_t)(item % TDQ_TOKENS);
    const uint32_t h = (uint32_t)(item / TDQ_TOKENS % TDQ_HEADS);
    const uint32_t win = (uint32_t)(item / TDQ_TOKENS / TDQ_HEADS);
    uint8_t labels[TDQ_TOKENS];
    if (bp->shifted) tdq_window_labels(win, a.hp, a.wp, labels);
    const uint64_t base = (uint64_t)win * TDQ_TOKENS * TDQ_EMBED;
    tdq_softmax_row(a.qc + base, a.kc + base, TDQ_EMBED, h * TDQ_HEAD_DIM, &bp->qk,
                    bp->rpb + h * TDQ_RPB_ROWS, bp->shifted ? labels : 0, bp->prob_t, bp->levels,
                    i, a.probs + item * TDQ_TOKENS);
  }
}

/* P·v → ProjInput codes, one (window, head, query) row per item. */
extern "C" __global__ void tdq_k_av(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  TDQ_GRID_STRIDE(item, (uint64_t)a.hp * a.wp * TDQ_HEADS) {
    const uint32_t i = (uint32_t)(item % TDQ_TOKENS);
    const uint32_t h = (uint32_t)(item / TDQ_TOKENS % TDQ_HEADS);
    const uint32_t win = (uint32_t)(item / TDQ_TOKENS / TDQ_HEADS);
    const uint64_t base = (uint64_t)win * TDQ_TOKENS * TDQ_EMBED;
    tdq_av_row(a.probs + item * TDQ_TOKENS, a.vc + base, TDQ_EMBED, h * TDQ_HEAD_DIM, &bp->av,
               bp->levels, a.oc + base + (uint64_t)i * TDQ_EMBED);
  }
}

/* Fused: softmax row and its P·v in one thread; the 64 AttnProb codes never
   leave the thread. */
extern "C" __global__ void tdq_k_attn_fused(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  TDQ_GRID_STRIDE(item, (uint64_t)a.hp * a.wp * TDQ_HEADS) {
    const uint32_t i = (uint32_t)(item % TDQ_TOKENS);
    const uint32_t h = (uint32_t)(item / TDQ_TOKENS % TDQ_HEADS);
    const uint32_t win = (uint32_t)(item / TDQ_TOKENS / TDQ_HEADS);
    uint8_t labels[TDQ_TOKENS];
    if (bp->shifted) tdq_window_labels(win, a.hp, a.wp, labels);
    const uint64_t base = (uint64_t)win * TDQ_TOKENS * TDQ_EMBED;
    uint8_t row[TDQ_TOKENS];
    tdq_softmax_row(a.qc + base, a.kc + base, TDQ_EMBED, h * TDQ_HEAD_DIM, &bp->qk,
                    bp->rpb + h * TDQ_RPB_ROWS, bp->shifted ? labels : 0, bp->prob_t, bp->levels,
                    i, row);
    tdq_av_row(row, a.vc + base, TDQ_EMBED, h * TDQ_HEAD_DIM, &bp->av, bp->levels,
               a.oc + base + (uint64_t)i * TDQ_EMBED);
  }
}

/* LN2 → fc1 input codes, one pixel per item. */
extern "C" __global__ void tdq_k_mlp_in(const tdq_block_args a) {
  const tdq_block_params *bp = a.blk;
  TDQ_GRID_STRIDE(p, (uint64_t)a.hp * a.wp) {
    int32_t xhat[TDQ_EMBED];
    tdq_ln_token(a.r + p * TDQ_EMBED, &bp->ln2, xhat);
    for (uint32_t c = 0; c < TDQ_EMBED; ++c) {
      a.fc1in[p * TDQ_EMBED + c] = tdq_fixed_quant_code(&bp->fq_fc1, tdq_ln_output(&bp->ln2, c, xhat[c]));
    }
  }
}

/* Fused MLP: LN2 → fc1 → GELU thresholds → fc2 → residual add, one pixel per
   item; the 60 + 120 codes stay in the thread. */
extern "C" __global__ void tdq_k_mlp_fused(const tdq_mlp_args a) {
  const tdq_block_params *bp = a.blk;
  TDQ_GRID_STRIDE(p, a.pixels) {
    int32_t *px = a.r + p * TDQ_EMBED;
    int32_t xhat[TDQ_EMBED];
    tdq_ln_token(px, &bp->ln2, xhat);
    uint8_t in[TDQ_EMBED];
    for (uint32_t c = 0; c < TDQ_EMBED; ++c) {
      in[c] = tdq_fixed_quant_code(&bp->fq_fc1, tdq_ln_output(&bp->ln2, c, xhat[c]));
    }
    uint8_t hidden[TDQ_MLP];
    for (uint32_t j = 0; j < TDQ_MLP; ++j) {
      const int64_t t =
          tdq_linear_t(in, TDQ_EMBED, &a.w1, a.block * TDQ_MLP + j, &bp->aff_fc1, bp->c_fc1[j]);
      hidden[j] = tdq_gelu_code(t, bp->gelu_hi, bp->gelu_lo, bp->levels);
    }
    for (uint32_t j = 0; j < TDQ_EMBED; ++j) {
      const int64_t t =
          tdq_linear_t(hidden, TDQ_MLP, &a.w2, a.block * TDQ_EMBED + j, &bp->aff_fc2, bp->c_fc2[j]);
      tdq_add_to_stream(a.r, p * TDQ_EMBED + j, tdq_rshift_round(t, bp->aff_fc2.frac));
    }
  }
}
