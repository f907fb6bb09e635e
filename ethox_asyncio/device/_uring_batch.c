/*
 * ethox_asyncio.device._uring_batch: one io_uring per descriptor that receives and
 * sends whole frames in batches, one Python call per batch.
 *
 * Contract (the module docstring, RING_DOC below, says the same for Python users):
 *
 * - Ring(fd, *, rx_buffers, tx_buffers, buffer_len, defer_taskrun=False) drives one
 *   pollable descriptor on which every read() returns one frame and every write()
 *   sends one (a TAP; a datagram socket in tests). The Ring does not own `fd`: close
 *   it after Ring.close(). Plain system calls only (io_uring_setup(2),
 *   io_uring_enter(2), io_uring_register(2)); no liburing.
 * - Receive: one anonymous mapping of rx_buffers x buffer_len bytes, registered as a
 *   provided-buffer ring (IORING_REGISTER_PBUF_RING, buffer group 0), and ONE
 *   multishot read (IORING_OP_READ_MULTISHOT, IOSQE_BUFFER_SELECT, len 0) armed on
 *   `fd`. The kernel picks a buffer per frame; the CQE names it (flags >> 16). Frames
 *   are read by the poll handler in the ring owner's own task (task work), never by
 *   io-wq worker threads. The multishot ends when a CQE lacks IORING_CQE_F_MORE
 *   (ENOBUFS when every buffer is out, an error, a full CQ ring); it is re-armed by
 *   the next receive() or transmit() that finds buffers in the kernel's hands
 *   (`rearms` counts it; `enobufs` counts ENOBUFS ends, which lose nothing: the
 *   frames wait in the TAP queue).
 * - receive(max_frames) -> list[memoryview]: gives the buffers of the previous
 *   receive() back to the kernel (one store each, one release store of the ring
 *   tail), harvests every completion (frames beyond max_frames wait in an internal
 *   FIFO, in arrival order, none lost) and returns up to max_frames writable views of
 *   exactly the frame bytes, oldest first. A view is valid until the next receive():
 *   after that its buffer belongs to the kernel again and is overwritten by later
 *   frames (the view is not invalidated: copy what you keep). Views keep the receive
 *   mapping alive, so touching one after close() reads stale bytes, never unmapped
 *   memory.
 * - transmit(frames) -> int: every frame (a bytes-like object, or a tuple of them
 *   concatenated in order) is copied, piece by piece, into a free slot of a separate
 *   tx_buffers x buffer_len mapping and written with IORING_OP_WRITE; everything
 *   prepared (including a multishot re-arm) goes to the kernel in one
 *   io_uring_enter(2). Returns how many frames, from the start, were accepted (fewer
 *   when every slot is busy). A frame longer than buffer_len raises ValueError
 *   before anything is sent; so does a piece that is not a contiguous bytes-like
 *   object (TypeError). Completed writes are counted: tx_frames / tx_bytes when
 *   whole, tx_errors when short or failed, tx_dropped for EAGAIN. A TAP write
 *   completes inside the submit; a write that has to wait for room (a full socket)
 *   keeps its slot until it completes, which under defer_taskrun happens as deferred
 *   work: transmit() runs that work when it is short of slots, receive() always.
 * - eventfd() is an eventfd registered with the ring (non-blocking, close-on-exec,
 *   owned and closed by the Ring). It is level-correct: readable while frames wait
 *   for receive() and not after receive() took the last one (a completion that
 *   races with a receive() may leave one spurious wake-up, never a lost one). It
 *   also stays readable after a receive() that handed out every buffer the kernel
 *   had: until the next receive() gives them back, no frame can complete (they
 *   wait in the device's queue) and nothing else would wake the caller.
 *   receive() and transmit() hold the kernel's eventfd signal off
 *   (IORING_CQ_EVENTFD_DISABLED) while they harvest and re-signal it themselves when
 *   frames or deferred work remain, so their own completions (writes finish inside
 *   the submit) never wake the loop. Poll it (add_reader), never read it: the Ring
 *   is its only reader and keeps track of what it wrote itself.
 * - defer_taskrun=True: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
 *   IORING_SETUP_TASKRUN_FLAG. Completions are then only produced when the owner
 *   calls io_uring_enter(2) with IORING_ENTER_GETEVENTS, which receive() does
 *   whenever IORING_SQ_TASKRUN says work is queued (and never when it is not: an
 *   idle receive() makes no system call, bar an eventfd read every SKIP_LIMIT-th
 *   time as a safety valve; transmit() enters too when short of slots). The kernel
 *   signals the eventfd only when its deferred-work list goes from empty to
 *   non-empty (io_req_local_work_add()),
 *   and one enter runs at most 20 items (IO_LOCAL_TW_DEFAULT_MAX), leaving the rest
 *   queued without a new signal; receive() therefore enters again while
 *   IORING_SQ_TASKRUN stays set (bounded), and signals the eventfd itself when work
 *   is still queued on return. Every call must come from the thread that created
 *   the Ring (the kernel refuses others with EEXIST). defer_taskrun=False:
 *   IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG (falling back to fewer
 *   flags on EINVAL); the kernel runs completions when the owner thread returns
 *   from any system call.
 * - Errors: a read failing with EBADFD, EIO or ENODEV means the device is gone (a
 *   deleted TAP fails with EBADFD); receive() and transmit() raise OSError with that
 *   errno from then on, and so does a write failing that way. Other read errors
 *   count in rx_errors and the read is re-armed.
 * - close() is idempotent: cancels everything (IORING_OP_ASYNC_CANCEL, ANY | ALL),
 *   waits with the GIL released (at most 1 s) until the kernel let go of every
 *   buffer, unregisters, unmaps, closes the ring and the eventfd. Memory the kernel
 *   still holds after the timeout is leaked rather than unmapped under it. Every
 *   other call after close() raises ValueError("ring is closed").
 * - Setup failures raise OSError with the kernel's errno: ENOSYS (no io_uring),
 *   EPERM (kernel.io_uring_disabled, seccomp), EINVAL (a kernel too old for provided
 *   buffer rings or multishot reads, or refusing defer_taskrun).
 *
 * Single-threaded: a Ring belongs to one thread (one event loop).
 *
 * Memory ordering (io_uring(7), "the submission queue" / "the completion queue",
 * and the comment at the top of the kernel's io_uring/io_uring.c): the application
 * writes SQEs then publishes the SQ tail with a release store; it reads the CQ tail
 * with an acquire load before reading CQEs and publishes the CQ head with a release
 * store after it is done with them. The provided-buffer ring tail works like the SQ
 * tail (io_uring_register_buf_ring(3): fill the entries, then store the tail with
 * release semantics; the kernel reads it with smp_load_acquire()).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/io_uring.h>

/* ---- ABI constants the installed header may lack ----------------------------------
 * Debian's linux-libc-dev 6.1 header stops at IORING_OP_SENDMSG_ZC (48). Values are
 * from include/uapi/linux/io_uring.h of Linux 6.18 and match the PyPI liburing
 * 2026.3.30 package (tests/device/test_uring_batch.py checks them against it).
 * Opcodes and register opcodes are enum members in the header (#ifndef cannot see
 * them), so they get names of our own. */
#define EX_OP_READ_MULTISHOT 49u /* Linux 6.7 */
#define EX_OP_WRITE 23u
#define EX_OP_ASYNC_CANCEL 14u
#define EX_REGISTER_EVENTFD 4u
#define EX_REGISTER_PBUF_RING 22u /* Linux 5.19 */
#define EX_UNREGISTER_PBUF_RING 23u
#define EX_CQE_BUFFER_SHIFT 16u

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#ifndef IORING_CQ_EVENTFD_DISABLED
#define IORING_CQ_EVENTFD_DISABLED (1U << 0)
#endif
#ifndef IORING_CQE_F_BUFFER
#define IORING_CQE_F_BUFFER (1U << 0)
#endif
#ifndef IORING_CQE_F_MORE
#define IORING_CQE_F_MORE (1U << 1)
#endif
#ifndef IOSQE_BUFFER_SELECT
#define IOSQE_BUFFER_SELECT (1U << 5)
#endif
#ifndef IORING_ENTER_GETEVENTS
#define IORING_ENTER_GETEVENTS (1U << 0)
#endif
#ifndef IORING_ENTER_EXT_ARG
#define IORING_ENTER_EXT_ARG (1U << 3)
#endif
#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP (1U << 0)
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)
#endif
#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif
#ifndef IORING_OFF_SQ_RING
#define IORING_OFF_SQ_RING 0ULL
#endif
#ifndef IORING_OFF_CQ_RING
#define IORING_OFF_CQ_RING 0x8000000ULL
#endif
#ifndef IORING_OFF_SQES
#define IORING_OFF_SQES 0x10000000ULL
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

