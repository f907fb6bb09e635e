/*
 * ethox_asyncio.stack.wire._speedups: compiled twins of the stack's hottest stateless
 * functions (issue #9). Each one mirrors a pure-Python function that stays the
 * reference implementation and is selected instead of it at import (speedups.py);
 * tests/wire/test_speedups.py runs both over the same inputs and compares the
 * outputs, and CI runs the whole suite once with and once without this module
 * (ETHOX_NO_EXTENSIONS=1).
 *
 * Contract:
 * - ones_sum / checksum / verify (data, initial=0): wire/checksum.py's functions
 *   (RFC 1071). The same result for every input: a contiguous one-dimensional
 *   byte buffer (bytes, bytearray, memoryview; any length, odd and empty included)
 *   with an int initial >= 0 (of any size: IPv6 pseudo-header sums are 129-bit) is
 *   summed here; anything else (a negative initial, a non-int, a strided or
 *   multi-byte-item view, a call with other arguments) is handed to the Python
 *   reference (_py_ones_sum etc.), which gives its own result or exception.
 * - parse_tcp_frame(frame, mac, verify): interface.py's _py_parse_tcp_frame, the
 *   ingress hot branch (Ethernet + IPv4 without options and not a fragment, or IPv6
 *   without extension headers, carrying TCP) fused with the header decode of
 *   TcpHost.ingress_known. None for a frame the general path must see, else
 *   (key, seq, ack, flags, window, ts_val, ts_ecr, header_len, data, payload,
 *   checksum_ok). parse_tcp_segment(family, src, dst, data, verify): the TCP part
 *   alone (_py_parse_tcp_segment), for a segment whose IP layer was checked already.
 * - ts_frame(template, pseudo, partial, src_port, dst_port, seq, ack, flags, window,
 *   ts_val, ts_ecr, payload): tcp/host.py's _py_ts_frame, the frame headers of a
 *   segment whose only option is the aligned timestamp (RFC 7323 Appendix A), TCP
 *   checksum filled in (over the payload too) or only the folded pseudo-header sum.
 * - fill_ipv4(frame, header_sum, total, ident): ipv4.py's _py_fill_ipv4, the IPv4
 *   total length, identification and header checksum of a frame on a FramePath.
 *
 * No state, no allocation beyond the objects returned; plain CPython C API.
 * ETHOX_NO_EXTENSIONS set to anything but "" or "0" makes the import fail (the stack
 * is sans-IO and reads no environment itself: the module refuses to load instead).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ETH_HEADER_LEN 14
#define IPV4_HEADER_LEN 20
#define IPV6_HEADER_LEN 40
#define TCP_HEADER_LEN 20
#define TCP_HEADER_TS_LEN 32
#define TCP_CHECKSUM_OFFSET 16
#define IPPROTO_TCP_ 6
#define ALIGNED_TS_WORD 0x0101080Au /* NOP NOP kind 8 length 10, RFC 7323 Appendix A */

static PyObject *struct_error; /* struct.error: what the reference's pack_into raises */
static PyObject *const_ffff;   /* the int 0xFFFF */
static PyObject *const_4, *const_6; /* the address families */

/* --- RFC 1071 sums ---------------------------------------------------------------- */

static inline unsigned fold16(uint64_t s) {
    s = (s & 0xFFFFFFFFu) + (s >> 32);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    s = (s & 0xFFFFu) + (s >> 16);
    return (unsigned)s;
}

/*
 * The ones' complement sum of n bytes read as big-endian 16-bit words, the last one
 * padded with a zero byte when n is odd (RFC 1071 §4.1), folded to 16 bits: a value
 * congruent (mod 0xFFFF) to the reference's int.from_bytes(data) (<< 8 when odd),
 * and 0 exactly when every byte is zero (end-around carry never folds a nonzero sum
 * to 0). Summed in native byte order and swapped at the end (RFC 1071 §2(B): the
 * sum is byte-order independent).
 */
static unsigned buffer_sum(const uint8_t *p, Py_ssize_t n) {
    uint64_t s = 0;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        s += (w & 0xFFFFFFFFu) + (w >> 32);
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        s += w;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        s += w;
        p += 2;
        n -= 2;
    }
    if (n) {
#if PY_BIG_ENDIAN
        s += (uint64_t)p[0] << 8;
#else
        s += p[0];
#endif
    }
    unsigned f = fold16(s);
#if !PY_BIG_ENDIAN
    f = ((f & 0xFFu) << 8) | (f >> 8);
