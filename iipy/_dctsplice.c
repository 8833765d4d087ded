/*
 * _dctsplice: re-encode a few MCUs of a baseline JPEG without decoding the rest.
 *
 * Why this exists: a watermarked tile must differ from the stored one, but only
 * in the handful of 8x8 blocks the mark covers.  Decoding and re-encoding a
 * whole 256x256 tile costs ~400 us, most of it entropy decoding; this module
 * entropy-decodes only up to the last block the mark touches, hands those
 * blocks' coefficients to numpy (iipy/markjpeg.py does the pixel arithmetic,
 * the watermark formula included), re-encodes that run of MCUs and copies the
 * rest of the stored bytes unchanged.  The re-encoded run is padded with ZRL
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
 * decode(jpeg, x0, y0, x1, y1, resume) -> None or
 *     (width, height, hmax, vmax, mcus_x, mcus_y, qtables, first, needed, count,
 *      start_bit, ends, preds, coeffs, rows)
 *   resume: b"" (parse from the start) or one 5 x int64 record of `rows` from
 *   an earlier call on the same data, at or before the run: the parse starts
 *   there.  rows: such records (MCU index, bit, 3 DC predictors) for each
 *   MCU-row start the parse passed, for the caller to keep as an index.
 *   The run of MCUs from the first covering pixel box [x0,x1)x[y0,y1) to the
 *   last, plus the one after (its DC difference must be re-coded): `needed`
 *   MCUs from MCU `first`, then up to SLACK more (`count` in all) to pad into.
 *   start_bit: where the run starts in the unstuffed scan; ends: uint64 end bit
 *   of each MCU; preds: DC predictors at the start; qtables: one 64-value tuple
 *   per component, natural order; coeffs: int16, count x blocks-per-MCU x 64,
 *   natural (row-major) order.
 * encode(jpeg, first, needed, start_bit, ends, preds, coeffs, dirty) -> None or bytes
 *   The JPEG with the run's changed MCUs (dirty: one byte per MCU) re-encoded
 *   from coeffs, the others copied (as many MCUs of the run as the padding
 *   needs, at least `needed`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LUT_BITS 9
#define MAX_COMPS 3
#define MAX_BLOCKS 10 /* per MCU: 4 luma + 2 chroma at most here */
#define SLACK 16     /* MCUs decoded past the needed run, to pad into if needed */

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
        if (code > (1 << l)) return -1; /* over-subscribed */
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

static PyObject *qtables_tuple(const Jpeg *j) {
    PyObject *t = PyTuple_New(j->ncomp);
    if (!t) return NULL;
    for (int i = 0; i < j->ncomp; i++) {
        PyObject *q = PyTuple_New(64);
        if (!q) { Py_DECREF(t); return NULL; }
        for (int k = 0; k < 64; k++) PyTuple_SET_ITEM(q, k, PyLong_FromLong(j->qt[j->comp[i].tq][k]));
        PyTuple_SET_ITEM(t, i, q);
    }
    return t;
}