/* The structures we rely on, declared here so an old or new header cannot change
 * them under us; the static asserts tie them to the header's where it has them. */
struct ex_buf { /* struct io_uring_buf */
    uint64_t addr;
    uint32_t len;
    uint16_t bid;
    uint16_t resv; /* in entry 0 this is the ring tail: never write it */
};
struct ex_buf_reg { /* struct io_uring_buf_reg */
    uint64_t ring_addr;
    uint32_t ring_entries;
    uint16_t bgid;
    uint16_t flags;
    uint64_t resv[3];
};
struct ex_getevents_arg { /* struct io_uring_getevents_arg */
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec; /* "pad" before Linux 6.12 */
    uint64_t ts;
};
struct ex_timespec { /* struct __kernel_timespec */
    int64_t tv_sec;
    long long tv_nsec;
};

_Static_assert(sizeof(struct io_uring_sqe) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "CQE is 16 bytes");
_Static_assert(sizeof(struct ex_buf) == 16, "io_uring_buf is 16 bytes");
_Static_assert(sizeof(struct ex_buf_reg) == 40, "io_uring_buf_reg is 40 bytes");
_Static_assert(sizeof(struct ex_getevents_arg) == 24, "io_uring_getevents_arg is 24 bytes");
_Static_assert(sizeof(struct io_uring_buf) == sizeof(struct ex_buf), "header io_uring_buf");
_Static_assert(sizeof(struct io_uring_buf_reg) == sizeof(struct ex_buf_reg),
               "header io_uring_buf_reg");
_Static_assert(offsetof(struct io_uring_sqe, buf_group) == 40, "sqe->buf_group offset");
_Static_assert(offsetof(struct io_uring_sqe, user_data) == 32, "sqe->user_data offset");
_Static_assert(IORING_OP_SENDMSG_ZC == 48, "READ_MULTISHOT follows SENDMSG_ZC");
_Static_assert(IORING_OP_WRITE == EX_OP_WRITE, "IORING_OP_WRITE");
_Static_assert(IORING_OP_ASYNC_CANCEL == EX_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL");
_Static_assert(IORING_REGISTER_EVENTFD == EX_REGISTER_EVENTFD, "IORING_REGISTER_EVENTFD");
_Static_assert(IORING_REGISTER_PBUF_RING == EX_REGISTER_PBUF_RING, "REGISTER_PBUF_RING");
_Static_assert(IORING_UNREGISTER_PBUF_RING == EX_UNREGISTER_PBUF_RING, "UNREGISTER_PBUF_RING");
_Static_assert(IORING_CQE_BUFFER_SHIFT == EX_CQE_BUFFER_SHIFT, "IORING_CQE_BUFFER_SHIFT");

/* ---- tunables ------------------------------------------------------------------- */

#define MAX_RX_BUFFERS 32768u /* a provided-buffer ring holds at most 2^15 entries */
#define MAX_TX_BUFFERS 32768u
#define CLOSE_TIMEOUT_NS 1000000000LL
/* receive() enters at most this often per call while deferred work stays queued. */
#define MAX_DEFER_ENTERS 8
/* receive() re-arms a multishot read that ends during its own harvest this often. */
#define REARM_ROUNDS 3
/* An idle receive() under defer_taskrun skips the eventfd read when nothing can have
 * signalled it; every SKIP_LIMIT-th consecutive skip reads it anyway, so an eventfd
 * signalled by something this analysis missed cannot keep a loop spinning. */
#define SKIP_LIMIT 4
#define BUFFER_ALIGN 64u

#define UD_READ 1ULL
#define UD_CANCEL 2ULL
#define UD_WRITE (1ULL << 32) /* | tx slot */

/* bid_state values */
#define BID_KERNEL 0
#define BID_QUEUED 1
#define BID_HANDED 2

/* ---- the receive mapping, shared with the views handed out ------------------------ */

typedef struct {
    PyObject_HEAD
    void *addr;
    size_t size;
} RegionObject;

static void region_dealloc(RegionObject *self) {
    if (self->addr != NULL && self->addr != MAP_FAILED)
        munmap(self->addr, self->size);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RegionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ethox_asyncio.device._uring_batch._Region",
    .tp_basicsize = sizeof(RegionObject),
    .tp_dealloc = (destructor)region_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The receive buffers' mapping; unmapped when the last view of it dies.",
};

/* One per receive buffer: exports the buffer's current frame, so a memoryview made
 * from it keeps the mapping (through `region`) alive. */
typedef struct {
    PyObject_HEAD
    PyObject *region;
    char *ptr;
    Py_ssize_t len;
} RxBufObject;

static int rxbuf_getbuffer(RxBufObject *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->ptr, self->len, 0, flags);
}

static PyBufferProcs rxbuf_as_buffer = {
    .bf_getbuffer = (getbufferproc)rxbuf_getbuffer,
};

static void rxbuf_dealloc(RxBufObject *self) {
    Py_XDECREF(self->region);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RxBufType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ethox_asyncio.device._uring_batch._RxBuffer",
    .tp_basicsize = sizeof(RxBufObject),
    .tp_dealloc = (destructor)rxbuf_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_as_buffer = &rxbuf_as_buffer,
    .tp_doc = "One receive buffer, exporting its latest frame.",
};

/* ---- the Ring ------------------------------------------------------------------- */

typedef struct {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, tx_dropped, tx_errors, rx_errors;
    uint64_t submits, rearms, enobufs, cqes;
} Stats;

typedef struct {
    PyObject_HEAD
    int fd;      /* the device, not ours */
    int ring_fd; /* -1 once closed */
    int efd;     /* -1 once closed */
    bool closed, defer, taskrun_flag, armed, efd_signalled;
    int gone_errno;
    int last_read_errno; /* of the last read CQE that failed */
    unsigned setup_flags, features;
    int skips; /* consecutive receive() calls that skipped the eventfd read */
    bool held; /* the eventfd signal is held off (IORING_CQ_EVENTFD_DISABLED) */
    unsigned maybe_signalled; /* CQEs reaped since the last drain that may have signalled */

    /* rings */
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size;
    struct io_uring_sqe *sqes;
    size_t sqes_size;
    unsigned *sq_head, *sq_tail, *sq_flags, *sq_array;
    unsigned sq_mask, sq_entries, sq_local_tail;
    unsigned *cq_head, *cq_tail, *cq_flags;
    struct io_uring_cqe *cqes;
    unsigned cq_mask, cq_entries;

    /* buffers */
    uint32_t rx_count, tx_count, buffer_len;
    size_t stride;
    RegionObject *rx_region; /* owns the receive mapping */
    char *rx_base;
    char *tx_base;
    size_t tx_size;
    struct ex_buf *br; /* provided-buffer ring */
    size_t br_size;
    unsigned br_mask;
    uint16_t br_tail;
    bool br_registered;
    PyObject **rx_objs; /* RxBufObject per buffer id */

    /* received frames not handed out yet (FIFO) and the ones handed out last time */
    uint16_t *fifo_bid;
    uint32_t *fifo_len;
    unsigned fifo_head, fifo_count;
    uint16_t *handed;
    unsigned handed_count;
    uint8_t *bid_state;
    unsigned in_kernel; /* buffers the kernel may fill */

    /* send slots */
    uint32_t *tx_free;
    unsigned tx_free_count;
    uint32_t *tx_expected;
    unsigned tx_inflight;

    Stats st;
} RingObject;

/* Regions and rings the kernel may still use after a timed-out close(): kept forever. */
static PyObject *unreclaimed; /* list */

/* ---- system calls ----------------------------------------------------------------- */

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                     void *arg, size_t argsz) {
    return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
}