#endif
    return f;
}

/*
 * The reference's fold(T + I) (checksum.py: (T + I) % 0xFFFF, but 0xFFFF for a
 * nonzero multiple), T given as buffer_sum's t and I >= 0 as I % 0xFFFF and I != 0.
 */
static inline unsigned fold_sum(unsigned t, unsigned i_mod, int i_nonzero) {
    unsigned r = (t + i_mod) % 0xFFFFu;
    if (r == 0 && (t != 0 || i_nonzero))
        r = 0xFFFF;
    return r;
}

/* An int >= 0 as (value % 0xFFFF, value != 0): 0 done, 1 not an int >= 0, -1 error. */
static int int_parts(PyObject *o, unsigned *mod, int *nonzero) {
    int overflow;
    long long v;
    if (!PyLong_Check(o))
        return 1;
    v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v < 0)
            return 1;
        *mod = (unsigned)(v % 0xFFFF);
        *nonzero = v != 0;
        return 0;
    }
    if (overflow < 0)
        return 1;
    PyObject *r = PyNumber_Remainder(o, const_ffff);
    if (r == NULL)
        return -1;
    *mod = (unsigned)PyLong_AsUnsignedLong(r);
    Py_DECREF(r);
    if (PyErr_Occurred())
        return -1;
    *nonzero = 1;
    return 0;
}

/* A contiguous 1-D buffer of 1-byte items: 0 got it, 1 not one (the reference's). */
static int byte_buffer(PyObject *o, Py_buffer *view) {
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return 1;
    }
    if (view->ndim != 1 || view->itemsize != 1) {
        PyBuffer_Release(view);
        return 1;
    }
    return 0;
}

/* The call (data), (data, initial) or (data, initial=...): 0, else 1 (the reference). */
static int sum_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    PyObject **data, PyObject **initial) {
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    *initial = NULL;
    if (nkw == 0 && (nargs == 1 || nargs == 2)) {
        *data = args[0];
        if (nargs == 2)
            *initial = args[1];
        return 0;
    }
    if (nkw == 1 && nargs == 1 &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "initial") == 0) {
        *data = args[0];
        *initial = args[1];
        return 0;
    }
    return 1;
}

static PyObject *call_reference(const char *name, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *module = PyImport_ImportModule("ethox_asyncio.stack.wire.checksum");
    if (module == NULL)
        return NULL;
    PyObject *function = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    if (function == NULL)
        return NULL;
    PyObject *result = PyObject_Vectorcall(function, args, (size_t)nargs, kwnames);
    Py_DECREF(function);
    return result;
}

/* ones_sum of the arguments: 0 with *out set, 1 for the reference, -1 error. */
static int ones_sum_of(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                       unsigned *out) {
    PyObject *data, *initial;
    unsigned i_mod = 0;
    int i_nonzero = 0, rc;
    Py_buffer view;
    if (sum_args(args, nargs, kwnames, &data, &initial))
        return 1;
    if (initial != NULL && (rc = int_parts(initial, &i_mod, &i_nonzero)) != 0)
        return rc;
    if (byte_buffer(data, &view))
        return 1;
    unsigned t = buffer_sum(view.buf, view.len);
    PyBuffer_Release(&view);
    *out = fold_sum(t, i_mod, i_nonzero);
    return 0;
}

static PyObject *sp_ones_sum(PyObject *Py_UNUSED(self), PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    unsigned r;
    int rc = ones_sum_of(args, nargs, kwnames, &r);
    if (rc < 0)
        return NULL;
    if (rc > 0)
        return call_reference("_py_ones_sum", args, nargs, kwnames);
    return PyLong_FromUnsignedLong(r);
}

static PyObject *sp_checksum(PyObject *Py_UNUSED(self), PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    unsigned r;
    int rc = ones_sum_of(args, nargs, kwnames, &r);
    if (rc < 0)
        return NULL;
    if (rc > 0)
        return call_reference("_py_checksum", args, nargs, kwnames);
    return PyLong_FromUnsignedLong(~r & 0xFFFFu);
}

static PyObject *sp_verify(PyObject *Py_UNUSED(self), PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames) {
    unsigned r;
    int rc = ones_sum_of(args, nargs, kwnames, &r);
    if (rc < 0)
        return NULL;
    if (rc > 0)
        return call_reference("_py_verify", args, nargs, kwnames);
    return PyBool_FromLong(r == 0xFFFF);
}

