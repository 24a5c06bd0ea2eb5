/* One decoding step of a Llama-family decoder's layers, int8 weights, in one call (assistant/int8_step.py).
 *
 * Per layer and row: RMSNorm -> fused q/k/v product -> rotary -> this position's key and value into the cache
 * -> attention over the cache (GQA) -> o product added to the residual -> RMSNorm -> fused gate/up product ->
 * SiLU gate -> down product added to the residual. The same arithmetic as assistant/decoder.py's layer with
 * int8 rows (weight row r = values[r] * scales[r]), in fp32 throughout. The query heads fill the hidden width
 * (heads * head_dim == hidden), as assistant/int8_step.py checks.
 *
 * Why C: a decoding step of a 135 M model reads ~106 MB of int8 weights (about 3 ms at this machine's memory
 * speed) but runs hundreds of small PyTorch operators, each with microseconds of dispatch. Here a layer is one pass
 * with one OpenMP team (PyTorch's own libgomp, so the same threads), the products split over it by rows.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* A block's rows lie back to back, but each is only k bytes (576 for SmolLM2: 9 cache lines), too short for the
 * hardware prefetcher to ramp up on: the products waited on memory. So each step through a block asks for the
 * bytes AHEAD further on, sweeping memory at the rate the block consumes it. */
#define AHEAD 4096
#define PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

typedef float f16v __attribute__((vector_size(64)));    /* 16 floats: one AVX-512 register, two AVX2 ones */
typedef int8_t i16v __attribute__((vector_size(16)));   /* 16 int8 weights */

typedef struct {
    const int8_t *qkv, *o, *gate_up, *down;              /* (out, in) int8 rows */
    const float *qkv_scale, *o_scale, *gate_up_scale, *down_scale;   /* (out,) fp32 */
    const float *input_norm, *post_norm;                  /* RMSNorm weights (hidden,) */
} Layer;

typedef struct {
    int64_t rows, hidden, heads, kv_heads, head_dim, intermediate;
    int64_t position;          /* where this step's key and value go: the cache's length before the step */
    int64_t cache_layer, cache_row, cache_head;   /* strides of keys/values in floats (position stride = head_dim) */
    float eps, scaling;
    int threads;
} Shape;

/* 16 int8 weights as floats: the widening instructions where the CPU has them (GCC's generic conversion
 * of an int8 vector to floats goes value by value) */
static inline f16v load16(const int8_t *p) {
#if defined(__AVX512F__)
    return (f16v)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
#elif defined(__AVX2__)
    union { __m256 half[2]; f16v whole; } v;
    v.half[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    v.half[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))));
    return v.whole;
#else
    i16v v;
    memcpy(&v, p, 16);
    return __builtin_convertvector(v, f16v);
#endif
}

static inline f16v loadf(const float *p) {
    f16v v;
    memcpy(&v, p, 64);
    return v;
}

static inline float sum16(f16v v) {
    float s = 0.f;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

/* <w[j], x> and <w[j], y> for the 4 weight rows from w, k % 16 == 0: each weight read once for both */
static inline void dot_4x2(const float *x0, const float *x1, int64_t k, const int8_t *w, float out[2][4]) {
    f16v a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    for (int64_t i = 0; i < k; i += 16) {
        f16v x = loadf(x0 + i), y = loadf(x1 + i);
        PREFETCH(w + AHEAD + 4 * i);
        f16v w0 = load16(w + i), w1 = load16(w + k + i), w2 = load16(w + 2 * k + i), w3 = load16(w + 3 * k + i);
        a0 += w0 * x; a1 += w1 * x; a2 += w2 * x; a3 += w3 * x;
        b0 += w0 * y; b1 += w1 * y; b2 += w2 * y; b3 += w3 * y;
    }
    out[0][0] = sum16(a0); out[0][1] = sum16(a1); out[0][2] = sum16(a2); out[0][3] = sum16(a3);
    out[1][0] = sum16(b0); out[1][1] = sum16(b1); out[1][2] = sum16(b2); out[1][3] = sum16(b3);
}

static inline void dot_4x1(const float *x0, int64_t k, const int8_t *w, float out[4]) {
    f16v a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t i = 0; i < k; i += 16) {
        f16v x = loadf(x0 + i);
        PREFETCH(w + AHEAD + 4 * i);
        a0 += load16(w + i) * x; a1 += load16(w + k + i) * x;
        a2 += load16(w + 2 * k + i) * x; a3 += load16(w + 3 * k + i) * x;
    }
    out[0] = sum16(a0); out[1] = sum16(a1); out[2] = sum16(a2); out[3] = sum16(a3);
}

/* out[r][j] (+)= scale[j] * <w[j], x[r]> for j < n, r < rows (x rows of length k; k and n multiples of 16, as
 * assistant/int8_step.py checks), the weight rows split over the team in blocks of 4; each block is read once for
 * every two rows of x. */
static void product_rows(const float *x, int64_t rows, int64_t k, const int8_t *w, const float *scale,
                         int64_t n, float *out, int accumulate) {
    #pragma omp for schedule(static)
    for (int64_t block = 0; block < n / 4; block++) {
        int64_t j0 = block * 4;
        for (int64_t r = 0; r < rows; r += 2) {
            int64_t second = r + 1 < rows ? r + 1 : r;
            float dots[2][4];
            if (second == r) {
                dot_4x1(x + r * k, k, w + j0 * k, dots[0]);
            } else {
                dot_4x2(x + r * k, x + second * k, k, w + j0 * k, dots);
            }
            for (int64_t q = 0; q <= second - r; q++) {
                for (int64_t j = 0; j < 4; j++) {
                    float value = dots[q][j] * scale[j0 + j], *dst = out + (r + q) * n + j0 + j;
                    *dst = accumulate ? *dst + value : value;
                }
            }
        }
    }
}