static int sys_register(int fd, unsigned opcode, void *arg, unsigned nr_args) {
    return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

/* ---- small helpers --------------------------------------------------------------- */

static inline unsigned load_acquire(const unsigned *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(unsigned *p, unsigned v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static bool is_gone_errno(int e) {
    return e == EBADFD || e == EIO || e == ENODEV;
}

static unsigned round_pow2(unsigned v) {
    unsigned r = 1;
    while (r < v)
        r <<= 1;
    return r;
}

static void efd_drain(RingObject *self) {
    uint64_t value;
    ssize_t r = read(self->efd, &value, sizeof value); /* EAGAIN: was not readable */
    (void)r;
    self->efd_signalled = false;
    self->maybe_signalled = 0;
}

/* Make the eventfd readable, unless we did so already since the last drain. */
static void efd_signal(RingObject *self) {
    uint64_t one = 1;
    ssize_t r;
    if (self->efd_signalled)
        return;
    r = write(self->efd, &one, sizeof one);
    (void)r;
    self->efd_signalled = true;
}

static inline bool taskrun_pending(RingObject *self) {
    return (load_acquire(self->sq_flags) & IORING_SQ_TASKRUN) != 0;
}

/* IORING_CQ_EVENTFD_DISABLED (io_uring_cq_eventfd_toggle(3)): while set, the kernel
 * posts CQEs (and queues deferred work) without signalling the eventfd. cq_flags is
 * the application's to write. Clearing it is followed by a full fence: the kernel
 * queues deferred work with a cmpxchg and sets IORING_SQ_TASKRUN with an atomic OR
 * (both full barriers) before it reads cq_flags, so either it sees the flag cleared
 * and signals, or our later IORING_SQ_TASKRUN load sees its work (and we signal). */
static inline void evfd_hold(RingObject *self) {
    __atomic_store_n(self->cq_flags, IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELAXED);
    /* Before our next CQ tail load: a CQE the kernel posts after this may no longer
     * signal, one posted before it is visible to that load (it publishes the tail
     * before it reads cq_flags). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    self->held = true;
}

static inline void evfd_release(RingObject *self) {
    self->held = false;
    __atomic_store_n(self->cq_flags, 0u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline unsigned sq_unsubmitted(RingObject *self) {
    return self->sq_local_tail - load_acquire(self->sq_head);
}

/* The next SQE, zeroed; NULL if the SQ ring is full (never, with our sizing). */
static struct io_uring_sqe *get_sqe(RingObject *self) {
    struct io_uring_sqe *sqe;
    if (self->sq_local_tail - load_acquire(self->sq_head) >= self->sq_entries)
        return NULL;
    sqe = &self->sqes[self->sq_local_tail & self->sq_mask];
    self->sq_local_tail++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

/* Publish the prepared SQEs (release: the kernel reads the tail with acquire, then
 * the entries) and submit them with one io_uring_enter(2). Returns 0 or -errno. */
static int submit(RingObject *self, unsigned enter_flags) {
    unsigned pending;
    int r;
    store_release(self->sq_tail, self->sq_local_tail);
    pending = sq_unsubmitted(self);
    for (int attempt = 0; attempt < 4; attempt++) {
        r = sys_enter(self->ring_fd, pending, 0, enter_flags, NULL, 0);
        self->st.submits++;
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            break;
    }
    r = -errno;
    /* EAGAIN / EBUSY: the kernel is short of requests or its CQ overflowed; what was
     * not consumed stays in the SQ ring and goes with the next enter. */
    if (r == -EAGAIN || r == -EBUSY)
        return 0;
    return r;
}

/* ---- completions ------------------------------------------------------------------ */

static void recycle_bid(RingObject *self, unsigned bid) {
    struct ex_buf *b = &self->br[self->br_tail & self->br_mask];
    b->addr = (uint64_t)(uintptr_t)(self->rx_base + (size_t)bid * self->stride);
    b->len = self->buffer_len;
    b->bid = (uint16_t)bid; /* not b->resv: in entry 0 it is the ring's tail */
    self->br_tail++;
    self->bid_state[bid] = BID_KERNEL;
    self->in_kernel++;
}

static inline void publish_br_tail(RingObject *self) {
    /* The tail overlays bufs[0].resv (struct io_uring_buf_ring); release orders the
     * entry stores before it (io_uring_buf_ring_advance(3)). */
    uint16_t *tail = &self->br[0].resv;
    __atomic_store_n(tail, self->br_tail, __ATOMIC_RELEASE);
}

static void on_read_cqe(RingObject *self, int res, unsigned flags) {
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> EX_CQE_BUFFER_SHIFT;
        if (bid >= self->rx_count || self->bid_state[bid] != BID_KERNEL) {
            self->st.rx_errors++; /* cannot happen: the kernel names buffers we gave */
        } else {
            self->in_kernel--;
            if (res > 0) {
                unsigned at = (self->fifo_head + self->fifo_count) % self->rx_count;
                self->fifo_bid[at] = (uint16_t)bid;
                self->fifo_len[at] = (uint32_t)res;
                self->fifo_count++;
                self->bid_state[bid] = BID_QUEUED;
            } else {
                recycle_bid(self, bid); /* an empty read: the buffer goes straight back */
                publish_br_tail(self);
            }
        }
    }
    if (res == 0) {
        self->st.rx_errors++; /* EOF or an empty datagram: never on a TAP */
    } else if (res < 0) {
        int e = -res;
        self->last_read_errno = e;
        if (e == ENOBUFS)
            self->st.enobufs++;
        else if (e == ECANCELED)
            ;
        else if (is_gone_errno(e))
            self->gone_errno = e;
        else
            self->st.rx_errors++;
    }
    /* Without IORING_CQE_F_MORE the multishot request is finished (io_uring_enter(2),
     * "IORING_OP_READ_MULTISHOT"; io_uring_multishot(7)): ENOBUFS, an error, CQ ring
     * overflow, or cancellation. A frame may still come with that last CQE. */
    if (!(flags & IORING_CQE_F_MORE))
        self->armed = false;
}

static void on_write_cqe(RingObject *self, unsigned slot, int res) {
    if (slot >= self->tx_count)
        return;
    self->tx_free[self->tx_free_count++] = slot;
    self->tx_inflight--;
    if (res >= 0 && (uint32_t)res == self->tx_expected[slot]) {
        self->st.tx_frames++;
        self->st.tx_bytes += (uint64_t)res;
    } else if (res >= 0) {
        self->st.tx_errors++; /* short write: a TAP write is all or nothing */
    } else if (-res == EAGAIN) {
        self->st.tx_dropped++;
    } else if (-res == ECANCELED) {
        ;
    } else if (is_gone_errno(-res)) {
        self->gone_errno = -res;
    } else {
        self->st.tx_errors++;
    }
}

/* Process every CQE in the CQ ring; returns how many. */
static unsigned reap(RingObject *self) {
    unsigned head = *self->cq_head; /* only we write it */
    unsigned tail = load_acquire(self->cq_tail);
    unsigned n = tail - head;
    if (!self->held)
        self->maybe_signalled += n; /* posted while the signal was on, perhaps */
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &self->cqes[head & self->cq_mask];
        uint64_t ud = cqe->user_data;
        if (ud == UD_READ)
            on_read_cqe(self, cqe->res, cqe->flags);
        else if (ud >= UD_WRITE)
            on_write_cqe(self, (unsigned)(ud - UD_WRITE), cqe->res);
        /* UD_CANCEL: nothing to do */
    }
    if (n) {
        store_release(self->cq_head, tail); /* entries consumed: the kernel may reuse them */
        self->st.cqes += n;
    }
    return n;
}

/* Prepare the multishot read if it is not armed and the kernel has buffers for it. */
static bool prep_rearm(RingObject *self, bool initial) {
    struct io_uring_sqe *sqe;
    if (self->armed || self->gone_errno || self->in_kernel == 0)
        return false;
    sqe = get_sqe(self);
    if (sqe == NULL)
        return false;
    sqe->opcode = EX_OP_READ_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->fd = self->fd;
    sqe->off = 0;
    sqe->addr = 0;
    sqe->len = 0; /* 0: each read takes a whole selected buffer (io_uring_prep_read_multishot(3)) */
    sqe->buf_group = 0;
    sqe->user_data = UD_READ;
    self->armed = true;
    if (!initial)
        self->st.rearms++;
    return true;
}

/* The multishot read is down although the kernel has buffers for it (it failed again
 * right after re-arming): the caller must come back to re-arm it, so keep the eventfd
 * readable rather than let frames wait unannounced. */
static inline bool read_stalled(RingObject *self) {
    return !self->armed && !self->gone_errno && self->in_kernel > 0;
}

/* ---- setup and teardown ------------------------------------------------------------ */

static void *map_anonymous(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static size_t page_round(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) / page * page;
}

/* Release everything. `kernel_done`: the kernel holds no buffer (else leak them). */
static void teardown(RingObject *self, bool kernel_done) {
    if (kernel_done && self->br_registered && self->ring_fd >= 0) {
        struct ex_buf_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.bgid = 0;
        if (sys_register(self->ring_fd, EX_UNREGISTER_PBUF_RING, &reg, 1) == 0)
            self->br_registered = false;
    }
    if (self->ring_fd >= 0) {
        close(self->ring_fd); /* the kernel tears the ring down (and cancels) itself */
        self->ring_fd = -1;
    }
    if (self->sqes) {
        munmap(self->sqes, self->sqes_size);
        self->sqes = NULL;
    }
    if (self->cq_map && self->cq_map != self->sq_map)
        munmap(self->cq_map, self->cq_map_size);
    self->cq_map = NULL;
    if (self->sq_map) {
        munmap(self->sq_map, self->sq_map_size);
        self->sq_map = NULL;
    }
    if (self->efd >= 0) {
        close(self->efd);
        self->efd = -1;
    }
    if (kernel_done && !self->br_registered) {
        if (self->br)
            munmap(self->br, self->br_size);
        if (self->tx_base)
            munmap(self->tx_base, self->tx_size);
    } else if (self->rx_region != NULL && unreclaimed != NULL) {
        /* Buffers (and the buffer ring) the kernel may still write: never unmapped.
         * The tx mapping and buffer ring are simply not unmapped; the receive region
         * is kept alive by a reference that is never dropped. */
        PyList_Append(unreclaimed, (PyObject *)self->rx_region);
    }
    self->br = NULL;
    self->tx_base = NULL;
    if (self->rx_objs) {
        for (uint32_t i = 0; i < self->rx_count; i++)
            Py_XDECREF(self->rx_objs[i]);
        PyMem_Free(self->rx_objs);
        self->rx_objs = NULL;
    }
    Py_CLEAR(self->rx_region);
    PyMem_Free(self->fifo_bid);
    PyMem_Free(self->fifo_len);
    PyMem_Free(self->handed);
    PyMem_Free(self->bid_state);
    PyMem_Free(self->tx_free);
    PyMem_Free(self->tx_expected);
    self->fifo_bid = NULL;
    self->fifo_len = NULL;
    self->handed = NULL;
    self->bid_state = NULL;
    self->tx_free = NULL;
    self->tx_expected = NULL;
    self->fifo_count = self->handed_count = 0;
    self->closed = true;
}

static PyObject *set_errno_error(int e, const char *what) {
    PyObject *args = Py_BuildValue("(is)", e, what);
    if (args) {
        PyErr_SetObject(PyExc_OSError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static int setup_ring(RingObject *self, unsigned entries, unsigned cq_entries, bool defer) {
    static const unsigned coop_choices[] = {
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    static const unsigned defer_choices[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    };
    const unsigned *choices = defer ? defer_choices : coop_choices;
    size_t n = defer ? sizeof defer_choices / sizeof *defer_choices
                     : sizeof coop_choices / sizeof *coop_choices;
    struct io_uring_params p;
    int fd = -1, e = EINVAL;

    for (size_t i = 0; i < n; i++) {
        memset(&p, 0, sizeof p);
        p.flags = choices[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
        fd = sys_setup(entries, &p);
        if (fd >= 0)
            break;
        e = errno;
        if (e != EINVAL)
            break;
    }
    if (fd < 0) {
        if (e == ENOSYS)
            set_errno_error(e, "io_uring_setup: the kernel has no io_uring");
        else if (e == EPERM)
            set_errno_error(e, "io_uring_setup is forbidden (kernel.io_uring_disabled sysctl "
                               "or a seccomp filter)");
        else if (defer && e == EINVAL)
            set_errno_error(e, "io_uring_setup refused SINGLE_ISSUER|DEFER_TASKRUN "
                               "(needs Linux 6.1)");
        else
            set_errno_error(e, "io_uring_setup failed");
        return -1;
    }
    self->ring_fd = fd;
    self->setup_flags = p.flags;
    self->features = p.features;
    self->defer = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    self->taskrun_flag = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
        set_errno_error(EINVAL, "io_uring lacks IORING_FEAT_EXT_ARG (needs Linux 5.11)");
        return -1;
    }

    self->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    self->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (self->cq_map_size > self->sq_map_size)
            self->sq_map_size = self->cq_map_size;
        self->cq_map_size = self->sq_map_size;
    }
    self->sq_map = mmap(NULL, self->sq_map_size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (self->sq_map == MAP_FAILED) {
        self->sq_map = NULL;
        set_errno_error(errno, "mmap of the SQ ring failed");
        return -1;
    }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        self->cq_map = self->sq_map;
    } else {
        self->cq_map = mmap(NULL, self->cq_map_size, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (self->cq_map == MAP_FAILED) {
            self->cq_map = NULL;
            set_errno_error(errno, "mmap of the CQ ring failed");
            return -1;
        }
    }
    self->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    self->sqes = mmap(NULL, self->sqes_size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (self->sqes == MAP_FAILED) {
        self->sqes = NULL;
        set_errno_error(errno, "mmap of the SQE array failed");
        return -1;
    }
    char *sq = self->sq_map, *cq = self->cq_map;
    self->sq_head = (unsigned *)(sq + p.sq_off.head);
    self->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    self->sq_flags = (unsigned *)(sq + p.sq_off.flags);
    self->sq_array = (unsigned *)(sq + p.sq_off.array);
    self->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    self->sq_entries = *(unsigned *)(sq + p.sq_off.ring_entries);
    self->sq_local_tail = *self->sq_tail;
    self->cq_head = (unsigned *)(cq + p.cq_off.head);
    self->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    self->cq_flags = (unsigned *)(cq + p.cq_off.flags);
    self->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    self->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    self->cq_entries = *(unsigned *)(cq + p.cq_off.ring_entries);
    /* SQEs are always filled in ring order, so the indirection array is the identity. */
    for (unsigned i = 0; i < self->sq_entries; i++)
        self->sq_array[i] = i;
    return 0;
}

static int Ring_init(RingObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "rx_buffers", "tx_buffers", "buffer_len", "defer_taskrun",
                             NULL};
    int fd = -1, defer = 0;
    Py_ssize_t rx = -1, tx = -1, blen = -1;

    if (self->ring_fd >= 0 || self->rx_region != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Ring.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|$nnnp:Ring", kwlist, &fd, &rx, &tx,
                                     &blen, &defer))
        return -1;
    if (rx == -1 || tx == -1 || blen == -1) {
        PyErr_SetString(PyExc_TypeError,
                        "Ring() needs the keyword arguments rx_buffers, tx_buffers and buffer_len");
        return -1;
    }
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "fd must be a descriptor, got %d", fd);
        return -1;
    }
    if (rx < 1 || rx > (Py_ssize_t)MAX_RX_BUFFERS) {
        PyErr_Format(PyExc_ValueError, "rx_buffers must be within 1..%u, got %zd",
                     MAX_RX_BUFFERS, rx);
        return -1;
    }
    if (tx < 1 || tx > (Py_ssize_t)MAX_TX_BUFFERS) {
        PyErr_Format(PyExc_ValueError, "tx_buffers must be within 1..%u, got %zd",
                     MAX_TX_BUFFERS, tx);
        return -1;
    }
    if (blen < 1 || blen > (Py_ssize_t)(1u << 30)) {
        PyErr_Format(PyExc_ValueError, "buffer_len must be within 1..%u, got %zd", 1u << 30,
                     blen);
        return -1;
    }
    self->fd = fd;
    self->rx_count = (uint32_t)rx;
    self->tx_count = (uint32_t)tx;
    self->buffer_len = (uint32_t)blen;
    self->stride = ((size_t)blen + BUFFER_ALIGN - 1) / BUFFER_ALIGN * BUFFER_ALIGN;
    self->closed = false;

    /* SQEs: every tx slot's write plus a re-arm and a cancel in one submit (re-providing
     * receive buffers goes through the buffer ring, not SQEs). CQEs: every buffer can
     * complete once before we reap (rx frames, tx writes) plus the multishot's last CQE
     * and the cancel's, so the CQ ring never overflows (overflow would end the
     * multishot read). */
    unsigned sq_want = round_pow2(self->tx_count + 2);
    unsigned cq_want = round_pow2(self->rx_count + self->tx_count + 4);
    if (cq_want < 2 * sq_want)
        cq_want = 2 * sq_want;

    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        set_errno_error(errno, "eventfd failed");
        goto fail;
    }
    if (setup_ring(self, sq_want, cq_want, defer != 0) < 0)
        goto fail;
    if (sys_register(self->ring_fd, EX_REGISTER_EVENTFD, &self->efd, 1) < 0) {
        set_errno_error(errno, "IORING_REGISTER_EVENTFD failed");
        goto fail;
    }

    /* bookkeeping */
    self->fifo_bid = PyMem_Calloc(self->rx_count, sizeof(uint16_t));
    self->fifo_len = PyMem_Calloc(self->rx_count, sizeof(uint32_t));
    self->handed = PyMem_Calloc(self->rx_count, sizeof(uint16_t));
    self->bid_state = PyMem_Calloc(self->rx_count, sizeof(uint8_t));
    self->tx_free = PyMem_Calloc(self->tx_count, sizeof(uint32_t));
    self->tx_expected = PyMem_Calloc(self->tx_count, sizeof(uint32_t));
    self->rx_objs = PyMem_Calloc(self->rx_count, sizeof(PyObject *));
    if (!self->fifo_bid || !self->fifo_len || !self->handed || !self->bid_state ||
        !self->tx_free || !self->tx_expected || !self->rx_objs) {
        PyErr_NoMemory();
        goto fail;
    }
    for (uint32_t i = 0; i < self->tx_count; i++)
        self->tx_free[i] = self->tx_count - 1 - i; /* pop from the end: slot 0 first */
    self->tx_free_count = self->tx_count;

    /* memory */
    size_t rx_size = page_round(self->stride * self->rx_count);
    self->rx_region = PyObject_New(RegionObject, &RegionType);
    if (self->rx_region == NULL)
        goto fail;
    self->rx_region->addr = NULL;
    self->rx_region->size = rx_size;
    self->rx_region->addr = map_anonymous(rx_size);
    if (self->rx_region->addr == NULL) {
        set_errno_error(errno, "mmap of the receive buffers failed");
        goto fail;
    }
    self->rx_base = self->rx_region->addr;
    self->tx_size = page_round(self->stride * self->tx_count);
    self->tx_base = map_anonymous(self->tx_size);
    if (self->tx_base == NULL) {
        set_errno_error(errno, "mmap of the send buffers failed");
        goto fail;
    }
    unsigned br_entries = round_pow2(self->rx_count);
    self->br_mask = br_entries - 1;
    self->br_size = page_round(br_entries * sizeof(struct ex_buf));
    self->br = map_anonymous(self->br_size); /* page aligned, as the kernel requires */
    if (self->br == NULL) {
        set_errno_error(errno, "mmap of the buffer ring failed");
        goto fail;
    }
    for (uint32_t i = 0; i < self->rx_count; i++) {
        RxBufObject *o = PyObject_New(RxBufObject, &RxBufType);
        if (o == NULL)
            goto fail;
        Py_INCREF(self->rx_region);
        o->region = (PyObject *)self->rx_region;
        o->ptr = self->rx_base + (size_t)i * self->stride;
        o->len = 0;
        self->rx_objs[i] = (PyObject *)o;
    }

    /* IORING_REGISTER_PBUF_RING (io_uring_register(2)): ring_addr page aligned,
     * ring_entries a power of two; the kernel pins the ring's pages. */
    struct ex_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)self->br;
    reg.ring_entries = br_entries;
    reg.bgid = 0;
    if (sys_register(self->ring_fd, EX_REGISTER_PBUF_RING, &reg, 1) < 0) {
        set_errno_error(errno, "IORING_REGISTER_PBUF_RING failed (provided buffer rings "
                               "need Linux 5.19)");
        goto fail;
    }
    self->br_registered = true;
    self->br_tail = 0;
    self->in_kernel = 0;
    for (uint32_t i = 0; i < self->rx_count; i++)
        recycle_bid(self, i);
    publish_br_tail(self);

    /* Arm the multishot read; a kernel without it (before 6.7) fails it at once. */
    prep_rearm(self, true);
    evfd_hold(self);
    int r = submit(self, self->defer ? IORING_ENTER_GETEVENTS : 0);
    evfd_release(self);
    if (r < 0) {
        set_errno_error(-r, "io_uring_enter failed");
        goto fail;
    }
    reap(self);
    if (!self->armed && self->fifo_count == 0) {
        /* The first CQE already ended it: EINVAL from a kernel without
         * IORING_OP_READ_MULTISHOT, EBADFD for a descriptor that cannot poll (or a
         * TAP already deleted). */
        int e = self->last_read_errno ? self->last_read_errno : EINVAL;
        set_errno_error(e, "IORING_OP_READ_MULTISHOT failed at once (it needs Linux 6.7 "
                           "and a pollable descriptor)");
        goto fail;
    }
    if (self->fifo_count || (self->defer && taskrun_pending(self)))
        efd_signal(self);
    return 0;

fail:
    self->armed = false;
    teardown(self, true);
    return -1;
}

/* ---- closing ------------------------------------------------------------------- */

static bool kernel_holds_buffers(RingObject *self) {
    return self->armed || self->tx_inflight > 0;
}

static void do_close(RingObject *self) {
    bool done;
    if (self->closed)
        return;
    self->closed = true; /* from here on every other call raises, also while we wait */
    if (self->ring_fd >= 0 && kernel_holds_buffers(self)) {
        struct io_uring_sqe *sqe = get_sqe(self);
        if (sqe != NULL) {
            /* io_uring_prep_cancel64(3) with IORING_ASYNC_CANCEL_ANY | _ALL: every
             * request on this ring, whatever its user_data. */
            sqe->opcode = EX_OP_ASYNC_CANCEL;
            sqe->fd = -1;
            sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
            sqe->user_data = UD_CANCEL;
        }
        (void)submit(self, IORING_ENTER_GETEVENTS);
        reap(self);
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (kernel_holds_buffers(self)) {
            long long elapsed;
            clock_gettime(CLOCK_MONOTONIC, &now);
            elapsed = (now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
            if (elapsed >= CLOSE_TIMEOUT_NS)
                break;
            long long left = CLOSE_TIMEOUT_NS - elapsed;
            struct ex_timespec ts = {left / 1000000000LL, left % 1000000000LL};
            struct ex_getevents_arg arg;
            memset(&arg, 0, sizeof arg);
            arg.sigmask_sz = _NSIG / 8;
            arg.ts = (uint64_t)(uintptr_t)&ts;
            int r, err = 0;
            Py_BEGIN_ALLOW_THREADS
            r = sys_enter(self->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                          &arg, sizeof arg);
            if (r < 0)
                err = errno;
            Py_END_ALLOW_THREADS
            self->st.submits++;
            reap(self);
            if (r < 0 && err != ETIME && err != EINTR)
                break; /* e.g. EEXIST: closed from another thread than the owner */
        }
    }
    done = !kernel_holds_buffers(self);
    if (!done)
        PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "io_uring ring on fd %d: the kernel still holds its buffers 1 s after "
                         "cancelling; leaking them", self->fd);
    teardown(self, done);
}

/* ---- the Python-facing methods ------------------------------------------------------ */

static int check_usable(RingObject *self) {
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "ring is closed");
        return -1;
    }
    if (self->gone_errno) {
        set_errno_error(self->gone_errno, "the device is gone");
        return -1;
    }
    return 0;
}