/* --- ingress: the hot branch of Interface.ingress + TcpHost.ingress_known ---------- */

static inline unsigned be16(const uint8_t *p) { return ((unsigned)p[0] << 8) | p[1]; }

static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static PyObject *address_int(const uint8_t *p, int family) {
    if (family == 4)
        return PyLong_FromUnsignedLong(be32(p));
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(p, 16, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    return _PyLong_FromByteArray(p, 16, 0, 0); /* big-endian, unsigned */
#endif
}

/*
 * The TCP part (TcpHost's header decode, RFC 9293 §3.1 fixed header; RFC 7323
 * Appendix A: NOP NOP TS as the only option, data offset 8): the reference's
 * _py_parse_tcp_segment. The timestamps are decoded whenever the data offset is 8,
 * as its HEADER_TS unpack does; header_len 0 sends the segment to the full parse
 * (Segment.parse). `addr_mod` is (src + dst) % 0xFFFF for the pseudo-header.
 */
static PyObject *tcp_result(PyObject *family, PyObject *src, PyObject *dst, PyObject *data,
                            const uint8_t *d, Py_ssize_t n, int verify, unsigned addr_mod) {
    PyObject *key = NULL, *payload = NULL, *ts_val = NULL, *ts_ecr = NULL, *result = NULL;
    unsigned header_len;
    int has_ts = 0, checksum_ok = 1;
    if (n >= TCP_HEADER_TS_LEN && d[12] == 0x80) {
        has_ts = 1;
        header_len = be32(d + 20) == ALIGNED_TS_WORD ? TCP_HEADER_TS_LEN : 0;
    } else if (n >= TCP_HEADER_LEN) {
        header_len = d[12] == 0x50 ? TCP_HEADER_LEN : 0;
    } else {
        Py_RETURN_NONE;
    }
    if (verify) {
        /* RFC 9293 §3.1: the segment plus the pseudo-header (addresses, protocol, TCP
         * length; RFC 8200 §8.1 for IPv6) sums to 0xFFFF. */
        unsigned pseudo = (unsigned)((addr_mod + IPPROTO_TCP_ + (uint64_t)n) % 0xFFFF);
        checksum_ok = fold_sum(buffer_sum(d, n), pseudo, 1) == 0xFFFF;
    }
    key = Py_BuildValue("(OOIOI)", family, dst, be16(d + 2), src, be16(d));
    if (key == NULL)
        goto done;
    payload = header_len ? PySequence_GetSlice(data, header_len, n) : Py_NewRef(data);
    if (payload == NULL)
        goto done;
    if (has_ts) {
        ts_val = PyLong_FromUnsignedLong(be32(d + 24));
        ts_ecr = PyLong_FromUnsignedLong(be32(d + 28));
        if (ts_val == NULL || ts_ecr == NULL)
            goto done;
    } else {
        ts_val = Py_NewRef(Py_None);
        ts_ecr = Py_NewRef(Py_None);
    }
    result = Py_BuildValue("(OkkIIOOIOOO)", key, (unsigned long)be32(d + 4),
                           (unsigned long)be32(d + 8), (unsigned)d[13], be16(d + 14), ts_val,
                           ts_ecr, header_len, data, payload,
                           checksum_ok ? Py_True : Py_False);
done:
    Py_XDECREF(key);
    Py_XDECREF(payload);
    Py_XDECREF(ts_val);
    Py_XDECREF(ts_ecr);
    return result;
}

static PyObject *sp_parse_tcp_segment(PyObject *Py_UNUSED(self), PyObject *const *args,
                                      Py_ssize_t nargs) {
    Py_buffer db;
    unsigned src_mod = 0, dst_mod = 0;
    int nonzero, verify, rc;
    PyObject *result;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_tcp_segment(family, src, dst, data, verify)");
        return NULL;
    }
    if ((verify = PyObject_IsTrue(args[4])) < 0)
        return NULL;
    if (verify) {
        if ((rc = int_parts(args[1], &src_mod, &nonzero)) == 0)
            rc = int_parts(args[2], &dst_mod, &nonzero);
        if (rc) {
            if (rc > 0)
                PyErr_SetString(PyExc_ValueError, "addresses are ints >= 0");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[3], &db, PyBUF_SIMPLE) < 0)
        return NULL;
    result = tcp_result(args[0], args[1], args[2], args[3], db.buf, db.len, verify,
                        (src_mod + dst_mod) % 0xFFFF);
    PyBuffer_Release(&db);
    return result;
}

