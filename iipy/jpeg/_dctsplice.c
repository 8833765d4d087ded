/*
 * _dctsplice: re-encode a few MCUs of a baseline JPEG without decoding the rest.
 *
 * Why this exists: a watermarked tile must differ from the stored one, but only
 * in the handful of 8x8 blocks the mark covers.  Decoding and re-encoding a
 * whole 256x256 tile costs ~400 us, most of it entropy decoding; this module
 * entropy-decodes only up to the last block the mark touches, hands those
 * blocks' pixels to numpy (iipy/markjpeg.py; the watermark formula is applied
 * there, as on any other output), re-encodes the blocks whose pixels changed
 * and copies the rest of the stored bytes unchanged.  The re-encoded run is padded with ZRL
 * codes to the same bit length modulo 8 as the original run, so the unchanged
 * tail keeps its byte alignment and is a plain memcpy.  When no block has room
 * for ZRLs, the rest of the scan is parsed to its end and copied bit-shifted.
 *
 * Only what stored pyramid tiles use is accepted: 8-bit Huffman sequential
 * (SOF0/SOF1), one interleaved scan of 1 or 3 components, chroma sampling 1x1,
 * no restart interval, no Adobe RGB transform.  Anything else, and any corrupt
 * data, makes a function return None, and the caller takes the ordinary
 * decode/encode path.  Every read is bounds-checked.
 *
 * decode(jpeg, x0, y0, x1, y1, index) -> None or (run, window, index)
 *   Decodes the MCUs covering the pixel box [x0,x1)x[y0,y1) and the one after
 *   each covered row (its DC difference changes); the MCUs between them are
 *   located, not decoded.  index: None or the bytearray a former call on the
 *   same data returned (where each MCU starts, as far as parsed; extended in
 *   place).  window: bytearray, the box's pixels as a decoder outputs them,
 *   8-bit, height x width x components (1 grey, 3 RGB).  run: an opaque
 *   capsule for encode.
 * encode(run, window) -> None or bytes
 *   The JPEG with the pixels of `window` that differ from what decode gave
 *   re-encoded: the blocks they touch go back through the forward DCT and the
 *   tile's quantisation and Huffman tables; everything else is copied.  If
 *   the run has no room for padding, up to SLACK more MCUs are re-coded to
 *   pad into.  A run can be encoded once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LUT_BITS 9
#define MAX_COMPS 3
#define MAX_BLOCKS 10 /* per MCU: 4 luma + 2 chroma at most here */
#define SLACK 16     /* MCUs past the run re-coded to pad into, when the run has no room */