static void rms_norm(const float *x, const float *weight, int64_t n, float eps, float *out) {
    double squares = 0.0;
    for (int64_t i = 0; i < n; i++) squares += (double)x[i] * x[i];
    float inverse = 1.0f / sqrtf((float)(squares / n) + eps);
    for (int64_t i = 0; i < n; i++) out[i] = weight[i] * (x[i] * inverse);
}

/* transformers' Llama rotary: x*cos + rotate_half(x)*sin, rotate_half(x) = (-x2, x1) */
static void rotate(float *x, const float *cos, const float *sin, int64_t d) {
    int64_t half = d / 2;
    for (int64_t i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cos[i] - x2 * sin[i];
        x[i + half] = x2 * cos[i + half] + x1 * sin[i + half];
    }
}

static inline float dot_float(const float *a, const float *b, int64_t d) {
    f16v acc = {0};
    for (int64_t i = 0; i < d; i += 16) acc += loadf(a + i) * loadf(b + i);
    return sum16(acc);
}

static void attend(const Shape *s, const float *q, const float *keys, const float *values, const uint8_t *mask,
                   float *scores, float *out) {
    int64_t length = s->position + 1, d = s->head_dim;
    float best = -INFINITY;
    for (int64_t p = 0; p < length; p++) {
        if (!mask[p] && p != s->position) { scores[p] = -INFINITY; continue; }
        scores[p] = dot_float(q, keys + p * d, d) * s->scaling;
        if (scores[p] > best) best = scores[p];
    }
    float total = 0.f;
    for (int64_t p = 0; p < length; p++) {
        scores[p] = scores[p] == -INFINITY ? 0.f : expf(scores[p] - best);
        total += scores[p];
    }
    for (int64_t i = 0; i < d; i++) out[i] = 0.f;
    for (int64_t p = 0; p < length; p++) {
        if (scores[p] == 0.f) continue;
        float weight = scores[p] / total;
        const float *value = values + p * d;
        for (int64_t i = 0; i < d; i++) out[i] += weight * value[i];
    }
}

/* hidden (rows, hidden) is updated in place through every layer. cos/sin (rows, head_dim); mask (rows, position+1)
 * 1 where a key may be attended to; keys/values (layers, rows, kv_heads, capacity, head_dim) by the strides in s;
 * work: floats for rows * (hidden + qkv + hidden + 2*intermediate + intermediate) + rows*heads*(position+1). */
void glyph_int8_decode_step(const Layer *layers, int64_t layer_count, const Shape *s, float *hidden,
                            const float *cos, const float *sin, const uint8_t *mask, float *keys, float *values,
                            float *work) {
    const int64_t R = s->rows, H = s->hidden, D = s->head_dim, I = s->intermediate;
    const int64_t QKV = (s->heads + 2 * s->kv_heads) * D, group = s->heads / s->kv_heads;
    const int64_t length = s->position + 1;
    float *normed = work, *qkv = normed + R * H, *attended = qkv + R * QKV, *gate_up = attended + R * H,
          *gated = gate_up + R * 2 * I, *scores = gated + R * I;
    #pragma omp parallel num_threads(s->threads)
    for (int64_t l = 0; l < layer_count; l++) {
        const Layer *layer = layers + l;
        float *layer_keys = keys + l * s->cache_layer, *layer_values = values + l * s->cache_layer;
        #pragma omp single
        for (int64_t r = 0; r < R; r++) rms_norm(hidden + r * H, layer->input_norm, H, s->eps, normed + r * H);
        product_rows(normed, R, H, layer->qkv, layer->qkv_scale, QKV, qkv, 0);
        #pragma omp single
        for (int64_t r = 0; r < R; r++) {
            float *row = qkv + r * QKV;
            for (int64_t h = 0; h < s->heads + s->kv_heads; h++) rotate(row + h * D, cos + r * D, sin + r * D, D);
            for (int64_t h = 0; h < s->kv_heads; h++) {
                int64_t at = r * s->cache_row + h * s->cache_head + s->position * D;
                memcpy(layer_keys + at, row + (s->heads + h) * D, D * sizeof(float));
                memcpy(layer_values + at, row + (s->heads + s->kv_heads + h) * D, D * sizeof(float));
            }
        }
        #pragma omp for schedule(static)
        for (int64_t task = 0; task < R * s->heads; task++) {
            int64_t r = task / s->heads, h = task % s->heads, kv = h / group;
            int64_t at = r * s->cache_row + kv * s->cache_head;
            attend(s, qkv + r * QKV + h * D, layer_keys + at, layer_values + at, mask + r * length,
                   scores + task * length, attended + r * H + h * D);
        }
        product_rows(attended, R, H, layer->o, layer->o_scale, H, hidden, 1);
        #pragma omp single
        for (int64_t r = 0; r < R; r++) rms_norm(hidden + r * H, layer->post_norm, H, s->eps, normed + r * H);
        product_rows(normed, R, H, layer->gate_up, layer->gate_up_scale, 2 * I, gate_up, 0);
        #pragma omp for schedule(static)
        for (int64_t at = 0; at < R * I; at++) {
            int64_t r = at / I, i = at % I;
            float g = gate_up[r * 2 * I + i], u = gate_up[r * 2 * I + I + i];
            gated[at] = g / (1.f + expf(-g)) * u;
        }
        product_rows(gated, R, I, layer->down, layer->down_scale, H, hidden, 1);
    }
}