/* Run completions and reap them until nothing is queued (or enough frames wait). */
static int harvest(RingObject *self, unsigned want) {
    int r = 0;
    evfd_hold(self);
    if (self->defer) {
        /* Under DEFER_TASKRUN the eventfd is only ever signalled by deferred work being
         * queued (IORING_SQ_TASKRUN is set first) or by CQEs our own enters post (held
         * off here), so with neither the flag nor our own signal it cannot be readable:
         * skip the read (bounded by SKIP_LIMIT, in case that reasoning misses a case). */
        bool nothing = !self->efd_signalled && !taskrun_pending(self) &&
                       sq_unsubmitted(self) == 0 && self->sq_local_tail == *self->sq_tail &&
                       *self->cq_head == load_acquire(self->cq_tail);
        if (!nothing || ++self->skips >= SKIP_LIMIT) {
            efd_drain(self);
            self->skips = 0;
        }
        for (int i = 0; i < MAX_DEFER_ENTERS; i++) {
            bool pending = self->sq_local_tail != *self->sq_tail || sq_unsubmitted(self) != 0;
            if (!pending && !taskrun_pending(self))
                break;
            /* GETEVENTS runs the deferred work (at most 20 items per call, see
             * io_cqring_wait() / __io_run_local_work() in io_uring/io_uring.c). */
            r = submit(self, IORING_ENTER_GETEVENTS);
            reap(self);
            if (r < 0 || self->fifo_count >= want)
                break;
        }
    } else {
        /* COOP_TASKRUN: completions run as task work when this thread leaves a system
         * call, here the eventfd read itself; nothing to enter for unless SQEs wait.
         * The kernel signals the eventfd only with a CQE it posts while we do not hold
         * the signal off, and it posts our completions only in our own system calls
         * (task work, inline writes): with no CQE waiting, no task work flagged
         * (IORING_SQ_TASKRUN, when the kernel took TASKRUN_FLAG) and no signal of our
         * own, the eventfd cannot be readable, so the read is skipped (a request's
         * second receive() and idle ones make no system call; bounded by SKIP_LIMIT
         * in case that reasoning misses a case). */
        bool nothing = self->taskrun_flag && !self->efd_signalled &&
                       self->maybe_signalled == 0 && !taskrun_pending(self) &&
                       *self->cq_head == load_acquire(self->cq_tail);
        if (!nothing || ++self->skips >= SKIP_LIMIT) {
            efd_drain(self);
            self->skips = 0;
        }
        if (self->sq_local_tail != *self->sq_tail || sq_unsubmitted(self) != 0)
            r = submit(self, 0);
    }
    reap(self); /* posted while held: these did not signal */
    evfd_release(self);
    reap(self); /* after the release: these may have */
    if (self->defer && taskrun_pending(self))
        efd_signal(self); /* work still queued: its own signal may have been held off */
    return r;
}