static PyObject *sp_parse_tcp_frame(PyObject *Py_UNUSED(self), PyObject *const *args,
                                    Py_ssize_t nargs) {
    Py_buffer fb, mb;
    PyObject *result = NULL, *src = NULL, *dst = NULL, *view = NULL, *data = NULL;
    const uint8_t *f, *addrs; /* addrs: source then destination, contiguous */
    Py_ssize_t size, start, end;
    int family, mac_ok, verify;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_tcp_frame(frame, mac, verify)");
        return NULL;
    }
    if ((verify = PyObject_IsTrue(args[2])) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &fb, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &mb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&fb);
        return NULL;
    }
    f = fb.buf;
    size = fb.len;
    mac_ok = mb.len == 6 && size >= 6 && memcmp(f, mb.buf, 6) == 0;
    PyBuffer_Release(&mb);

    if (size >= ETH_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN && f[12] == 0x08 &&
        f[13] == 0x00 && f[14] == 0x45) {
        /* RFC 791 §3.1: version 4 without options (IHL 5), TCP, no MF and fragment
         * offset 0, a total length within the frame, and a header checksum that
         * verifies (the 20 bytes sum to 0xFFFF, RFC 1071: the reference checks that
         * they are, as one integer, a multiple of 0xFFFF; never 0: the first is 0x45,
         * so buffer_sum's 0 cannot occur). */
        unsigned total = be16(f + 16), frag = be16(f + 20), h;
        if (f[23] != IPPROTO_TCP_ || (frag & 0x3FFF) || !mac_ok ||
            total < IPV4_HEADER_LEN + TCP_HEADER_LEN || (Py_ssize_t)total > size - 14)
            goto general;
        h = buffer_sum(f + ETH_HEADER_LEN, IPV4_HEADER_LEN);
        if (h != 0xFFFF)
            goto general;
        family = 4;
        start = ETH_HEADER_LEN + IPV4_HEADER_LEN;
        end = ETH_HEADER_LEN + total;
        addrs = f + 26;
    } else if (size >= ETH_HEADER_LEN + IPV6_HEADER_LEN + TCP_HEADER_LEN && f[12] == 0x86 &&
               f[13] == 0xDD && (f[14] >> 4) == 6 && f[20] == IPPROTO_TCP_) {
        /* RFC 8200 §3: version 6, Next Header TCP (no extension header), a payload
         * length that holds a TCP header and lies within the frame. */
        unsigned length = be16(f + 18);
        if (length < TCP_HEADER_LEN || (Py_ssize_t)length > size - 54 || !mac_ok)
            goto general;
        family = 6;
        start = ETH_HEADER_LEN + IPV6_HEADER_LEN;
        end = start + length;
        addrs = f + 22;
    } else {
        goto general;
    }
    src = address_int(addrs, family);
    dst = address_int(addrs + (family == 4 ? 4 : 16), family);
    if (src == NULL || dst == NULL)
        goto done;
    view = PyMemoryView_FromObject(args[0]);
    if (view == NULL)
        goto done;
    data = PySequence_GetSlice(view, start, end);
    if (data == NULL)
        goto done;
    result = tcp_result(family == 4 ? const_4 : const_6, src, dst, data, f + start, end - start, verify,
                        verify ? buffer_sum(addrs, family == 4 ? 8 : 32) : 0);
done:
    Py_XDECREF(src);
    Py_XDECREF(dst);
    Py_XDECREF(view);
    Py_XDECREF(data);
    PyBuffer_Release(&fb);
    return result;
general:
    PyBuffer_Release(&fb);
    Py_RETURN_NONE;
}

/* --- egress: the timestamps-only TCP header on a frame path, the IPv4 fields -------- */

/* An int in [0, max] as struct.pack's "H"/"B"/"I" takes it: -1 with struct.error. */
static int packed_uint(PyObject *o, unsigned long max, const char *what,
                       unsigned long *out) {
    if (!PyLong_Check(o)) {
        PyErr_Format(struct_error, "required argument is not an integer (%s)", what);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < 0 || (unsigned long long)v > max) {
        PyErr_Format(struct_error, "%s out of range 0 <= %s <= %lu", what, what, max);
        return -1;
    }
    *out = (unsigned long)v;
    return 0;
}