static const uint8_t ZIGZAG[64] = { /* zigzag index -> natural index */
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

typedef struct {
    int present;
    uint8_t vals[256];
    int nvals;
    uint16_t lut[1 << LUT_BITS]; /* (length << 8) | symbol; 0: longer code */
    int32_t maxcode[18];         /* -1: no code of that length */
    int32_t valoff[18];
    uint16_t code[256];
    uint8_t size[256]; /* 0: symbol not in the table */
} Huff;

typedef struct {
    int id, h, v, tq, td, ta;
} Comp;

typedef struct {
    int width, height, ncomp, hmax, vmax, mcus_x, mcus_y, blocks_per_mcu;
    Comp comp[MAX_COMPS];
    int block_comp[MAX_BLOCKS]; /* component (frame index) of each block of an MCU */
    uint16_t qt[4][64];         /* natural order */
    int qt_present[4];
    Huff dc[4], ac[4];
    Py_ssize_t scan_off, scan_end; /* entropy-coded segment [scan_off, scan_end) */
    uint8_t *bits;                 /* unstuffed segment, padded */
    Py_ssize_t nbytes;             /* unstuffed length */
    uint64_t limit;                /* no symbol may start past this bit */
} Jpeg;

static int build_huff(Huff *h, const uint8_t *counts, const uint8_t *vals) {
    int n = 0, code = 0, k = 0;
    memset(h, 0, sizeof(*h));
    for (int l = 1; l <= 16; l++) n += counts[l - 1];
    if (n > 256) return -1;
    memcpy(h->vals, vals, (size_t)n);
    h->nvals = n;
    for (int l = 1; l <= 16; l++) {
        int c = counts[l - 1];
        if (c) {
            h->valoff[l] = k - code;
            for (int i = 0; i < c; i++, k++, code++) {
                /* over-subscribed: checked before the code is used, since a code past
                   2^l would write lut entries past the table (found by atheris) */
                if (code >= (1 << l)) return -1;
                uint8_t sym = h->vals[k];
                if (h->size[sym]) return -1; /* a symbol twice */
                h->code[sym] = (uint16_t)code;
                h->size[sym] = (uint8_t)l;
                if (l <= LUT_BITS) {
                    int shift = LUT_BITS - l, base = code << shift;
                    for (int j = 0; j < (1 << shift); j++)
                        h->lut[base + j] = (uint16_t)((l << 8) | sym);
                }
            }
            h->maxcode[l] = code - 1;
        } else {
            h->maxcode[l] = -1;
        }
        code <<= 1;
    }
    h->maxcode[17] = 0x7fffffff;
    h->present = 1;
    return 0;
}

static inline unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Markers and tables; fills everything but the unstuffed bits. 0 or -1. */
static int parse(Jpeg *j, const uint8_t *d, Py_ssize_t n) {
    Py_ssize_t p = 2;
    int have_sof = 0, adobe_transform = -1;
    memset(j, 0, sizeof(*j));
    if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return -1;
    for (;;) {
        if (p + 4 > n) return -1;
        if (d[p] != 0xFF) return -1;
        unsigned m = d[p + 1];
        if (m == 0xFF) { p++; continue; }
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { p += 2; continue; }
        if (m == 0xD9) return -1; /* EOI before any scan */
        Py_ssize_t len = be16(d + p + 2);
        if (len < 2 || p + 2 + len > n) return -1;
        const uint8_t *s = d + p + 4;
        Py_ssize_t sl = len - 2;
        switch (m) {
        case 0xC0:
        case 0xC1: {
            if (have_sof || sl < 6 || s[0] != 8) return -1;
            j->height = (int)be16(s + 1);
            j->width = (int)be16(s + 3);
            j->ncomp = s[5];
            if (j->width <= 0 || j->height <= 0) return -1;
            if (j->ncomp != 1 && j->ncomp != 3) return -1;
            if (sl < 6 + 3 * j->ncomp) return -1;
            for (int i = 0; i < j->ncomp; i++) {
                Comp *c = &j->comp[i];
                c->id = s[6 + 3 * i];
                c->h = s[7 + 3 * i] >> 4;
                c->v = s[7 + 3 * i] & 15;
                c->tq = s[8 + 3 * i];
                if (c->h < 1 || c->h > 2 || c->v < 1 || c->v > 2 || c->tq > 3) return -1;
                if (i > 0 && (c->h != 1 || c->v != 1)) return -1;
            }
            if (j->ncomp == 1) { j->comp[0].h = j->comp[0].v = 1; }
            have_sof = 1;
            break;
        }
        case 0xC4: {
            Py_ssize_t q = 0;
            while (q < sl) {
                if (q + 17 > sl) return -1;
                int tc = s[q] >> 4, th = s[q] & 15, total = 0;
                if (tc > 1 || th > 3) return -1;
                for (int i = 0; i < 16; i++) total += s[q + 1 + i];
                if (q + 17 + total > sl) return -1;
                if (build_huff(tc ? &j->ac[th] : &j->dc[th], s + q + 1, s + q + 17)) return -1;
                q += 17 + total;
            }
            break;
        }
        case 0xDB: {
            Py_ssize_t q = 0;
            while (q < sl) {
                int pq = s[q] >> 4, tq = s[q] & 15;
                if (pq != 0 || tq > 3 || q + 65 > sl) return -1;
                for (int i = 0; i < 64; i++) j->qt[tq][ZIGZAG[i]] = s[q + 1 + i];
                j->qt_present[tq] = 1;
                q += 65;
            }
            break;
        }
        case 0xDD:
            if (sl < 2) return -1;
            if (be16(s) != 0) return -1; /* restart markers: not handled here */
            break;
        case 0xEE: /* Adobe */
            if (sl >= 12 && memcmp(s, "Adobe", 5) == 0) adobe_transform = s[11];
            break;
        case 0xDA: {
            if (!have_sof || sl < 1) return -1;
            int ns = s[0];
            if (ns != j->ncomp || sl != 1 + 2 * ns + 3) return -1;
            if (s[1 + 2 * ns] != 0 || s[2 + 2 * ns] != 63 || s[3 + 2 * ns] != 0) return -1;
            for (int i = 0; i < ns; i++) {
                int id = s[1 + 2 * i], t = s[2 + 2 * i];
                if (j->comp[i].id != id) return -1; /* scan order = frame order */
                j->comp[i].td = t >> 4;
                j->comp[i].ta = t & 15;
                if (j->comp[i].td > 3 || j->comp[i].ta > 3) return -1;
                if (!j->dc[j->comp[i].td].present || !j->ac[j->comp[i].ta].present) return -1;
                if (!j->qt_present[j->comp[i].tq]) return -1;
            }
            if (j->ncomp == 3 && adobe_transform == 0) return -1; /* RGB, not YCbCr */
            j->scan_off = p + 2 + len;
            /* the segment ends at the first marker that is not a stuffed 0xFF */
            Py_ssize_t e = j->scan_off;
            for (;;) {
                const uint8_t *ff = memchr(d + e, 0xFF, (size_t)(n - e));
                if (!ff) return -1;
                e = ff - d;
                if (e + 1 >= n) return -1;
                if (d[e + 1] != 0x00) break;
                e += 2;
            }
            j->scan_end = e;
            goto frame;
        }
        default:
            if (m >= 0xC2 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return -1;
            break;
        }
        p += 2 + len;
    }
frame:
    j->hmax = j->comp[0].h;
    j->vmax = j->comp[0].v;
    j->mcus_x = (j->width + 8 * j->hmax - 1) / (8 * j->hmax);
    j->mcus_y = (j->height + 8 * j->vmax - 1) / (8 * j->vmax);
    int b = 0;
    for (int i = 0; i < j->ncomp; i++)
        for (int k = 0; k < j->comp[i].h * j->comp[i].v; k++) j->block_comp[b++] = i;
    j->blocks_per_mcu = b;
    return 0;
}

/* The entropy-coded segment without its stuffed zero bytes, 8 spare bytes. */
static int unstuff(Jpeg *j, const uint8_t *d) {
    Py_ssize_t len = j->scan_end - j->scan_off;
    j->bits = malloc((size_t)len + 16);
    if (!j->bits) return -1;
    Py_ssize_t o = 0, p = j->scan_off;
    while (p < j->scan_end) {
        const uint8_t *ff = memchr(d + p, 0xFF, (size_t)(j->scan_end - p));
        Py_ssize_t stop = ff ? (ff - d) + 1 : j->scan_end; /* keep the 0xFF itself */
        memcpy(j->bits + o, d + p, (size_t)(stop - p));
        o += stop - p;
        p = ff ? stop + 1 : stop; /* skip its stuffed zero */
    }
    memset(j->bits + o, 0, 16);
    j->nbytes = o;
    j->limit = (uint64_t)o * 8 + 32;
    return 0;
}

/* Offset in the stored data of unstuffed byte u (u <= unstuffed length). */
static Py_ssize_t stuffed_offset(const Jpeg *j, const uint8_t *d, Py_ssize_t u) {
    Py_ssize_t p = j->scan_off, seen = 0;
    for (;;) {
        const uint8_t *ff = memchr(d + p, 0xFF, (size_t)(j->scan_end - p));
        Py_ssize_t run = ff ? (ff - d) - p + 1 : j->scan_end - p;
        if (seen + run > u || !ff) return p + (u - seen);
        seen += run;
        p += run + 1;
    }
}

static inline uint64_t peek(const uint8_t *buf, uint64_t pos) {
    uint64_t w;
    memcpy(&w, buf + (pos >> 3), 8);
    w = __builtin_bswap64(w);
    return w << (pos & 7); /* top 57+ bits valid */
}

static inline int decode_sym(const Huff *h, const Jpeg *j, uint64_t *pos, uint64_t *w) {
    if (*pos > j->limit) return -1; /* corrupt: ran off the data (16 spare bytes) */
    uint64_t v = peek(j->bits, *pos);
    uint16_t e = h->lut[v >> (64 - LUT_BITS)];
    int len;
    int sym;
    if (e) {
        len = e >> 8;
        sym = e & 0xFF;
    } else {
        len = LUT_BITS + 1;
        for (;; len++) {
            if (len > 16) return -1;
            int32_t code = (int32_t)(v >> (64 - len));
            if (h->maxcode[len] >= 0 && code <= h->maxcode[len]) {
                int idx = h->valoff[len] + code;
                if (idx < 0 || idx >= h->nvals) return -1;
                sym = h->vals[idx];
                break;
            }
        }
    }
    *pos += (uint64_t)len;
    *w = v << len;
    return sym;
}

static inline int extend(uint64_t w, int s) {
    int v = (int)(w >> (64 - s));
    return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
}

/* One block: DC difference added to *pred; coefficients stored if out != NULL. */
static int decode_block(const Jpeg *j, int ci, uint64_t *pos, int *pred, int16_t *out) {
    const Comp *c = &j->comp[ci];
    uint64_t w;
    int s = decode_sym(&j->dc[c->td], j, pos, &w);
    if (s < 0 || s > 11) return -1;
    int diff = s ? extend(w, s) : 0;
    *pos += (uint64_t)s;
    *pred += diff;
    if (out) {
        memset(out, 0, 64 * sizeof(int16_t));
        out[0] = (int16_t)*pred;
    }
    const Huff *ac = &j->ac[c->ta];
    for (int k = 1; k < 64; k++) {
        int rs = decode_sym(ac, j, pos, &w);
        if (rs < 0) return -1;
        int r = rs >> 4, size = rs & 15;
        if (size) {
            if (size > 10) return -1;
            k += r;
            if (k > 63) return -1;
            if (out) out[ZIGZAG[k]] = (int16_t)extend(w, size);
            *pos += (uint64_t)size;
        } else {
            if (r != 15) break; /* EOB */
            k += 15;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- pixels
 * The covered MCUs as pixels and back: what a decoder and an encoder do, for
 * those few blocks only.  Planes hold each covered MCU's blocks as float
 * samples (dequantised, inverse DCT, level shift not applied: luma and
 * chroma are centred on 0), covered MCUs in row-major order.  The window
 * handed to numpy is 8-bit RGB (or grey), rounded and clamped as a decoder
 * would output it; the watermark formula is applied there, in numpy. */

static float DCT[8][8]; /* DCT[k][n]: orthonormal 8-point DCT-II basis */
static float RGB_FROM_YCC[3][3];     /* JFIF, chroma centred on 0 */
static const double YCC_FROM_RGB_D[3][3] = {
    {0.299, 0.587, 0.114},
    {-0.168735892, -0.331264108, 0.5},
    {0.5, -0.418687589, -0.081312411}};
static float YCC_FROM_RGB[3][3];

static void init_tables(void) {
    for (int k = 0; k < 8; k++)
        for (int n = 0; n < 8; n++)
            DCT[k][n] = (float)(cos((2 * n + 1) * k * M_PI / 16) / 2 / (k ? 1 : sqrt(2.0)));
    /* the exact inverse, so that a pixel the mark leaves alone converts back
     * to the same samples */
    const double (*m)[3] = YCC_FROM_RGB_D;
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            RGB_FROM_YCC[r][c] = (float)((m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det);
            YCC_FROM_RGB[r][c] = (float)m[r][c];
        }
}

/* The 2-D DCT, separable: a 1-D DCT down the columns of 8 rows at once (each
 * row of 8 floats held as two 4-float vectors: GCC/Clang vector extensions,
 * SSE on x86-64, NEON on arm64), a transpose, the same again, a transpose.
 * The 1-D DCT splits into even and odd halves (22 multiplications instead
 * of 64), with its constants read from the DCT table. */
typedef float v4 __attribute__((vector_size(16)));
typedef struct { v4 lo, hi; } Row;

#if defined(__clang__)
#define SHUF(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
typedef int v4i __attribute__((vector_size(16)));
#define SHUF(a, b, i, j, k, l) __builtin_shuffle(a, b, (v4i){i, j, k, l})
#endif

static inline Row radd(Row a, Row b) { return (Row){a.lo + b.lo, a.hi + b.hi}; }
static inline Row rsub(Row a, Row b) { return (Row){a.lo - b.lo, a.hi - b.hi}; }
static inline Row rmul(float f, Row a) { return (Row){f * a.lo, f * a.hi}; }

static inline void transpose4(v4 *a, v4 *b, v4 *c, v4 *d) {
    v4 t0 = SHUF(*a, *b, 0, 4, 1, 5), t1 = SHUF(*a, *b, 2, 6, 3, 7);
    v4 t2 = SHUF(*c, *d, 0, 4, 1, 5), t3 = SHUF(*c, *d, 2, 6, 3, 7);
    *a = SHUF(t0, t2, 0, 1, 4, 5);
    *b = SHUF(t0, t2, 2, 3, 6, 7);
    *c = SHUF(t1, t3, 0, 1, 4, 5);
    *d = SHUF(t1, t3, 2, 3, 6, 7);
}

static inline void transpose(Row r[8]) {
    transpose4(&r[0].lo, &r[1].lo, &r[2].lo, &r[3].lo);
    transpose4(&r[4].hi, &r[5].hi, &r[6].hi, &r[7].hi);
    transpose4(&r[0].hi, &r[1].hi, &r[2].hi, &r[3].hi);
    transpose4(&r[4].lo, &r[5].lo, &r[6].lo, &r[7].lo);
    for (int i = 0; i < 4; i++) { /* swap the off-diagonal 4x4 blocks */
        v4 t = r[i].hi;
        r[i].hi = r[i + 4].lo;
        r[i + 4].lo = t;
    }
}

/* X[k] = sum_n DCT[k][n] x[n], rows at a time */
static inline void fdct1(const Row x[8], Row X[8]) {
    Row s[4], d[4];
    for (int n = 0; n < 4; n++) {
        s[n] = radd(x[n], x[7 - n]);
        d[n] = rsub(x[n], x[7 - n]);
    }
    Row e0 = radd(s[0], s[3]), e1 = radd(s[1], s[2]);
    Row f0 = rsub(s[0], s[3]), f1 = rsub(s[1], s[2]);
    float c = DCT[0][0], a = DCT[2][0], b = DCT[2][1];
    X[0] = rmul(c, radd(e0, e1));
    X[4] = rmul(c, rsub(e0, e1));
    X[2] = radd(rmul(a, f0), rmul(b, f1));
    X[6] = rsub(rmul(b, f0), rmul(a, f1));
    for (int k = 1; k < 8; k += 2)
        X[k] = radd(radd(rmul(DCT[k][0], d[0]), rmul(DCT[k][1], d[1])),
                    radd(rmul(DCT[k][2], d[2]), rmul(DCT[k][3], d[3])));
}

/* x[n] = sum_k DCT[k][n] X[k], rows at a time */
static inline void idct1(const Row X[8], Row x[8]) {
    float c = DCT[0][0], a = DCT[2][0], b = DCT[2][1];
    Row p = rmul(c, radd(X[0], X[4])), q = rmul(c, rsub(X[0], X[4]));
    Row r = radd(rmul(a, X[2]), rmul(b, X[6])), t = rsub(rmul(b, X[2]), rmul(a, X[6]));
    Row e[4] = {radd(p, r), radd(q, t), rsub(q, t), rsub(p, r)};
    for (int n = 0; n < 4; n++) {
        Row o = radd(radd(rmul(DCT[1][n], X[1]), rmul(DCT[3][n], X[3])),
                     radd(rmul(DCT[5][n], X[5]), rmul(DCT[7][n], X[7])));
        x[n] = radd(e[n], o);
        x[7 - n] = rsub(e[n], o);
    }
}

/* out (8x8 samples) = inverse DCT of coefficients c dequantised by q */
static void idct(const int16_t *c, const uint16_t *q, float *out) {
    Row X[8], x[8];
    float f[64];
    for (int k = 0; k < 64; k++) f[k] = (float)(c[k] * q[k]);
    memcpy(X, f, sizeof(f));
    idct1(X, x); /* down the columns */
    transpose(x);
    idct1(x, X); /* along the rows */
    transpose(X);
    memcpy(out, X, sizeof(X));
}

/* c = forward DCT of samples p, quantised by q (rounded to nearest) */
static void fdct(const float *p, const uint16_t *q, int16_t *c) {
    Row x[8], X[8];
    float o[64];
    memcpy(x, p, sizeof(x));
    fdct1(x, X);
    transpose(X);
    fdct1(X, x);
    transpose(x);
    memcpy(o, x, sizeof(o));
    for (int k = 0; k < 64; k++) {
        long v = lrintf(o[k] / (float)q[k]);
        c[k] = (int16_t)(v > 1023 ? 1023 : v < -1023 ? -1023 : v);
    }
}

/* The covered MCUs of a pixel box, and where a pixel's samples are. */
typedef struct {
    int x, y, w, h;       /* the box */
    int col0, row0, nc, nr; /* covered MCUs */
    int mw, mh, luma_n, bpm, bands;
} Box;

static int box_init(Box *b, const Jpeg *j, int x, int y, int w, int h) {
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > j->width || y + h > j->height) return -1;
    b->x = x; b->y = y; b->w = w; b->h = h;
    b->mw = 8 * j->hmax;
    b->mh = 8 * j->vmax;
    b->col0 = x / b->mw;
    b->row0 = y / b->mh;
    b->nc = (x + w - 1) / b->mw - b->col0 + 1;
    b->nr = (y + h - 1) / b->mh - b->row0 + 1;
    b->luma_n = j->hmax * j->vmax;
    b->bpm = j->blocks_per_mcu;
    b->bands = j->ncomp;
    return 0;
}

/* Runs BODY for each pixel of the box, MCU by MCU (no divisions per pixel),
 * with LO and CO the offsets in the planes of its luma and (colour) Cb
 * sample (Cr follows 64 floats later) and WI its offset in the window. */
#define FOR_EACH_PIXEL(b, j, LO, CO, WI, ...)                                             \
    for (int r_ = 0; r_ < (b)->nr; r_++)                                                    \
        for (int c_ = 0; c_ < (b)->nc; c_++) {                                              \
            int x0_ = ((b)->col0 + c_) * (b)->mw, y0_ = ((b)->row0 + r_) * (b)->mh;          \
            int ua_ = (b)->x > x0_ ? (b)->x - x0_ : 0, va_ = (b)->y > y0_ ? (b)->y - y0_ : 0; \
            int ub_ = (b)->x + (b)->w - x0_, vb_ = (b)->y + (b)->h - y0_;                    \
            if (ub_ > (b)->mw) ub_ = (b)->mw;                                               \
            if (vb_ > (b)->mh) vb_ = (b)->mh;                                               \
            Py_ssize_t mcu_ = ((Py_ssize_t)r_ * (b)->nc + c_) * (b)->bpm * 64;              \
            for (int v_ = va_; v_ < vb_; v_++)                                              \
                for (int u_ = ua_; u_ < ub_; u_++) {                                        \
                    Py_ssize_t LO = mcu_ + ((v_ >> 3) * (j)->hmax + (u_ >> 3)) * 64 +       \
                                    (v_ & 7) * 8 + (u_ & 7);                                \
                    Py_ssize_t CO = mcu_ + (b)->luma_n * 64 + (v_ >> ((j)->vmax - 1)) * 8 + \
                                    (u_ >> ((j)->hmax - 1));                                \
                    Py_ssize_t WI = ((Py_ssize_t)(y0_ + v_ - (b)->y) * (b)->w +             \
                                     (x0_ + u_ - (b)->x)) * (b)->bands;                     \
                    __VA_ARGS__                                                             \
                }                                                                           \
        }

static inline uint8_t to_byte(float v) {
    long i = lrintf(v);
    return (uint8_t)(i < 0 ? 0 : i > 255 ? 255 : i);
}

/* A pixel's 8-bit output (as a decoder gives it) from the planes. */
static inline void pixel(const Box *b, const float *planes, Py_ssize_t lo, Py_ssize_t co,
                         uint8_t *out) {
    float yv = planes[lo] + 128.f;
    if (b->bands == 1) {
        out[0] = to_byte(yv);
        return;
    }
    float cb = planes[co], cr = planes[co + 64];
    for (int r = 0; r < 3; r++)
        out[r] = to_byte(RGB_FROM_YCC[r][0] * yv + RGB_FROM_YCC[r][1] * cb + RGB_FROM_YCC[r][2] * cr);
}

/* Planes of the covered MCUs (coeffs: the run decoded from MCU `first`); the
 * samples of luma blocks outside the box are left unset (never read). */
static void to_planes(const Box *b, const Jpeg *j, const int16_t *coeffs, int first,
                      float *planes) {
    for (int r = 0; r < b->nr; r++)
        for (int c = 0; c < b->nc; c++) {
            Py_ssize_t m = (Py_ssize_t)(b->row0 + r) * j->mcus_x + b->col0 + c - first;
            for (int k = 0; k < b->bpm; k++) {
                if (k < b->luma_n) { /* a luma block wholly outside the box is not needed */
                    int bx = (b->col0 + c) * b->mw + (k % j->hmax) * 8;
                    int by = (b->row0 + r) * b->mh + (k / j->hmax) * 8;
                    if (bx + 8 <= b->x || bx >= b->x + b->w || by + 8 <= b->y || by >= b->y + b->h)
                        continue;
                }
                idct(coeffs + (m * b->bpm + k) * 64, j->qt[j->comp[j->block_comp[k]].tq],
                     planes + (((Py_ssize_t)r * b->nc + c) * b->bpm + k) * 64);
            }
        }
}

static void to_window(const Box *b, const Jpeg *j, const float *planes, uint8_t *window) {
    FOR_EACH_PIXEL(b, j, lo, co, wi, { pixel(b, planes, lo, co, window + wi); })
}

/* Take the window's changed pixels (those that differ from `before`, the
 * window to_window made) into the planes and re-quantise the blocks
 * they touch into coeffs; dirty[m] = 1 for each MCU m of the run changed.
 * Unchanged pixels keep their unrounded samples, so their blocks stay as
 * stored.  Chroma is averaged over the pixels a sample covers (as an encoder
 * downsamples), with the unchanged pixels contributing the stored sample.
 * Returns -1 on a memory error. */
static int from_window(const Box *b, const Jpeg *j, float *planes, const uint8_t *before,
                       const uint8_t *window, int16_t *coeffs, int first, uint8_t *dirty) {
    Py_ssize_t nblocks = (Py_ssize_t)b->nr * b->nc * b->bpm;
    uint8_t *touched = calloc((size_t)nblocks, 1);
    float *delta = b->bands == 3 ? calloc((size_t)nblocks * 64, sizeof(float)) : NULL;
    if (!touched || (b->bands == 3 && !delta)) { free(touched); free(delta); return -1; }
    float share = 1.f / (float)b->luma_n;
    FOR_EACH_PIXEL(b, j, lo, co, wi, {
        const uint8_t *now = window + wi, *was = before + wi;
        if (was[0] == now[0] && (b->bands == 1 || (was[1] == now[1] && was[2] == now[2])))
            continue;
        touched[lo / 64] = 1;
        if (b->bands == 1) {
            planes[lo] = (float)now[0] - 128.f;
            continue;
        }
        float rgb[3] = {now[0], now[1], now[2]}, ycc[3];
        for (int r = 0; r < 3; r++)
            ycc[r] = YCC_FROM_RGB[r][0] * rgb[0] + YCC_FROM_RGB[r][1] * rgb[1] +
                     YCC_FROM_RGB[r][2] * rgb[2];
        planes[lo] = ycc[0] - 128.f;
        delta[co] += (ycc[1] - planes[co]) * share;
        delta[co + 64] += (ycc[2] - planes[co + 64]) * share;
        touched[co / 64] = touched[co / 64 + 1] = 1;
    })
    for (Py_ssize_t i = 0; i < nblocks; i++) {
        if (!touched[i]) continue;
        Py_ssize_t mcu = i / b->bpm;
        int k = (int)(i % b->bpm), r = (int)(mcu / b->nc), c = (int)(mcu % b->nc);
        float *p = planes + i * 64;
        if (delta && k >= b->luma_n)
            for (int s = 0; s < 64; s++) p[s] += delta[i * 64 + s];
        Py_ssize_t m = (Py_ssize_t)(b->row0 + r) * j->mcus_x + b->col0 + c - first;
        fdct(p, j->qt[j->comp[j->block_comp[k]].tq], coeffs + (m * b->bpm + k) * 64);
        dirty[m] = 1;
    }
    free(touched);
    free(delta);
    return 0;
}

/* ------------------------------------------------------------------ a run
 * A tile's MCU index: where each MCU starts in the unstuffed scan and the DC
 * predictors there, learnt by parsing and kept by the caller (a bytearray,
 * one per stored tile) so that the next mark on that tile decodes only the
 * MCUs it covers.  Layout: IndexHead, then total + 1 States (the last one is
 * the end of the scan). */
typedef struct {
    uint32_t pos;
    int16_t pred[MAX_COMPS];
} State;

typedef struct {
    int32_t total, known; /* MCUs; States valid from 0 (always) to known - 1 */
} IndexHead;

/* What decode finds and encode needs, kept in C between the two calls (a
 * capsule): the parsed JPEG, the run of MCUs from the first covered to the
 * one after the last, the coefficients of those decoded (the covered ones
 * and the one after each covered row), the covered MCUs' samples and the
 * window as decode gave it.  encode consumes it (it changes them in place). */
typedef struct {
    Py_buffer in; /* the stored JPEG */
    Py_buffer ix; /* its index */
    Jpeg j;
    Box box;
    State *state;
    IndexHead *head;
    int first, needed, count, used;
    uint8_t *have;       /* per MCU of the run (up to needed + SLACK): decoded */
    int16_t *coeffs;     /* (needed + SLACK) x blocks-per-MCU x 64, natural order */
    uint64_t *ends;      /* end bit of each MCU of the run */
    float *planes;       /* the covered MCUs' samples (see to_planes) */
    uint8_t *window;     /* the window as decode gave it */
} Run;

static void run_free(Run *run) {
    free(run->j.bits);
    free(run->have);
    free(run->coeffs);
    free(run->ends);
    free(run->planes);
    free(run->window);
    if (run->in.obj) PyBuffer_Release(&run->in);
    if (run->ix.obj) PyBuffer_Release(&run->ix);
    free(run);
}

static void run_capsule_free(PyObject *capsule) {
    run_free(PyCapsule_GetPointer(capsule, "iipy._dctsplice.Run"));
}

/* Parse on from the last known MCU until the state at MCU `upto` is known
 * (upto <= total).  -1 on corrupt data. */
static int learn(Run *run, int upto) {
    const Jpeg *j = &run->j;
    uint64_t limit = (uint64_t)j->nbytes * 8;
    while (run->head->known <= upto) {
        const State *s = &run->state[run->head->known - 1];
        uint64_t pos = s->pos;
        int pred[MAX_COMPS];
        for (int c = 0; c < MAX_COMPS; c++) pred[c] = s->pred[c];
        for (int b = 0; b < j->blocks_per_mcu; b++)
            if (decode_block(j, j->block_comp[b], &pos, &pred[j->block_comp[b]], NULL)) return -1;
        if (pos > limit) return -1;
        State *next = &run->state[run->head->known];
        next->pos = (uint32_t)pos;
        for (int c = 0; c < MAX_COMPS; c++) {
            if (pred[c] < INT16_MIN || pred[c] > INT16_MAX) return -1;
            next->pred[c] = (int16_t)pred[c];
        }
        run->head->known++;
    }
    return 0;
}

/* Coefficients of MCU i of the run, decoded from its known state; -1 if they
 * do not end where the index says the next MCU starts (corrupt data). */
static int decode_mcu(Run *run, int i) {
    const Jpeg *j = &run->j;
    int m = run->first + i, bpm = j->blocks_per_mcu;
    const State *s = &run->state[m];
    uint64_t pos = s->pos;
    int pred[MAX_COMPS];
    for (int c = 0; c < MAX_COMPS; c++) pred[c] = s->pred[c];
    for (int b = 0; b < bpm; b++)
        if (decode_block(j, j->block_comp[b], &pos, &pred[j->block_comp[b]],
                         run->coeffs + ((Py_ssize_t)i * bpm + b) * 64))
            return -1;
    if (pos != run->state[m + 1].pos) return -1;
    run->have[i] = 1;
    return 0;
}

/* Extend the run to `count` MCUs (<= needed + SLACK), decoding the new ones. */
static int extend_run(Run *run, int count) {
    if (learn(run, run->first + count)) return -1;
    for (int i = run->count; i < count; i++) {
        run->ends[i] = run->state[run->first + i + 1].pos;
        if (decode_mcu(run, i)) return -1;
    }
    run->count = count;
    return 0;
}

/* A fresh index for a JPEG of `total` MCUs: only MCU 0's state known. */
static PyObject *new_index(int total) {
    Py_ssize_t size = (Py_ssize_t)sizeof(IndexHead) + ((Py_ssize_t)total + 1) * (Py_ssize_t)sizeof(State);
    PyObject *ix = PyByteArray_FromStringAndSize(NULL, size);
    if (!ix) return NULL;
    char *p = PyByteArray_AS_STRING(ix);
    memset(p, 0, (size_t)size);
    ((IndexHead *)p)->total = total;
    ((IndexHead *)p)->known = 1;
    return ix;
}

static PyObject *py_decode(PyObject *self, PyObject *args) {
    PyObject *jpeg, *index;
    int x0, y0, x1, y1;
    if (!PyArg_ParseTuple(args, "OiiiiO", &jpeg, &x0, &y0, &x1, &y1, &index)) return NULL;
    PyObject *result = NULL, *window = NULL, *capsule = NULL, *fresh = NULL;
    Run *run = calloc(1, sizeof(Run));
    if (!run) return PyErr_NoMemory();
    if (PyObject_GetBuffer(jpeg, &run->in, PyBUF_SIMPLE)) goto fail;
    Jpeg *j = &run->j;
    const uint8_t *d = run->in.buf;
    if (parse(j, d, run->in.len) || unstuff(j, d)) goto none;
    int total = j->mcus_x * j->mcus_y;
    if (index == Py_None) {
        index = fresh = new_index(total);
        if (!fresh) goto fail;
    }
    if (PyObject_GetBuffer(index, &run->ix, PyBUF_WRITABLE)) goto fail;
    run->head = run->ix.buf;
    run->state = (State *)((char *)run->ix.buf + sizeof(IndexHead));
    if (run->ix.len != (Py_ssize_t)sizeof(IndexHead) + ((Py_ssize_t)total + 1) * (Py_ssize_t)sizeof(State) ||
        run->head->total != total || run->head->known < 1 || run->head->known > total + 1)
        goto none; /* not this tile's index */
    Box *box = &run->box;
    if (box_init(box, j, x0, y0, x1 - x0, y1 - y0)) goto none;
    int first = box->row0 * j->mcus_x + box->col0;
    int last = (box->row0 + box->nr - 1) * j->mcus_x + box->col0 + box->nc - 1;
    if (last + 1 < total) last++; /* the MCU after: its DC difference changes */
    run->first = first;
    run->needed = run->count = last - first + 1;
    int bpm = j->blocks_per_mcu, room = run->needed + SLACK;
    run->have = calloc((size_t)room, 1);
    run->coeffs = malloc((size_t)room * bpm * 64 * sizeof(int16_t));
    run->ends = malloc((size_t)room * sizeof(uint64_t));
    run->planes = malloc((size_t)box->nr * box->nc * bpm * 64 * sizeof(float));
    run->window = malloc((size_t)box->w * box->h * box->bands);
    if (!run->have || !run->coeffs || !run->ends || !run->planes || !run->window) {
        PyErr_NoMemory();
        goto fail;
    }
    if (learn(run, last + 1)) goto none;
    for (int i = 0; i < run->count; i++) run->ends[i] = run->state[first + i + 1].pos;
    /* decoded: the covered MCUs and the one after each covered row */
    for (int r = 0; r < box->nr; r++)
        for (int c = 0; c <= box->nc; c++) {
            int m = (box->row0 + r) * j->mcus_x + box->col0 + c;
            if (m <= last && decode_mcu(run, m - first)) goto none;
        }
    to_planes(box, j, run->coeffs, first, run->planes);
    to_window(box, j, run->planes, run->window);
    window = PyByteArray_FromStringAndSize((const char *)run->window,
                                           (Py_ssize_t)box->w * box->h * box->bands);
    if (!window) goto fail;
    capsule = PyCapsule_New(run, "iipy._dctsplice.Run", run_capsule_free);
    if (!capsule) goto fail;
    Py_INCREF(index);
    Py_XDECREF(fresh);
    return Py_BuildValue("(NNN)", capsule, window, index);
none:
    result = Py_None;
    Py_INCREF(result);
fail:
    Py_XDECREF(window);
    Py_XDECREF(fresh);
    run_free(run);
    return result;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    uint8_t *out;
    Py_ssize_t n, cap;
    uint64_t acc; /* pending bits, right-aligned */
    int nacc;
} Writer;

static inline void put_byte(Writer *w, uint8_t b) {
    w->out[w->n++] = b;
    if (b == 0xFF) w->out[w->n++] = 0x00;
}

static inline void put_bits(Writer *w, uint32_t bits, int len) {
    if (!len) return;
    w->acc = (w->acc << len) | (bits & ((1u << len) - 1));
    w->nacc += len;
    while (w->nacc >= 8) {
        w->nacc -= 8;
        put_byte(w, (uint8_t)(w->acc >> w->nacc));
    }
}

/* Bits [from, to) of an unstuffed buffer (padded by 8 bytes), appended. */
static void copy_bits(Writer *w, const uint8_t *src, uint64_t from, uint64_t to) {
    while (from < to) {
        int len = to - from > 24 ? 24 : (int)(to - from);
        put_bits(w, (uint32_t)(peek(src, from) >> (64 - len)), len);
        from += (uint64_t)len;
    }
}

typedef struct {
    uint64_t start; /* where its coded bits are in the scratch (Bits) */
    int len;        /* their length, without the EOB */
    int bits;       /* its length as it will be written, EOB included, ZRLs not */
    int last_nz;    /* zigzag index of the last non-zero AC (0: none) */
    int zrl;        /* ZRL codes to add before the EOB (alignment padding) */
} BlockPlan;

/* Raw bits, no byte stuffing: each re-encoded block is Huffman-coded once,
 * into this scratch, before the padding is planned; then copied out. */
typedef struct {
    uint8_t *buf;
    Py_ssize_t n; /* whole bytes written */
    uint64_t acc; /* pending bits, right-aligned */
    int nacc;
} Bits;

#define MAX_BLOCK_BYTES 216 /* 27 + 63 x 26 bits, rounded up */

static inline void raw_put(Bits *b, uint32_t bits, int len) { /* len <= 27 */
    b->acc = (b->acc << len) | (bits & ((1u << len) - 1));
    b->nacc += len;
    if (b->nacc >= 32) {
        b->nacc -= 32;
        uint32_t w = __builtin_bswap32((uint32_t)(b->acc >> b->nacc));
        memcpy(b->buf + b->n, &w, 4);
        b->n += 4;
    }
}

static inline uint64_t raw_pos(const Bits *b) { return (uint64_t)b->n * 8 + (uint64_t)b->nacc; }

/* Flush the pending bits and pad with 8 zero bytes (for peek). */
static void raw_finish(Bits *b) {
    uint64_t rest = b->nacc ? b->acc << (64 - b->nacc) : 0;
    rest = __builtin_bswap64(rest);
    memcpy(b->buf + b->n, &rest, 8);
    memset(b->buf + b->n + 8, 0, 8);
}

static inline int category(int v) {
    unsigned a = (unsigned)(v < 0 ? -v : v);
    return a ? 32 - __builtin_clz(a) : 0;
}

/* Code one block into the scratch and plan it; -1 if a symbol is not in the
 * tables or a value out of range. */
static int code_block(Bits *b, const Jpeg *j, int ci, const int16_t *blk, int diff,
                      BlockPlan *plan) {
    const Huff *dc = &j->dc[j->comp[ci].td], *ac = &j->ac[j->comp[ci].ta];
    int s = category(diff);
    if (s > 11 || !dc->size[s]) return -1;
    plan->start = raw_pos(b);
    uint32_t extra = (uint32_t)(diff < 0 ? diff - 1 : diff) & ((1u << s) - 1);
    raw_put(b, ((uint32_t)dc->code[s] << s) | extra, dc->size[s] + s);
    int run = 0, last_nz = 0;
    for (int k = 1; k < 64; k++) {
        int v = blk[ZIGZAG[k]];
        if (!v) { run++; continue; }
        while (run > 15) {
            if (!ac->size[0xF0]) return -1;
            raw_put(b, ac->code[0xF0], ac->size[0xF0]);
            run -= 16;
        }
        int sz = category(v), sym = (run << 4) | sz;
        if (sz > 10 || !ac->size[sym]) return -1;
        extra = (uint32_t)(v < 0 ? v - 1 : v) & ((1u << sz) - 1);
        raw_put(b, ((uint32_t)ac->code[sym] << sz) | extra, ac->size[sym] + sz);
        run = 0;
        last_nz = k;
    }
    if (last_nz < 63 && !ac->size[0x00]) return -1;
    plan->len = (int)(raw_pos(b) - plan->start);
    plan->bits = plan->len + (last_nz < 63 ? ac->size[0x00] : 0);
    plan->last_nz = last_nz;
    plan->zrl = 0;
    return 0;
}

/* Write a planned block: its coded bits, its ZRL padding, its EOB. */
static void emit_block(Writer *w, const Bits *scratch, const Jpeg *j, int ci,
                       const BlockPlan *plan) {
    const Huff *ac = &j->ac[j->comp[ci].ta];
    copy_bits(w, scratch->buf, plan->start, plan->start + (uint64_t)plan->len);
    for (int z = 0; z < plan->zrl; z++) put_bits(w, ac->code[0xF0], ac->size[0xF0]);
    if (plan->last_nz < 63) put_bits(w, ac->code[0x00], ac->size[0x00]);
}

/* Bits of MCU m of the run, planning its blocks (re-encoded ones from their
 * coefficients, copied ones as stored); -1 if a block cannot be coded. */
static long mcu_bits(const Jpeg *j, Bits *scratch, BlockPlan *plans, const int16_t *blocks,
                     const int *diffs, const uint8_t *recode, const uint64_t *ends,
                     uint64_t start_bit, int m) {
    int bpm = j->blocks_per_mcu;
    if (!recode[m]) {
        for (int i = m * bpm; i < (m + 1) * bpm; i++) {
            plans[i].last_nz = 63; /* no room: copied as it is */
            plans[i].zrl = 0;
        }
        return (long)(ends[m] - (m ? ends[m - 1] : start_bit));
    }
    long bits = 0;
    for (int i = m * bpm; i < (m + 1) * bpm; i++) {
        if (code_block(scratch, j, j->block_comp[i % bpm], blocks + (Py_ssize_t)i * 64,
                       diffs[i], &plans[i]))
            return -1;
        bits += plans[i].bits;
    }
    return bits;
}

/* Choose ZRL padding (0..capacity per block) so that a run of n MCUs,
 * needed <= n <= count, re-encodes to its old length modulo 8: a dynamic
 * programme over residues, block by block, planning MCUs only as far as it
 * goes.  Returns n, 0 if no n works (every MCU is then planned), -1 if a
 * block cannot be coded, -2 on a memory error. */
static int plan_padding(const Jpeg *j, Bits *scratch, BlockPlan *plans, const int16_t *blocks,
                        const int *diffs, const uint8_t *recode, const uint64_t *ends,
                        uint64_t start_bit, int needed, int count) {
    int bpm = j->blocks_per_mcu, nblocks = count * bpm, n = 0, r;
    scratch->n = 0;
    scratch->acc = 0;
    scratch->nacc = 0;
    int8_t (*choice)[8] = malloc((size_t)(nblocks + 1) * sizeof(*choice));
    int8_t (*from)[8] = malloc((size_t)(nblocks + 1) * sizeof(*from));
    if (!choice || !from) { free(choice); free(from); return -2; }
    memset(choice, -1, (size_t)(nblocks + 1) * sizeof(*choice));
    choice[0][0] = 0;
    long bits = 0;
    int need = 0;
    for (int i = 0; i < nblocks; i++) {
        if (i % bpm == 0) {
            long b = mcu_bits(j, scratch, plans, blocks, diffs, recode, ends, start_bit, i / bpm);
            if (b < 0) { n = -1; break; }
            bits += b;
        }
        const BlockPlan *p = &plans[i];
        const Huff *ac = &j->ac[j->comp[j->block_comp[i % bpm]].ta];
        int zlen = ac->size[0xF0];
        /* ZRLs fit while the coefficient index stays <= 62, so an EOB still follows */
        int cap = (p->last_nz < 63 && zlen) ? (62 - p->last_nz) / 16 : 0;
        for (r = 0; r < 8; r++) {
            if (choice[i][r] < 0) continue;
            for (int z = 0; z <= cap; z++) {
                int nr = (r + z * zlen) & 7;
                if (choice[i + 1][nr] < 0) {
                    choice[i + 1][nr] = (int8_t)z;
                    from[i + 1][nr] = (int8_t)r;
                }
            }
        }
        if ((i + 1) % bpm == 0) {
            int m = (i + 1) / bpm; /* MCUs so far */
            long old = (long)(ends[m - 1] - start_bit);
            need = (int)(((old - bits) % 8 + 8) % 8);
            if (m >= needed && choice[i + 1][need] >= 0) { n = m; break; }
        }
    }
    if (n > 0) {
        for (int i = n * bpm; i > 0; i--) {
            int z = choice[i][need];
            plans[i - 1].zrl = z;
            need = from[i][need];
        }
    }
    free(choice);
    free(from);
    return n;
}

static PyObject *py_encode(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer wb;
    if (!PyArg_ParseTuple(args, "O!y*", &PyCapsule_Type, &capsule, &wb)) return NULL;
    Run *run = PyCapsule_GetPointer(capsule, "iipy._dctsplice.Run");
    if (!run) { PyBuffer_Release(&wb); return NULL; }
    Jpeg *j = &run->j;
    const Box *box = &run->box;
    const uint8_t *d = run->in.buf;
    Py_ssize_t in_len = run->in.len;
    int first = run->first, needed = run->needed, room = needed + SLACK;
    int bpm = j->blocks_per_mcu, total = j->mcus_x * j->mcus_y;
    if (room > total - first) room = total - first;
    uint64_t start_bit = run->state[first].pos;
    const uint64_t *ends = run->ends;
    int16_t *blocks = run->coeffs;
    BlockPlan *plans = NULL;
    int *diffs = NULL;
    uint8_t *recode = NULL, *dirty = NULL;
    Bits scratch = {NULL, 0, 0, 0};
    PyObject *result = NULL;
    if (run->used || wb.len != (Py_ssize_t)box->w * box->h * box->bands) goto none;
    run->used = 1; /* the coefficients and samples change below */
    dirty = calloc((size_t)room, 1);
    recode = malloc((size_t)room);
    plans = malloc((size_t)room * bpm * sizeof(*plans));
    diffs = malloc((size_t)room * bpm * sizeof(*diffs));
    scratch.buf = malloc((size_t)room * bpm * MAX_BLOCK_BYTES + 16);
    if (!dirty || !recode || !plans || !diffs || !scratch.buf) { PyErr_NoMemory(); goto fail; }
    if (from_window(box, j, run->planes, run->window, wb.buf, blocks, first, dirty)) {
        PyErr_NoMemory();
        goto fail;
    }
    if (!memchr(dirty, 1, (size_t)run->count)) { /* the stamp changed no pixel */
        result = PyBytes_FromStringAndSize((const char *)d, in_len);
        goto done;
    }
    /* MCUs re-encoded: the changed ones, each one after a changed one (its DC
     * difference changes) and, if the run cannot be padded, spare ones past
     * it; the others are copied bit for bit. */
    int n = 0;
    for (int count = run->count;; count = room) {
        if (count > run->count && extend_run(run, count)) goto none;
        for (int m = 0; m < count; m++) {
            recode[m] = dirty[m] || (m > 0 && dirty[m - 1]) || m >= needed;
            if (recode[m] && !run->have[m]) goto none; /* cannot happen */
        }
        /* DC differences: from the previous MCU's (maybe changed) coefficients
         * when it was decoded, else from the index */
        int pred[MAX_COMPS];
        for (int m = 0; m < count; m++) {
            if (!run->have[m]) continue;
            if (m == 0 || !run->have[m - 1])
                for (int c = 0; c < MAX_COMPS; c++) pred[c] = run->state[first + m].pred[c];
            for (int i = m * bpm; i < (m + 1) * bpm; i++) {
                int ci = j->block_comp[i % bpm], dc = blocks[(Py_ssize_t)i * 64];
                diffs[i] = dc - pred[ci];
                pred[ci] = dc;
            }
        }
        n = plan_padding(j, &scratch, plans, blocks, diffs, recode, ends, start_bit, needed,
                         count);
        if (n != 0 || count == room) break;
    }
    if (n == -2) { PyErr_NoMemory(); goto fail; }
    if (n == -1) goto none;
    raw_finish(&scratch);
    int aligned = n > 0;
    uint64_t data_end = 0;
    if (!aligned) {
        /* No padding fits (dense blocks everywhere): shift the rest of the scan
         * instead, which needs where its last MCU ends, i.e. parsing it all. */
        n = needed;
        for (int i = 0; i < n * bpm; i++) plans[i].zrl = 0;
        if (learn(run, total)) goto none;
        data_end = run->state[total].pos;
    }
    uint64_t end_bit = ends[n - 1];

    Py_ssize_t head = stuffed_offset(j, d, (Py_ssize_t)(start_bit >> 3));
    Py_ssize_t tail = aligned ? stuffed_offset(j, d, (Py_ssize_t)((end_bit + 7) >> 3))
                              : j->scan_end;
    Writer w = {0};
    w.cap = head + (in_len - tail) + 2 * ((Py_ssize_t)n * bpm * 64 * 4 + 16);
    if (!aligned) w.cap += 2 * (Py_ssize_t)(data_end - end_bit) / 8 + 16;
    result = PyBytes_FromStringAndSize(NULL, w.cap);
    if (!result) goto fail;
    w.out = (uint8_t *)PyBytes_AS_STRING(result);
    memcpy(w.out, d, (size_t)head);
    w.n = head;
    int lead = (int)(start_bit & 7);
    if (lead) put_bits(&w, j->bits[start_bit >> 3] >> (8 - lead), lead);
    for (int m = 0; m < n; m++) {
        if (!recode[m]) {
            copy_bits(&w, j->bits, m ? ends[m - 1] : start_bit, ends[m]);
            continue;
        }
        for (int i = m * bpm; i < (m + 1) * bpm; i++)
            emit_block(&w, &scratch, j, j->block_comp[i % bpm], &plans[i]);
    }
    if (aligned) {
        int trail = (int)(end_bit & 7);
        if (trail) put_bits(&w, j->bits[end_bit >> 3] & ((1u << (8 - trail)) - 1), 8 - trail);
        if (w.nacc != 0) { /* cannot happen: the padding keeps the alignment */
            Py_DECREF(result);
            goto none;
        }
    } else {
        copy_bits(&w, j->bits, end_bit, data_end);
        if (w.nacc) put_bits(&w, 0xFF, 8 - w.nacc); /* pad with 1-bits, as encoders do */
    }
    memcpy(w.out + w.n, d + tail, (size_t)(in_len - tail));
    w.n += in_len - tail;
    if (_PyBytes_Resize(&result, w.n)) { result = NULL; goto fail; }
    goto done;
none:
    result = Py_None;
    Py_INCREF(result);
    goto done;
fail:
    Py_XDECREF(result);
    result = NULL;
done:
    free(plans);
    free(diffs);
    free(recode);
    free(dirty);
    free(scratch.buf);
    PyBuffer_Release(&wb);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS, "The run of MCUs covering a pixel box, and its pixels."},
    {"encode", py_encode, METH_VARARGS, "The JPEG with the run's changed pixels re-encoded."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dctsplice",
                                    "Re-encode a few MCUs of a baseline JPEG.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__dctsplice(void) {
    init_tables();
    return PyModule_Create(&module);
}