static PyObject *py_decode(PyObject *self, PyObject *args) {
    Py_buffer in, rs;
    int x0, y0, x1, y1;
    Jpeg j;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*iiiiy*", &in, &x0, &y0, &x1, &y1, &rs)) return NULL;
    const uint8_t *d = in.buf;
    j.bits = NULL;
    if (parse(&j, d, in.len) || unstuff(&j, d)) goto none;
    int mw = 8 * j.hmax, mh = 8 * j.vmax;
    if (x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0 || x1 > j.width || y1 > j.height) goto none;
    int first = (y0 / mh) * j.mcus_x + x0 / mw;
    int last = ((y1 - 1) / mh) * j.mcus_x + (x1 - 1) / mw;
    int total = j.mcus_x * j.mcus_y;
    if (last + 1 < total) last++;
    int needed = last - first + 1;
    last = last + SLACK < total - 1 ? last + SLACK : total - 1; /* spare MCUs for padding */
    int count = last - first + 1;
    int bpm = j.blocks_per_mcu;
    PyObject *coeffs = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count * bpm * 64 * 2);
    if (!coeffs) goto fail;
    int16_t *out = (int16_t *)PyBytes_AS_STRING(coeffs);
    PyObject *ends = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)count * 8);
    if (!ends) { Py_DECREF(coeffs); goto fail; }
    uint64_t *end_at = (uint64_t *)PyBytes_AS_STRING(ends);
    int pred[MAX_COMPS] = {0, 0, 0}, start_pred[MAX_COMPS] = {0, 0, 0};
    uint64_t pos = 0, start_bit = 0, limit = (uint64_t)j.nbytes * 8;
    int m0 = 0;
    if (rs.len == 5 * 8) { /* resume: a state recorded at an MCU-row start by a former call */
        const int64_t *r = rs.buf;
        if (r[0] < 0 || r[0] > first || r[0] % j.mcus_x || r[1] < 0 || (uint64_t)r[1] > limit)
            goto bad;
        m0 = (int)r[0];
        pos = (uint64_t)r[1];
        for (int c = 0; c < MAX_COMPS; c++) pred[c] = (int)r[2 + c];
    } else if (rs.len != 0) {
        goto bad;
    }
    /* the state at each MCU-row start passed, for the caller's index */
    int nrows = last / j.mcus_x - m0 / j.mcus_x + 1;
    PyObject *rows = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nrows * 5 * 8);
    if (!rows) { Py_DECREF(coeffs); Py_DECREF(ends); goto fail; }
    int64_t *row_at = (int64_t *)PyBytes_AS_STRING(rows);
    int nrow = 0;
    for (int m = m0; m <= last; m++) {
        if (m % j.mcus_x == 0 && nrow < nrows) {
            int64_t *r = row_at + 5 * nrow++;
            r[0] = m;
            r[1] = (int64_t)pos;
            for (int c = 0; c < MAX_COMPS; c++) r[2 + c] = pred[c];
        }
        if (m == first) {
            start_bit = pos;
            memcpy(start_pred, pred, sizeof(pred));
        }
        for (int b = 0; b < bpm; b++) {
            int ci = j.block_comp[b];
            int16_t *dst = m >= first ? out + ((Py_ssize_t)(m - first) * bpm + b) * 64 : NULL;
            if (decode_block(&j, ci, &pos, &pred[ci], dst)) { Py_DECREF(rows); goto bad; }
        }
        if (pos > limit) { Py_DECREF(rows); goto bad; }
        if (m >= first) end_at[m - first] = pos;
    }
    if (_PyBytes_Resize(&rows, (Py_ssize_t)nrow * 5 * 8)) { Py_DECREF(coeffs); Py_DECREF(ends); goto fail; }
    PyObject *qt = qtables_tuple(&j);
    if (!qt) { Py_DECREF(coeffs); Py_DECREF(ends); Py_DECREF(rows); goto fail; }
    PyObject *preds = j.ncomp == 3 ? Py_BuildValue("(iii)", start_pred[0], start_pred[1], start_pred[2])
                                   : Py_BuildValue("(i)", start_pred[0]);
    if (!preds) { Py_DECREF(coeffs); Py_DECREF(ends); Py_DECREF(qt); Py_DECREF(rows); goto fail; }
    result = Py_BuildValue("(iiiiiiNiiiKNNNN)", j.width, j.height, j.hmax, j.vmax, j.mcus_x,
                           j.mcus_y, qt, first, needed, count, (unsigned long long)start_bit,
                           ends, preds, coeffs, rows);
    goto done;
bad:
    Py_DECREF(coeffs);
    Py_DECREF(ends);
none:
    result = Py_None;
    Py_INCREF(result);
    goto done;
fail:
    result = NULL;
done:
    free(j.bits);
    PyBuffer_Release(&in);
    PyBuffer_Release(&rs);
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
    int last_nz; /* zigzag index of the last non-zero AC (0: none) */
    int zrl;     /* ZRL codes to add before the EOB (alignment padding) */
} BlockPlan;

static inline int category(int v) {
    int a = v < 0 ? -v : v, s = 0;
    while (a) { s++; a >>= 1; }
    return s;
}

/* Bits of one block; -1 if a symbol is not in the tables or out of range. */
static long block_bits(const Jpeg *j, int ci, const int16_t *blk, int diff, BlockPlan *plan) {
    const Huff *dc = &j->dc[j->comp[ci].td], *ac = &j->ac[j->comp[ci].ta];
    int s = category(diff);
    if (s > 11 || !dc->size[s]) return -1;
    long bits = dc->size[s] + s;
    int run = 0, last_nz = 0;
    for (int k = 1; k < 64; k++) {
        int v = blk[ZIGZAG[k]];
        if (!v) { run++; continue; }
        while (run > 15) {
            if (!ac->size[0xF0]) return -1;
            bits += ac->size[0xF0];
            run -= 16;
        }
        int sz = category(v);
        if (sz > 10) return -1;
        int sym = (run << 4) | sz;
        if (!ac->size[sym]) return -1;
        bits += ac->size[sym] + sz;
        run = 0;
        last_nz = k;
    }
    if (last_nz < 63) {
        if (!ac->size[0x00]) return -1;
        bits += ac->size[0x00];
    }
    plan->last_nz = last_nz;
    plan->zrl = 0;
    return bits;
}