/* seq & 0xFFFFFFFF for any int, as the reference masks it. */
static int masked32(PyObject *o, uint32_t *out) {
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "sequence numbers are ints");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLongMask(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A non-negative int as (value % 0xFFFF): -1 with ValueError for anything else. */
static int sum_mod(PyObject *o, const char *what, unsigned *mod) {
    int nonzero, rc = int_parts(o, mod, &nonzero);
    if (rc > 0)
        PyErr_Format(PyExc_ValueError, "%s must be an int >= 0", what);
    return rc ? -1 : 0;
}

static inline void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static PyObject *sp_ts_frame(PyObject *Py_UNUSED(self), PyObject *const *args,
                             Py_ssize_t nargs) {
    unsigned long src_port, dst_port, flags, window, ts_val, ts_ecr = 0;
    uint32_t seq, ack;
    unsigned pseudo_mod;
    Py_buffer tb, pb;
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError,
                        "ts_frame(template, pseudo, partial, src_port, dst_port, seq, ack, "
                        "flags, window, ts_val, ts_ecr, payload)");
        return NULL;
    }
    int partial = PyObject_IsTrue(args[2]);
    if (partial < 0 || sum_mod(args[1], "pseudo", &pseudo_mod) < 0 ||
        packed_uint(args[3], 0xFFFF, "src_port", &src_port) < 0 ||
        packed_uint(args[4], 0xFFFF, "dst_port", &dst_port) < 0 ||
        masked32(args[5], &seq) < 0 || masked32(args[6], &ack) < 0 ||
        packed_uint(args[7], 0xFF, "flags", &flags) < 0 ||
        packed_uint(args[8], 0xFFFF, "window", &window) < 0 ||
        packed_uint(args[9], 0xFFFFFFFFu, "ts_val", &ts_val) < 0)
        return NULL;
    /* The reference packs `ts_ecr or 0`. */
    if (args[10] != Py_None && packed_uint(args[10], 0xFFFFFFFFu, "ts_ecr", &ts_ecr) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &tb, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[11], &pb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&tb);
        return NULL;
    }
    Py_ssize_t offset = tb.len;
    PyObject *frame = PyByteArray_FromStringAndSize(NULL, offset + TCP_HEADER_TS_LEN);
    if (frame == NULL)
        goto out;
    uint8_t *buf = (uint8_t *)PyByteArray_AS_STRING(frame);
    memcpy(buf, tb.buf, (size_t)offset);
    uint8_t *h = buf + offset;
    /* The pseudo-header sum with the TCP length (RFC 9293 §3.1), folded: never 0 as
     * a sum (the length is at least 32), so 0xFFFF stands for a multiple. */
    unsigned pseudo = (unsigned)((pseudo_mod + TCP_HEADER_TS_LEN + (uint64_t)pb.len) % 0xFFFF);
    unsigned value = pseudo ? pseudo : 0xFFFF;
    put16(h, (unsigned)src_port);
    put16(h + 2, (unsigned)dst_port);
    put32(h + 4, seq);
    put32(h + 8, ack);
    h[12] = 0x80; /* data offset 8 words */
    h[13] = (uint8_t)flags;
    put16(h + 14, (unsigned)window);
    put16(h + TCP_CHECKSUM_OFFSET, partial ? value : 0);
    put16(h + 18, 0); /* urgent pointer */
    put32(h + 20, ALIGNED_TS_WORD);
    put32(h + 24, (uint32_t)ts_val);
    put32(h + 28, (uint32_t)ts_ecr);
    if (!partial) {
        /* The reference: checksum(header, ones_sum(payload, pseudo)). */
        unsigned s = fold_sum(buffer_sum(pb.buf, pb.len), pseudo, 1);
        s = fold_sum(buffer_sum(h, TCP_HEADER_TS_LEN), s % 0xFFFF, 1);
        put16(h + TCP_CHECKSUM_OFFSET, ~s & 0xFFFFu);
    }
out:
    PyBuffer_Release(&tb);
    PyBuffer_Release(&pb);
    return frame;
}