PyDoc_STRVAR(receive_doc,
"receive(max_frames) -> list[memoryview]\n\n"
"Up to max_frames received frames, oldest first, as writable views valid until the\n"
"next receive() (their buffers then go back to the kernel and are overwritten).\n"
"Gives last call's buffers back first; raises OSError(EBADFD/EIO/ENODEV) once the\n"
"device is gone and ValueError once closed.");

static PyObject *Ring_receive(RingObject *self, PyObject *arg) {
    Py_ssize_t max_frames = PyLong_AsSsize_t(arg);
    PyObject *list;
    unsigned count, want;
    int r = 0;

    if (max_frames == -1 && PyErr_Occurred())
        return NULL;
    if (check_usable(self) < 0)
        return NULL;
    if (max_frames < 0)
        max_frames = 0;
    /* 1. The previous views expire: their buffers go back to the buffer ring. */
    if (self->handed_count) {
        for (unsigned i = 0; i < self->handed_count; i++)
            recycle_bid(self, self->handed[i]);
        self->handed_count = 0;
        publish_br_tail(self);
    }
    /* 2. Re-arm the multishot read if it ended and buffers are back, and harvest
     * everything the kernel completed. Its last CQE may already wait (reap first), or
     * come during the harvest (ENOBUFS as soon as a frame finds no buffer): then
     * re-arm again at once, bounded, since the buffers given back above are there. */
    want = (unsigned)(max_frames > (Py_ssize_t)self->rx_count ? self->rx_count : max_frames);
    reap(self);
    for (int round = 0; round < REARM_ROUNDS; round++) {
        prep_rearm(self, false);
        r = harvest(self, want);
        if (r < 0 || self->gone_errno || self->armed || self->in_kernel == 0)
            break;
    }
    if (self->gone_errno) {
        check_usable(self);
        return NULL;
    }
    if (r < 0)
        return set_errno_error(-r, "io_uring_enter failed");
    /* 4. Hand out the oldest frames. */
    count = self->fifo_count < (size_t)max_frames ? self->fifo_count : (unsigned)max_frames;
    list = PyList_New(count);
    if (list == NULL)
        return NULL;
    for (unsigned i = 0; i < count; i++) {
        unsigned at = (self->fifo_head + i) % self->rx_count;
        unsigned bid = self->fifo_bid[at];
        RxBufObject *o = (RxBufObject *)self->rx_objs[bid];
        o->len = self->fifo_len[at];
        PyObject *view = PyMemoryView_FromObject((PyObject *)o);
        if (view == NULL) {
            Py_DECREF(list); /* nothing consumed: the frames stay queued */
            return NULL;
        }
        PyList_SET_ITEM(list, i, view);
    }
    for (unsigned i = 0; i < count; i++) {
        unsigned bid = self->fifo_bid[self->fifo_head];
        self->st.rx_bytes += self->fifo_len[self->fifo_head];
        self->handed[self->handed_count++] = (uint16_t)bid;
        self->bid_state[bid] = BID_HANDED;
        self->fifo_head = (self->fifo_head + 1) % self->rx_count;
    }
    self->fifo_count -= count;
    self->st.rx_frames += count;
    /* 5. Frames left behind: keep the eventfd readable. So too when this call handed
     * out the last buffers the kernel had: no frame can complete until the next
     * receive() gives them back, so no completion would ever signal the eventfd,
     * however many frames wait in the device's queue. */
    if (self->fifo_count || (self->handed_count && self->in_kernel == 0) ||
        read_stalled(self))
        efd_signal(self);
    return list;
}