static void write_block(Writer *w, const Jpeg *j, int ci, const int16_t *blk, int diff,
                        const BlockPlan *plan) {
    const Huff *dc = &j->dc[j->comp[ci].td], *ac = &j->ac[j->comp[ci].ta];
    int s = category(diff);
    put_bits(w, dc->code[s], dc->size[s]);
    if (s) put_bits(w, (uint32_t)(diff < 0 ? diff - 1 : diff), s);
    int run = 0;
    for (int k = 1; k <= plan->last_nz; k++) {
        int v = blk[ZIGZAG[k]];
        if (!v) { run++; continue; }
        while (run > 15) {
            put_bits(w, ac->code[0xF0], ac->size[0xF0]);
            run -= 16;
        }
        int sz = category(v), sym = (run << 4) | sz;
        put_bits(w, ac->code[sym], ac->size[sym]);
        put_bits(w, (uint32_t)(v < 0 ? v - 1 : v), sz);
        run = 0;
    }
    for (int z = 0; z < plan->zrl; z++) put_bits(w, ac->code[0xF0], ac->size[0xF0]);
    if (plan->last_nz < 63) put_bits(w, ac->code[0x00], ac->size[0x00]);
}

/* Choose ZRL padding (0..capacity per block) so that a run of n MCUs,
 * needed <= n <= count, re-encodes to its old length modulo 8: a dynamic
 * programme over residues, block by block.  Returns n, or -1. */
static int plan_padding(const Jpeg *j, BlockPlan *plans, const long *mcu_bits,
                        const uint64_t *ends, uint64_t start_bit, int needed, int count) {
    int bpm = j->blocks_per_mcu, nblocks = count * bpm, n = -1, r;
    int8_t (*choice)[8] = malloc((size_t)(nblocks + 1) * sizeof(*choice));
    int8_t (*from)[8] = malloc((size_t)(nblocks + 1) * sizeof(*from));
    if (!choice || !from) { free(choice); free(from); return -1; }
    memset(choice, -1, (size_t)(nblocks + 1) * sizeof(*choice));
    choice[0][0] = 0;
    long bits = 0;
    int need = 0;
    for (int i = 0; i < nblocks; i++) {
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
            bits += mcu_bits[m - 1];
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
            if (i == 1) break;
        }
    }
    free(choice);
    free(from);
    return n;
}