static PyObject *sp_fill_ipv4(PyObject *Py_UNUSED(self), PyObject *const *args,
                              Py_ssize_t nargs) {
    unsigned long total, ident;
    unsigned header_mod;
    int header_nonzero;
    Py_buffer fb;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fill_ipv4(frame, header_sum, total, ident)");
        return NULL;
    }
    int rc = int_parts(args[1], &header_mod, &header_nonzero);
    if (rc) {
        if (rc > 0)
            PyErr_SetString(PyExc_ValueError, "header_sum must be an int >= 0");
        return NULL;
    }
    if (packed_uint(args[2], 0xFFFF, "total", &total) < 0 ||
        packed_uint(args[3], 0xFFFF, "ident", &ident) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &fb, PyBUF_WRITABLE) < 0)
        return NULL;
    if (fb.len < ETH_HEADER_LEN + 12) {
        PyBuffer_Release(&fb);
        PyErr_Format(struct_error, "fill_ipv4 requires a buffer of at least %d bytes",
                     ETH_HEADER_LEN + 12);
        return NULL;
    }
    uint8_t *ip = (uint8_t *)fb.buf + ETH_HEADER_LEN;
    put16(ip + 2, (unsigned)total);
    put16(ip + 4, (unsigned)ident);
    /* RFC 1071: the zeroed fields' sum plus the two just written, complemented
     * (RFC 791 §3.1 header checksum). */
    unsigned s = fold_sum((unsigned)total, (header_mod + (unsigned)ident) % 0xFFFF,
                          header_nonzero || ident);
    put16(ip + 10, ~s & 0xFFFFu);
    PyBuffer_Release(&fb);
    Py_RETURN_NONE;
}

/* --- module --------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"ones_sum", (PyCFunction)(void (*)(void))sp_ones_sum, METH_FASTCALL | METH_KEYWORDS,
     "ones_sum(data, initial=0): wire/checksum.py's, compiled."},
    {"checksum", (PyCFunction)(void (*)(void))sp_checksum, METH_FASTCALL | METH_KEYWORDS,
     "checksum(data, initial=0): wire/checksum.py's, compiled."},
    {"verify", (PyCFunction)(void (*)(void))sp_verify, METH_FASTCALL | METH_KEYWORDS,
     "verify(data, initial=0): wire/checksum.py's, compiled."},
    {"parse_tcp_frame", (PyCFunction)(void (*)(void))sp_parse_tcp_frame, METH_FASTCALL,
     "parse_tcp_frame(frame, mac, verify): interface.py's _py_parse_tcp_frame, compiled."},
    {"parse_tcp_segment", (PyCFunction)(void (*)(void))sp_parse_tcp_segment, METH_FASTCALL,
     "parse_tcp_segment(family, src, dst, data, verify): interface.py's "
     "_py_parse_tcp_segment, compiled."},
    {"ts_frame", (PyCFunction)(void (*)(void))sp_ts_frame, METH_FASTCALL,
     "ts_frame(template, pseudo, partial, src_port, dst_port, seq, ack, flags, window, "
     "ts_val, ts_ecr, payload): tcp/host.py's _py_ts_frame, compiled."},
    {"fill_ipv4", (PyCFunction)(void (*)(void))sp_fill_ipv4, METH_FASTCALL,
     "fill_ipv4(frame, header_sum, total, ident): ipv4.py's _py_fill_ipv4, compiled."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"Compiled twins of the stack's hottest stateless functions (issue #9).\n\n"
"Each mirrors a pure-Python reference (checksum.py's ones_sum/checksum/verify,\n"
"interface.py's _py_parse_tcp_frame and _py_parse_tcp_segment, tcp/host.py's\n"
"_py_ts_frame, ipv4.py's _py_fill_ipv4) with the same outputs;\n"
"ethox_asyncio.stack.wire.speedups selects it. The import fails when ETHOX_NO_EXTENSIONS is set (to anything but '' or '0').");

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ethox_asyncio.stack.wire._speedups",
    .m_doc = module_doc,
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    const char *disabled = getenv("ETHOX_NO_EXTENSIONS");
    if (disabled != NULL && disabled[0] != '\0' && strcmp(disabled, "0") != 0) {
        PyErr_SetString(PyExc_ImportError,
                        "ethox_asyncio.stack.wire._speedups: disabled by ETHOX_NO_EXTENSIONS");
        return NULL;
    }
    PyObject *module = PyModule_Create(&moduledef);
    if (module == NULL)
        return NULL;
    PyObject *struct_module = PyImport_ImportModule("struct");
    if (struct_module == NULL)
        goto fail;
    struct_error = PyObject_GetAttrString(struct_module, "error");
    Py_DECREF(struct_module);
    const_ffff = PyLong_FromLong(0xFFFF);
    const_4 = PyLong_FromLong(4);
    const_6 = PyLong_FromLong(6);
    if (struct_error == NULL || const_ffff == NULL || const_4 == NULL || const_6 == NULL)
        goto fail;
    return module;
fail:
    Py_DECREF(module);
    return NULL;
}