/* Length of one piece, or -1 with an exception. */
static Py_ssize_t piece_len(PyObject *piece) {
    Py_buffer view;
    Py_ssize_t len;
    if (PyBytes_CheckExact(piece))
        return PyBytes_GET_SIZE(piece);
    if (PyByteArray_CheckExact(piece))
        return PyByteArray_GET_SIZE(piece);
    if (PyObject_GetBuffer(piece, &view, PyBUF_SIMPLE) < 0)
        return -1;
    len = view.len;
    PyBuffer_Release(&view);
    return len;
}

static Py_ssize_t frame_length(PyObject *frame) {
    if (PyTuple_CheckExact(frame)) {
        Py_ssize_t total = 0, n = PyTuple_GET_SIZE(frame);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t len = piece_len(PyTuple_GET_ITEM(frame, i));
            if (len < 0)
                return -1;
            total += len;
        }
        return total;
    }
    return piece_len(frame);
}

/* Copy one piece to dst (which has room); returns bytes copied or -1. */
static Py_ssize_t copy_piece(PyObject *piece, char *dst, Py_ssize_t room) {
    Py_buffer view;
    Py_ssize_t len;
    if (PyBytes_CheckExact(piece)) {
        len = PyBytes_GET_SIZE(piece);
        if (len > room)
            goto too_long;
        memcpy(dst, PyBytes_AS_STRING(piece), (size_t)len);
        return len;
    }
    if (PyByteArray_CheckExact(piece)) {
        len = PyByteArray_GET_SIZE(piece);
        if (len > room)
            goto too_long;
        memcpy(dst, PyByteArray_AS_STRING(piece), (size_t)len);
        return len;
    }
    if (PyObject_GetBuffer(piece, &view, PyBUF_SIMPLE) < 0)
        return -1;
    len = view.len;
    if (len <= room)
        memcpy(dst, view.buf, (size_t)len);
    PyBuffer_Release(&view);
    if (len > room)
        goto too_long;
    return len;
too_long:
    PyErr_SetString(PyExc_ValueError, "a frame changed length while being copied");
    return -1;
}

PyDoc_STRVAR(transmit_doc,
"transmit(frames) -> int\n\n"
"Copy each frame (bytes-like, or a tuple of bytes-like pieces) into a free send slot,\n"
"write them all with one io_uring_enter, and return how many frames from the start\n"
"were accepted (fewer when every slot is busy). A frame longer than buffer_len raises\n"
"ValueError before anything is sent.");