static PyObject *py_encode(PyObject *self, PyObject *args) {
    Py_buffer in, cf, eb, db;
    int first, needed;
    unsigned long long start_bit;
    PyObject *preds_obj;
    Jpeg j;
    BlockPlan *plans = NULL;
    int *diffs = NULL;
    uint8_t *recode = NULL;
    long *mcu_bits = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*iiKy*Oy*y*", &in, &first, &needed, &start_bit, &eb,
                          &preds_obj, &cf, &db))
        return NULL;
    const uint8_t *d = in.buf;
    j.bits = NULL;
    if (parse(&j, d, in.len) || unstuff(&j, d)) goto none;
    int bpm = j.blocks_per_mcu;
    if (cf.len % (bpm * 128) != 0 || cf.len == 0) goto none;
    int count = (int)(cf.len / (bpm * 128)), nblocks = count * bpm;
    if (eb.len != (Py_ssize_t)count * 8 || db.len != count || needed < 1 || needed > count)
        goto none;
    /* MCUs re-encoded: the changed ones, each one after a changed one (its DC
     * difference changes) and the spare ones past the run (for padding);
     * the others are copied bit for bit. */
    const uint8_t *dirty = db.buf;
    recode = malloc((size_t)count);
    if (!recode) { PyErr_NoMemory(); goto fail; }
    for (int m = 0; m < count; m++)
        recode[m] = dirty[m] || (m > 0 && dirty[m - 1]) || m >= needed;
    if (first < 0 || (long)first + count > (long)j.mcus_x * j.mcus_y) goto none;
    const uint64_t *ends = eb.buf;
    for (int m = 0; m < count; m++)
        if (ends[m] < start_bit || ends[m] > (uint64_t)j.nbytes * 8) goto none;
    if (!PyTuple_Check(preds_obj) || PyTuple_GET_SIZE(preds_obj) != j.ncomp) goto none;
    int pred[MAX_COMPS];
    for (int i = 0; i < j.ncomp; i++) {
        pred[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(preds_obj, i));
        if (PyErr_Occurred()) goto fail;
    }
    const int16_t *blocks = cf.buf;
    plans = malloc((size_t)nblocks * sizeof(*plans));
    diffs = malloc((size_t)nblocks * sizeof(*diffs));
    mcu_bits = calloc((size_t)count, sizeof(*mcu_bits));
    if (!plans || !diffs || !mcu_bits) { PyErr_NoMemory(); goto fail; }
    for (int i = 0; i < nblocks; i++) {
        int ci = j.block_comp[i % bpm];
        int dc = blocks[(Py_ssize_t)i * 64];
        diffs[i] = dc - pred[ci];
        pred[ci] = dc;
        int m = i / bpm;
        if (recode[m]) {
            long b = block_bits(&j, ci, blocks + (Py_ssize_t)i * 64, diffs[i], &plans[i]);
            if (b < 0) goto none;
            mcu_bits[m] += b;
        } else {
            plans[i].last_nz = 63; /* no room: copied as it is */
            plans[i].zrl = 0;
            mcu_bits[m] = (long)(ends[m] - (m ? ends[m - 1] : start_bit));
        }
    }
    int n = plan_padding(&j, plans, mcu_bits, ends, start_bit, needed, count);
    int aligned = n > 0;
    uint64_t data_end = 0;
    if (!aligned) {
        /* No padding fits (dense blocks everywhere): shift the rest of the scan
         * instead, which needs where its last MCU ends, i.e. parsing it all. */
        n = needed;
        for (int i = 0; i < n * bpm; i++) plans[i].zrl = 0;
        int dummy[MAX_COMPS] = {0, 0, 0};
        uint64_t pos = ends[n - 1];
        long total = (long)j.mcus_x * j.mcus_y;
        for (long m = first + n; m < total; m++)
            for (int b = 0; b < bpm; b++)
                if (decode_block(&j, j.block_comp[b], &pos, &dummy[j.block_comp[b]], NULL))
                    goto none;
        if (pos > (uint64_t)j.nbytes * 8) goto none;
        data_end = pos;
    }
    uint64_t end_bit = ends[n - 1];

    Py_ssize_t head = stuffed_offset(&j, d, (Py_ssize_t)(start_bit >> 3));
    Py_ssize_t tail = aligned ? stuffed_offset(&j, d, (Py_ssize_t)((end_bit + 7) >> 3))
                              : j.scan_end;
    Writer w = {0};
    w.cap = head + (in.len - tail) + 2 * ((Py_ssize_t)n * bpm * 64 * 4 + 16);
    if (!aligned) w.cap += 2 * (Py_ssize_t)(data_end - end_bit) / 8 + 16;
    result = PyBytes_FromStringAndSize(NULL, w.cap);
    if (!result) goto fail;
    w.out = (uint8_t *)PyBytes_AS_STRING(result);
    memcpy(w.out, d, (size_t)head);
    w.n = head;
    int lead = (int)(start_bit & 7);
    if (lead) put_bits(&w, j.bits[start_bit >> 3] >> (8 - lead), lead);
    for (int m = 0; m < n; m++) {
        if (!recode[m]) {
            copy_bits(&w, j.bits, m ? ends[m - 1] : start_bit, ends[m]);
            continue;
        }
        for (int i = m * bpm; i < (m + 1) * bpm; i++)
            write_block(&w, &j, j.block_comp[i % bpm], blocks + (Py_ssize_t)i * 64, diffs[i],
                        &plans[i]);
    }
    if (aligned) {
        int trail = (int)(end_bit & 7);
        if (trail) put_bits(&w, j.bits[end_bit >> 3] & ((1u << (8 - trail)) - 1), 8 - trail);
        if (w.nacc != 0) { /* cannot happen: the padding keeps the alignment */
            Py_DECREF(result);
            goto none;
        }
    } else {
        copy_bits(&w, j.bits, end_bit, data_end);
        if (w.nacc) put_bits(&w, 0xFF, 8 - w.nacc); /* pad with 1-bits, as encoders do */
    }
    memcpy(w.out + w.n, d + tail, (size_t)(in.len - tail));
    w.n += in.len - tail;
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
    free(mcu_bits);
    free(recode);
    free(j.bits);
    PyBuffer_Release(&in);
    PyBuffer_Release(&cf);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&db);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS, "Coefficients of the MCUs covering a pixel box."},
    {"encode", py_encode, METH_VARARGS, "The JPEG with a run of MCUs re-encoded."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dctsplice",
                                    "Re-encode a few MCUs of a baseline JPEG.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__dctsplice(void) { return PyModule_Create(&module); }