static PyObject *Ring_transmit(RingObject *self, PyObject *frames) {
    PyObject *seq;
    Py_ssize_t n, accepted = 0;
    PyObject **items;
    unsigned saved_tail;
    int r;

    if (check_usable(self) < 0)
        return NULL;
    seq = PySequence_Fast(frames, "transmit() needs a sequence of frames");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    /* 1. Refuse the batch before anything moves if one frame does not fit. */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = frame_length(items[i]);
        if (len < 0)
            goto error;
        if (len > (Py_ssize_t)self->buffer_len) {
            PyErr_Format(PyExc_ValueError,
                         "frame %zd is %zd bytes long, more than buffer_len (%u): nothing sent",
                         i, len, self->buffer_len);
            goto error;
        }
    }
    /* 2. Slots of completed writes come back. Under DEFER_TASKRUN a write that had to
     * wait (poll-armed) completes as deferred work: run it when short of slots. */
    if (self->tx_free_count < (size_t)n) {
        if (self->defer && taskrun_pending(self)) {
            evfd_hold(self);
            r = submit(self, IORING_ENTER_GETEVENTS);
            reap(self);
            evfd_release(self);
            if (r < 0) {
                set_errno_error(-r, "io_uring_enter failed");
                goto error;
            }
        }
        reap(self);
        if (self->fifo_count || (self->defer && taskrun_pending(self)))
            efd_signal(self);
    }
    /* 3. A re-arm goes with the writes (reap first: the multishot's last CQE may wait). */
    reap(self);
    prep_rearm(self, false);
    saved_tail = self->sq_local_tail;
    /* 4. Copy and prepare. */
    for (Py_ssize_t i = 0; i < n && self->tx_free_count > 0; i++) {
        unsigned slot = self->tx_free[self->tx_free_count - 1];
        char *dst = self->tx_base + (size_t)slot * self->stride;
        Py_ssize_t len = 0;
        PyObject *frame = items[i];
        if (PyTuple_CheckExact(frame)) {
            Py_ssize_t pieces = PyTuple_GET_SIZE(frame);
            for (Py_ssize_t k = 0; k < pieces; k++) {
                Py_ssize_t got = copy_piece(PyTuple_GET_ITEM(frame, k), dst + len,
                                            (Py_ssize_t)self->buffer_len - len);
                if (got < 0)
                    goto rollback;
                len += got;
            }
        } else {
            len = copy_piece(frame, dst, (Py_ssize_t)self->buffer_len);
            if (len < 0)
                goto rollback;
        }
        struct io_uring_sqe *sqe = get_sqe(self);
        if (sqe == NULL)
            break; /* cannot happen: the SQ ring has room for every slot */
        self->tx_free_count--;
        self->tx_inflight++;
        self->tx_expected[slot] = (uint32_t)len;
        sqe->opcode = EX_OP_WRITE;
        sqe->fd = self->fd;
        sqe->addr = (uint64_t)(uintptr_t)dst;
        sqe->len = (uint32_t)len;
        sqe->off = 0;
        sqe->user_data = UD_WRITE + slot;
        accepted++;
    }
    Py_DECREF(seq);
    /* 5. One enter for everything; TAP writes complete inside it. */
    r = 0;
    if (self->sq_local_tail != *self->sq_tail || sq_unsubmitted(self) != 0) {
        evfd_hold(self);
        r = submit(self, 0);
        reap(self); /* our writes, completed inside the enter: no signal */
        evfd_release(self);
        reap(self);
    }
    if (self->fifo_count || (self->defer && taskrun_pending(self)) || read_stalled(self))
        efd_signal(self);
    if (self->gone_errno) {
        check_usable(self);
        return NULL;
    }
    if (r < 0)
        return set_errno_error(-r, "io_uring_enter failed");
    return PyLong_FromSsize_t(accepted);

rollback:
    /* Nothing of this batch was published: forget its SQEs, free its slots. */
    for (unsigned t = saved_tail; t != self->sq_local_tail; t++) {
        const struct io_uring_sqe *sqe = &self->sqes[t & self->sq_mask];
        if (sqe->user_data >= UD_WRITE) {
            self->tx_free[self->tx_free_count++] = (uint32_t)(sqe->user_data - UD_WRITE);
            self->tx_inflight--;
        }
    }
    self->sq_local_tail = saved_tail;
error:
    Py_DECREF(seq);
    return NULL;
}

static PyObject *Ring_eventfd(RingObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "ring is closed");
        return NULL;
    }
    return PyLong_FromLong(self->efd);
}

static PyObject *Ring_close(RingObject *self, PyObject *Py_UNUSED(ignored)) {
    do_close(self);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static int put_stat(PyObject *d, const char *name, uint64_t v) {
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int r;
    if (o == NULL)
        return -1;
    r = PyDict_SetItemString(d, name, o);
    Py_DECREF(o);
    return r;
}

static PyObject *Ring_stats(RingObject *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *d;
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "ring is closed");
        return NULL;
    }
    d = PyDict_New();
    if (d == NULL)
        return NULL;
    const Stats *s = &self->st;
    if (put_stat(d, "rx_frames", s->rx_frames) < 0 || put_stat(d, "rx_bytes", s->rx_bytes) < 0 ||
        put_stat(d, "tx_frames", s->tx_frames) < 0 || put_stat(d, "tx_bytes", s->tx_bytes) < 0 ||
        put_stat(d, "tx_dropped", s->tx_dropped) < 0 ||
        put_stat(d, "tx_errors", s->tx_errors) < 0 ||
        put_stat(d, "rx_errors", s->rx_errors) < 0 || put_stat(d, "submits", s->submits) < 0 ||
        put_stat(d, "rearms", s->rearms) < 0 || put_stat(d, "enobufs", s->enobufs) < 0 ||
        put_stat(d, "cqes", s->cqes) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *Ring_enter(RingObject *self, PyObject *Py_UNUSED(ignored)) {
    return Py_NewRef(self);
}

static PyObject *Ring_exit(RingObject *self, PyObject *Py_UNUSED(args)) {
    do_close(self);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_FALSE;
}

static void Ring_dealloc(RingObject *self) {
    if (!self->closed && self->ring_fd >= 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        do_close(self);
        if (PyErr_Occurred())
            PyErr_WriteUnraisable((PyObject *)self);
        PyErr_Restore(type, value, tb);
    } else if (!self->closed) {
        teardown(self, true);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Ring_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                          PyObject *Py_UNUSED(kwds)) {
    RingObject *self = (RingObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    self->ring_fd = -1;
    self->efd = -1;
    self->closed = true; /* until __init__ succeeds */
    return (PyObject *)self;
}

static PyObject *get_closed(RingObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->closed);
}
static PyObject *get_defer(RingObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->defer);
}
static PyObject *get_setup_flags(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->setup_flags);
}
static PyObject *get_buffer_len(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->buffer_len);
}
static PyObject *get_rx_buffers(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->rx_count);
}
static PyObject *get_tx_buffers(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->tx_count);
}
static PyObject *get_queued(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->fifo_count);
}
static PyObject *get_tx_available(RingObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->tx_free_count);
}
static PyObject *get_armed(RingObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->armed);
}

static PyGetSetDef Ring_getset[] = {
    {"closed", (getter)get_closed, NULL, "True once close() ran (or __init__ failed).", NULL},
    {"defer_taskrun", (getter)get_defer, NULL,
     "True when the ring runs with IORING_SETUP_DEFER_TASKRUN.", NULL},
    {"setup_flags", (getter)get_setup_flags, NULL,
     "The IORING_SETUP_* flags the kernel accepted.", NULL},
    {"buffer_len", (getter)get_buffer_len, NULL, "Bytes per buffer (the largest frame).", NULL},
    {"rx_buffers", (getter)get_rx_buffers, NULL, "Receive buffers.", NULL},
    {"tx_buffers", (getter)get_tx_buffers, NULL, "Send slots.", NULL},
    {"queued", (getter)get_queued, NULL,
     "Frames completed but not handed out yet (after the last receive/transmit).", NULL},
    {"tx_available", (getter)get_tx_available, NULL, "Send slots free right now.", NULL},
    {"armed", (getter)get_armed, NULL, "Whether the multishot read is armed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Ring_methods[] = {
    {"receive", (PyCFunction)Ring_receive, METH_O, receive_doc},
    {"transmit", (PyCFunction)Ring_transmit, METH_O, transmit_doc},
    {"eventfd", (PyCFunction)Ring_eventfd, METH_NOARGS,
     "eventfd() -> int: the eventfd, readable while received frames wait."},
    {"stats", (PyCFunction)Ring_stats, METH_NOARGS,
     "stats() -> dict[str, int]: rx_frames, rx_bytes, tx_frames, tx_bytes, tx_dropped, "
     "tx_errors, rx_errors, submits, rearms, enobufs, cqes."},
    {"close", (PyCFunction)Ring_close, METH_NOARGS,
     "close(): cancel everything, wait (<= 1 s) for the kernel, release all. Idempotent."},
    {"__enter__", (PyCFunction)Ring_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Ring_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Ring_doc,
"Ring(fd, *, rx_buffers, tx_buffers, buffer_len, defer_taskrun=False)\n\n"
"An io_uring moving whole frames on `fd` (not owned): one multishot read over a\n"
"provided-buffer ring of rx_buffers x buffer_len bytes, and writes from tx_buffers\n"
"send slots. See the module documentation for the contract.");

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ethox_asyncio.device._uring_batch.Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Ring_doc,
    .tp_methods = Ring_methods,
    .tp_getset = Ring_getset,
    .tp_init = (initproc)Ring_init,
    .tp_new = Ring_new,
};

/* ---- module --------------------------------------------------------------------- */

PyDoc_STRVAR(module_doc,
"Batched io_uring frame I/O for one descriptor (a TAP): a compiled helper.\n\n"
"Contract:\n\n"
"- ``Ring(fd, *, rx_buffers, tx_buffers, buffer_len, defer_taskrun=False)`` drives one\n"
"  pollable descriptor on which every read returns one frame and every write sends\n"
"  one. It does not own ``fd``. Frames are received by ONE multishot read\n"
"  (IORING_OP_READ_MULTISHOT) over a provided-buffer ring of ``rx_buffers`` buffers of\n"
"  ``buffer_len`` bytes, run by the owner thread's task work: no io-wq worker threads.\n"
"  When the multishot ends (ENOBUFS with every buffer handed out, an error) it is\n"
"  re-armed by the next call that finds buffers back (stats ``rearms``, ``enobufs``);\n"
"  the frames meanwhile wait in the TAP queue.\n"
"- ``receive(max_frames)`` gives the previous call's buffers back, harvests every\n"
"  completion (frames beyond ``max_frames`` wait, in order, none lost) and returns up\n"
"  to ``max_frames`` writable memoryviews of the frame bytes, oldest first. A view is\n"
"  valid until the next ``receive()``; its buffer is then reused by later frames (the\n"
"  view is not invalidated: copy what you keep). Views keep the mapping alive, so one\n"
"  used after ``close()`` shows stale bytes, never unmapped memory.\n"
"- ``transmit(frames)`` copies each frame (bytes-like, or a tuple of pieces\n"
"  concatenated in order, copied once each) into a free send slot, writes them with one\n"
"  io_uring_enter, and returns how many frames from the start were accepted (fewer\n"
"  when every slot is busy). A frame longer than ``buffer_len`` raises ValueError, and\n"
"  a piece that is not contiguous bytes-like TypeError, before anything is sent.\n"
"  Completed writes count in ``tx_frames``/``tx_bytes``; short or failed ones in\n"
"  ``tx_errors``; EAGAIN in ``tx_dropped``. A write that waits for room (never on a\n"
"  TAP) keeps its slot; under ``defer_taskrun`` its completion is deferred work, run\n"
"  by ``receive()`` (and by ``transmit()`` when short of slots).\n"
"- ``eventfd()`` is registered with the ring (non-blocking, close-on-exec, closed by\n"
"  the Ring) and level-correct: readable while frames wait for ``receive()``, not\n"
"  after the last one was taken (a completion racing with a call may cause one\n"
"  spurious wake-up, never a lost one). It also stays readable after a ``receive()``\n"
"  that handed out every buffer the kernel had (no frame can complete until the next\n"
"  call gives them back). The calls' own completions do not wake it.\n"
"  Poll it, never read it: the Ring is its only reader.\n"
"- ``defer_taskrun=True``: IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG.\n"
"  Completions are produced only inside ``receive()`` (io_uring_enter with GETEVENTS,\n"
"  repeated while IORING_SQ_TASKRUN says work is queued; ``transmit()`` too when short\n"
"  of slots); an idle ``receive()`` makes no system call (but reads the eventfd every\n"
"  4th time, a safety valve). The kernel signals the eventfd when deferred work is\n"
"  queued on an empty list; ``receive()`` re-signals it when work is left over. All\n"
"  calls must come from the creating thread. ``defer_taskrun=False``: COOP_TASKRUN |\n"
"  TASKRUN_FLAG (fewer flags if the kernel refuses them). ``Ring.setup_flags`` says\n"
"  what was set.\n"
"- A read failing with EBADFD, EIO or ENODEV (a deleted TAP: EBADFD) means the device\n"
"  is gone: ``receive()``/``transmit()`` raise OSError with that errno from then on\n"
"  (also for a write failing so). Other read errors count in ``rx_errors``.\n"
"- ``close()`` is idempotent: cancels everything, waits (GIL released, at most 1 s)\n"
"  for the kernel to release the buffers, unregisters, unmaps, closes the ring and\n"
"  the eventfd; memory the kernel still holds then is leaked, never unmapped. Any\n"
"  other call afterwards raises ``ValueError('ring is closed')``.\n"
"- Setup errors are OSError with the kernel's errno (ENOSYS, EPERM, EINVAL for a\n"
"  kernel without provided buffer rings (5.19) or multishot reads (6.7)).\n\n"
"Single-threaded: a Ring belongs to one thread.");

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ethox_asyncio.device._uring_batch",
    .m_doc = module_doc,
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__uring_batch(void) {
    PyObject *m;
    if (PyType_Ready(&RegionType) < 0 || PyType_Ready(&RxBufType) < 0 ||
        PyType_Ready(&RingType) < 0)
        return NULL;
    m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    unreclaimed = PyList_New(0);
    if (unreclaimed == NULL || PyModule_AddObjectRef(m, "_unreclaimed", unreclaimed) < 0 ||
        PyModule_AddObjectRef(m, "Ring", (PyObject *)&RingType) < 0)
        goto fail;
    /* The ABI values compiled in, for tests to compare with other sources. */
    struct { const char *name; unsigned long long value; } consts[] = {
        {"IORING_OP_READ_MULTISHOT", EX_OP_READ_MULTISHOT},
        {"IORING_OP_WRITE", EX_OP_WRITE},
        {"IORING_OP_ASYNC_CANCEL", EX_OP_ASYNC_CANCEL},
        {"IORING_REGISTER_EVENTFD", EX_REGISTER_EVENTFD},
        {"IORING_REGISTER_PBUF_RING", EX_REGISTER_PBUF_RING},
        {"IORING_UNREGISTER_PBUF_RING", EX_UNREGISTER_PBUF_RING},
        {"IORING_CQE_BUFFER_SHIFT", EX_CQE_BUFFER_SHIFT},
        {"IORING_CQE_F_BUFFER", IORING_CQE_F_BUFFER},
        {"IORING_CQE_F_MORE", IORING_CQE_F_MORE},
        {"IOSQE_BUFFER_SELECT", IOSQE_BUFFER_SELECT},
        {"IORING_SETUP_SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL},
        {"IORING_SETUP_COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN},
        {"IORING_SETUP_TASKRUN_FLAG", IORING_SETUP_TASKRUN_FLAG},
        {"IORING_SETUP_SINGLE_ISSUER", IORING_SETUP_SINGLE_ISSUER},
        {"IORING_SETUP_DEFER_TASKRUN", IORING_SETUP_DEFER_TASKRUN},
        {"IORING_SETUP_CQSIZE", IORING_SETUP_CQSIZE},
        {"IORING_SQ_TASKRUN", IORING_SQ_TASKRUN},
        {"IORING_CQ_EVENTFD_DISABLED", IORING_CQ_EVENTFD_DISABLED},
        {"IORING_ENTER_GETEVENTS", IORING_ENTER_GETEVENTS},
        {"IORING_ENTER_EXT_ARG", IORING_ENTER_EXT_ARG},
        {"IORING_FEAT_SINGLE_MMAP", IORING_FEAT_SINGLE_MMAP},
        {"IORING_FEAT_EXT_ARG", IORING_FEAT_EXT_ARG},
        {"IORING_ASYNC_CANCEL_ALL", IORING_ASYNC_CANCEL_ALL},
        {"IORING_ASYNC_CANCEL_ANY", IORING_ASYNC_CANCEL_ANY},
        {"IORING_OFF_SQ_RING", IORING_OFF_SQ_RING},
        {"IORING_OFF_CQ_RING", IORING_OFF_CQ_RING},
        {"IORING_OFF_SQES", IORING_OFF_SQES},
    };
    for (size_t i = 0; i < sizeof consts / sizeof *consts; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(consts[i].value);
        if (v == NULL || PyModule_AddObject(m, consts[i].name, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
    }
    if (PyModule_AddIntConstant(m, "CLOSE_TIMEOUT_MS", (long)(CLOSE_TIMEOUT_NS / 1000000)) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
