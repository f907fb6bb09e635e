/* epoll_client.c: the load generator of bench/tcp.py and bench/udp_echo.py, and a
 * trivial C server that measures the client's own ceiling.
 *
 * Built by the benchmarks with `cc -O2` (no library beyond libc); run inside a
 * network namespace. Every mode is bounded in count and in time and stops by itself.
 * Each prints one JSON object on stdout; errors go to stderr with exit status 1.
 *
 *   pingpong HOST PORT CONNS SIZE SECONDS MAXREQ WARMUP
 *       CONNS TCP connections (TCP_NODELAY), each with one SIZE-byte request in
 *       flight: send, wait for SIZE bytes back, repeat. The first WARMUP answers are
 *       not counted; then until MAXREQ answers or SECONDS. req/s, p50/p99 µs.
 *   connrate HOST PORT CONCURRENCY SECONDS MAXCONN
 *       CONCURRENCY slots, each: non-blocking connect, send 1 B, receive it, close,
 *       again. conn/s over the completed cycles (the first 20 not counted).
 *   send HOST PORT BYTES SECONDS
 *       Writes BYTES (or what SECONDS allow) to a sink, half-closes, and reads the
 *       sink's reply (the count it received, as "%llu\n") up to EOF. Gbit/s of the
 *       bytes the server counted, from the first write to its reply.
 *   recv HOST PORT BYTES SECONDS
 *       Asks a source for BYTES (8-byte big-endian count) and reads to EOF (or
 *       SECONDS). Gbit/s of the bytes received, from the request to EOF.
 *   idle HOST PORT N SECONDS
 *       Opens N connections (32 handshakes at a time), echoes 1 B on each, prints
 *       {"held": N, "open_seconds": ...}, then holds them. A first line on stdin
 *       starts an echo round: 1 B out on every connection (at most 256 outstanding),
 *       each answer read and checked, then {"echoed": E, "missing": N - E,
 *       "echo_seconds": ...}. A second line, EOF or the end of SECONDS (counted from
 *       the start) closes them all: {"released": N}.
 *   udp HOST PORT SIZE SECONDS MAXREQ WARMUP
 *       UDP ping-pong over a connected socket, a sequence number in the first 8
 *       bytes, a reply lost after 0.5 s is counted and the next request sent.
 *   serve HOST LIFETIME
 *       The trivial server: TCP echo on ports 7 and 7001-7008, a sink on 9, a source
 *       on 19, UDP echo on 7; one epoll loop, one thread. Prints "ready PID", exits on
 *       SIGTERM/SIGINT or after LIFETIME seconds.
 *
 * With EPOLL_CC set (e.g. cubic), every TCP socket, client or listener, uses that
 * congestion control (TCP_CONGESTION).
 *
 * Every result carries cpu_pct: this process's user+system CPU time over its
 * wall-clock time in the measured interval (100 = one CPU busy), so a reader can see
 * whether the client could have gone faster.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)
#define MAX_EVENTS 256
#define STALL_SECONDS 5.0 /* no progress for this long: give up */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "epoll_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "epoll_client: %s\n", what);
    exit(1);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct sockaddr_storage target;
static socklen_t target_len;

static void set_target(const char *host, int port) {
    memset(&target, 0, sizeof target);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&target;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) fail("bad IPv6 address");
        target_len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&target;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) fail("bad IPv4 address");
        target_len = sizeof *a;
    }
}

static void set_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* $EPOLL_CC, when set, is the congestion control of every TCP socket made here (a
 * listener's children inherit it): a namespace other than the initial one can only
 * default to the algorithms in net.ipv4.tcp_allowed_congestion_control. */
static void congestion_control(int fd) {
    const char *cc = getenv("EPOLL_CC");
    if (cc && *cc && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc)) < 0)
        die("setsockopt TCP_CONGESTION");
}

/* A blocking connect bounded by SO_SNDTIMEO; TCP_NODELAY; returned non-blocking. */
static int connect_bounded(double timeout) {
    int fd = socket(target.ss_family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    congestion_control(fd);
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) die("connect");
    nodelay(fd);
    set_nonblock(fd);
    return fd;
}

/* Wait until fd is readable/writable or the deadline; 0 on timeout. */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - now();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) die("poll");
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double pct(float *v, size_t n, double p) {
    if (!n) return 0.0;
    size_t i = (size_t)(p * n);
    if (i >= n) i = n - 1;
    return v[i];
}

/* --- pingpong -------------------------------------------------------------------- */

struct pp_conn {
    int fd;
    size_t got;
    double sent_at;
};

static int pingpong(const char *host, int port, int conns, int size, double seconds,
                    long maxreq, long warmup) {
    if (conns < 1 || size < 1 || size > 65536 || maxreq < 1) fail("bad pingpong arguments");
    set_target(host, port);
    raise_nofile();
    struct pp_conn *c = calloc(conns, sizeof *c);
    float *lat = malloc(sizeof(float) * maxreq);
    char *msg = malloc(size), *buf = malloc(65536);
    if (!c || !lat || !msg || !buf) fail("out of memory");
    memset(msg, 'x', size);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    for (int i = 0; i < conns; i++) {
        c[i].fd = connect_bounded(5.0);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev) < 0) die("epoll_ctl");
    }
    long answered = 0, counted = 0, errors = 0;
    double start = 0, cpu0 = 0, stop_at = now() + seconds + 10.0, last = now();
    int measuring = warmup == 0;
    if (measuring) {
        start = now();
        cpu0 = cpu_seconds();
        stop_at = start + seconds;
    }
    for (int i = 0; i < conns; i++) {
        c[i].sent_at = now();
        if (write(c[i].fd, msg, size) != size) die("write");
    }
    struct epoll_event evs[MAX_EVENTS];
    while (counted < maxreq) {
        double t = now();
        if (t >= stop_at) break;
        if (t - last > STALL_SECONDS) fail("pingpong stalled: no answer for 5 s");
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            struct pp_conn *pc = &c[evs[k].data.u32];
            ssize_t r = read(pc->fd, buf, 65536);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) fail("pingpong: connection closed by the server");
            pc->got += (size_t)r;
            if (pc->got < (size_t)size) continue;
            if (pc->got > (size_t)size) errors++; /* more than one answer: never expected */
            double done = now();
            last = done;
            answered++;
            if (measuring && counted < maxreq) lat[counted++] = (float)((done - pc->sent_at) * 1e6);
            if (!measuring && answered >= warmup) {
                measuring = 1;
                start = done;
                cpu0 = cpu_seconds();
                stop_at = start + seconds;
            }
            pc->got = 0;
            pc->sent_at = done;
            if (write(pc->fd, msg, size) != size) die("write");
        }
    }
    double elapsed = now() - start, cpu = cpu_seconds() - cpu0;
    if (!measuring) fail("pingpong: warm-up did not finish in time");
    qsort(lat, counted, sizeof(float), cmp_float);
    printf("{\"mode\": \"pingpong\", \"conns\": %d, \"size\": %d, \"requests\": %ld, "
           "\"seconds\": %.6f, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"cpu_pct\": %.1f, \"errors\": %ld, \"total\": %ld}\n",
           conns, size, counted, elapsed, counted / elapsed, pct(lat, counted, 0.5),
           pct(lat, counted, 0.99), 100.0 * cpu / elapsed, errors, answered);
    for (int i = 0; i < conns; i++) close(c[i].fd);
    return 0;
}

/* --- connrate -------------------------------------------------------------------- */

enum { SLOT_CONNECTING, SLOT_READING };

struct slot {
    int fd;
    int state;
    double started;
};

static int slot_start(int ep, struct slot *s, uint32_t index) {
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    congestion_control(fd);
    nodelay(fd);
    s->fd = fd;
    s->state = SLOT_CONNECTING;
    s->started = now();
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0 && errno != EINPROGRESS) {
        close(fd);
        s->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = index};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    return 0;
}

static int connrate(const char *host, int port, int concurrency, double seconds, long maxconn) {
    if (concurrency < 1 || maxconn < 1) fail("bad connrate arguments");
    const long warm = 20;
    set_target(host, port);
    raise_nofile();
    struct slot *slots = calloc(concurrency, sizeof *slots);
    float *lat = malloc(sizeof(float) * maxconn);
    if (!slots || !lat) fail("out of memory");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    long done = 0, counted = 0, errors = 0;
    double start = now(), cpu0 = cpu_seconds(), last = start;
    double stop_at = start + seconds + 10.0; /* until the warm-up cycles are done */
    for (int i = 0; i < concurrency; i++)
        if (slot_start(ep, &slots[i], (uint32_t)i) < 0) errors++;
    struct epoll_event evs[MAX_EVENTS];
    char byte = 'x';
    while (counted < maxconn) {
        double t = now();
        if (t >= stop_at) break;
        if (t - last > STALL_SECONDS) fail("connrate stalled: nothing completed for 5 s");
        if (errors > 1000) fail("connrate: more than 1000 failed connections");
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            struct slot *s = &slots[i];
            if (s->state == SLOT_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || write(s->fd, &byte, 1) != 1) {
                    errors++;
                    close(s->fd);
                    if (slot_start(ep, s, i) < 0) errors++;
                    continue;
                }
                s->state = SLOT_READING;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) < 0) die("epoll_ctl");
                continue;
            }
            char got;
            ssize_t r = read(s->fd, &got, 1);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            double finished = now();
            if (r != 1) errors++;
            close(s->fd);
            last = finished;
            done++;
            if (done == warm) {
                start = finished;
                cpu0 = cpu_seconds();
                stop_at = start + seconds;
            } else if (done > warm && counted < maxconn) {
                lat[counted++] = (float)((finished - s->started) * 1e6);
            }
            if (slot_start(ep, s, i) < 0) errors++;
        }
    }
    double elapsed = now() - start, cpu = cpu_seconds() - cpu0;
    if (done < warm) fail("connrate: warm-up did not finish in time");
    qsort(lat, counted, sizeof(float), cmp_float);
    printf("{\"mode\": \"connrate\", \"concurrency\": %d, \"connections\": %ld, "
           "\"seconds\": %.6f, \"cps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"cpu_pct\": %.1f, \"errors\": %ld, \"total\": %ld}\n",
           concurrency, counted, elapsed, counted / elapsed, pct(lat, counted, 0.5),
           pct(lat, counted, 0.99), 100.0 * cpu / elapsed, errors, done);
    for (int i = 0; i < concurrency; i++)
        if (slots[i].fd >= 0) close(slots[i].fd);
    return 0;
}

/* --- bulk ------------------------------------------------------------------------ */

static int bulk_send(const char *host, int port, long long bytes, double seconds) {
    set_target(host, port);
    char *block = malloc(CHUNK);
    if (!block) fail("out of memory");
    memset(block, 'b', CHUNK);
    int fd = connect_bounded(5.0);
    double start = now(), cpu0 = cpu_seconds(), deadline = start + seconds;
    long long sent = 0;
    int truncated = 0;
    while (sent < bytes) {
        if (!wait_fd(fd, POLLOUT, deadline)) {
            truncated = 1;
            break;
        }
        size_t n = bytes - sent < CHUNK ? (size_t)(bytes - sent) : CHUNK;
        ssize_t w = write(fd, block, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (w < 0) die("write");
        sent += w;
    }
    shutdown(fd, SHUT_WR);
    char reply[64];
    size_t got = 0;
    double reply_deadline = now() + 30.0; /* the sink drains what is in flight */
    for (;;) {
        if (!wait_fd(fd, POLLIN, reply_deadline)) fail("send: no reply from the sink in 30 s");
        ssize_t r = read(fd, reply + got, sizeof reply - 1 - got);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r < 0) die("read");
        if (r == 0) break;
        got += (size_t)r;
        if (got >= sizeof reply - 1) break;
    }
    double elapsed = now() - start, cpu = cpu_seconds() - cpu0;
    reply[got] = 0;
    long long counted = strtoll(reply, NULL, 10);
    close(fd);
    printf("{\"mode\": \"send\", \"bytes\": %lld, \"server_bytes\": %lld, \"seconds\": %.6f, "
           "\"gbps\": %.3f, \"truncated\": %s, \"cpu_pct\": %.1f, \"errors\": %d}\n",
           sent, counted, elapsed, counted * 8 / elapsed / 1e9, truncated ? "true" : "false",
           100.0 * cpu / elapsed, counted == sent ? 0 : 1);
    return 0;
}

static int bulk_recv(const char *host, int port, long long bytes, double seconds) {
    set_target(host, port);
    char *block = malloc(CHUNK);
    if (!block) fail("out of memory");
    int fd = connect_bounded(5.0);
    unsigned char request[8];
    for (int i = 0; i < 8; i++) request[i] = (unsigned char)((unsigned long long)bytes >> (56 - 8 * i));
    double start = now(), cpu0 = cpu_seconds(), deadline = start + seconds;
    if (write(fd, request, 8) != 8) die("write");
    long long received = 0;
    int truncated = 0;
    for (;;) {
        if (!wait_fd(fd, POLLIN, deadline)) {
            truncated = 1;
            break;
        }
        ssize_t r = read(fd, block, CHUNK);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r < 0) die("read");
        if (r == 0) break;
        received += r;
    }
    double elapsed = now() - start, cpu = cpu_seconds() - cpu0;
    close(fd);
    printf("{\"mode\": \"recv\", \"bytes\": %lld, \"seconds\": %.6f, \"gbps\": %.3f, "
           "\"truncated\": %s, \"cpu_pct\": %.1f, \"errors\": %d}\n",
           received, elapsed, received * 8 / elapsed / 1e9, truncated ? "true" : "false",
           100.0 * cpu / elapsed, received == bytes || truncated ? 0 : 1);
    return 0;
}

/* --- idle ------------------------------------------------------------------------ */

/* Read one line (or EOF) from stdin, waiting until the deadline: 0 on timeout. */
static int wait_line(double deadline) {
    char line[16];
    if (!wait_fd(0, POLLIN, deadline)) return 0;
    ssize_t ignored = read(0, line, sizeof line);
    (void)ignored;
    return 1;
}

/* One byte out on every held connection, at most WINDOW echoes outstanding, each
 * answer checked; the number that came back before the deadline. */
#define ECHO_WINDOW 256
static int echo_round(int *fds, int count, double deadline) {
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    char byte = 'e', got;
    int next = 0, outstanding = 0, echoed = 0;
    struct epoll_event evs[MAX_EVENTS];
    while (echoed < count) {
        while (next < count && outstanding < ECHO_WINDOW) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)next};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[next], &ev) < 0) die("epoll_ctl");
            if (write(fds[next], &byte, 1) != 1) die("idle: echo write");
            next++;
            outstanding++;
        }
        double left = deadline - now();
        if (left <= 0) break;
        int n = epoll_wait(ep, evs, MAX_EVENTS, (int)(left * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int fd = fds[evs[k].data.u32];
            ssize_t r = read(fd, &got, 1);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r == 0) fail("idle: connection closed by the server during the echo round");
            if (r < 0) die("idle: echo read");
            if (got != byte) fail("idle: wrong echo");
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            outstanding--;
            echoed++;
        }
    }
    close(ep);
    return echoed;
}

static int idle(const char *host, int port, int count, double seconds) {
    if (count < 1) fail("bad idle arguments");
    set_target(host, port);
    raise_nofile();
    int *fds = malloc(sizeof(int) * count);
    if (!fds) fail("out of memory");
    double start = now(), deadline = start + seconds;
    const int batch = 32;
    char byte = 'i';
    for (int base = 0; base < count; base += batch) {
        int end = base + batch < count ? base + batch : count;
        for (int i = base; i < end; i++) {
            if (now() >= deadline) fail("idle: deadline while connecting");
            fds[i] = connect_bounded(5.0);
            if (write(fds[i], &byte, 1) != 1) die("write");
        }
        for (int i = base; i < end; i++) {
            char got;
            for (;;) {
                if (!wait_fd(fds[i], POLLIN, deadline)) fail("idle: no echo in time");
                ssize_t r = read(fds[i], &got, 1);
                if (r == 1) break;
                if (r == 0) fail("idle: connection closed by the server");
                if (errno != EAGAIN && errno != EINTR) die("read");
            }
        }
    }
    printf("{\"mode\": \"idle\", \"held\": %d, \"open_seconds\": %.3f}\n", count,
           now() - start);
    fflush(stdout);
    if (wait_line(deadline)) { /* the first line: an echo round on every connection */
        double t0 = now();
        int echoed = echo_round(fds, count, deadline);
        printf("{\"mode\": \"idle\", \"echoed\": %d, \"missing\": %d, "
               "\"echo_seconds\": %.3f}\n", echoed, count - echoed, now() - t0);
        fflush(stdout);
        wait_line(deadline); /* the second line (or EOF): release */
    }
    for (int i = 0; i < count; i++) close(fds[i]);
    printf("{\"mode\": \"idle\", \"released\": %d}\n", count);
    return 0;
}

/* --- udp ------------------------------------------------------------------------- */

static int udp(const char *host, int port, int size, double seconds, long maxreq, long warmup) {
    if (size < 8 || size > 65507 || maxreq < 1) fail("bad udp arguments");
    set_target(host, port);
    int fd = socket(target.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    struct timeval tv = {0, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) die("connect");
    char *msg = calloc(1, size), *buf = malloc(65536);
    float *lat = malloc(sizeof(float) * maxreq);
    if (!msg || !buf || !lat) fail("out of memory");
    uint64_t seq = 0;
    long done = 0, answered = 0, lost = 0;
    double start = now(), cpu0 = cpu_seconds(), stop_at = start + seconds + 10.0;
    for (long i = -warmup; i < maxreq; i++) {
        double t0 = now();
        if (t0 >= stop_at) break;
        if (i == 0) {
            start = t0;
            cpu0 = cpu_seconds();
            stop_at = start + seconds;
        }
        seq++;
        memcpy(msg, &seq, 8);
        if (send(fd, msg, size, 0) != size) die("send");
        int ok = 0;
        for (;;) {
            ssize_t r = recv(fd, buf, 65536, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) break; /* timeout (EAGAIN), or ICMP refused: lost */
            if (r >= 8 && memcmp(buf, &seq, 8) == 0) {
                ok = r == size;
                break;
            }
        }
        double t1 = now();
        if (i < 0) continue;
        done++;
        if (ok) lat[answered++] = (float)((t1 - t0) * 1e6);
        else lost++;
    }
    double elapsed = now() - start, cpu = cpu_seconds() - cpu0;
    qsort(lat, answered, sizeof(float), cmp_float);
    printf("{\"mode\": \"udp\", \"requests\": %ld, \"answered\": %ld, \"lost\": %ld, "
           "\"seconds\": %.6f, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"cpu_pct\": %.1f}\n",
           done, answered, lost, elapsed, answered / elapsed, pct(lat, answered, 0.5),
           pct(lat, answered, 0.99), 100.0 * cpu / elapsed);
    return 0;
}

/* --- the trivial server ---------------------------------------------------------- */

enum { K_LISTEN_ECHO = 1, K_LISTEN_SINK, K_LISTEN_SOURCE, K_UDP, K_ECHO, K_SINK, K_SOURCE };

struct sconn {
    int kind;
    long long count; /* sink: received; source: left to send */
    unsigned char header[8];
    int header_got;
};

#define MAX_FDS 65536
static struct sconn conns[MAX_FDS];
static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int listen_on(int ep, const char *host, int port, int type, int kind) {
    set_target(host, port);
    int fd = socket(target.ss_family, type | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    if (type == SOCK_STREAM) congestion_control(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&target, target_len) < 0) die("bind");
    if (type == SOCK_STREAM && listen(fd, 1024) < 0) die("listen");
    if (fd >= MAX_FDS) fail("too many descriptors");
    conns[fd].kind = kind;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    return fd;
}

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    conns[fd].kind = 0;
    close(fd);
}

/* Write all of buf, waiting (bounded) for room: only bulk sources ever fill a buffer. */
static int write_all(int fd, const char *buf, size_t n) {
    double deadline = now() + 5.0;
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLOUT, deadline)) return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static void source_fill(int ep, int fd, const char *block) {
    struct sconn *c = &conns[fd];
    while (c->count > 0) {
        size_t n = c->count < CHUNK ? (size_t)c->count : CHUNK;
        ssize_t w = write(fd, block, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            return;
        }
        if (w <= 0) {
            drop(ep, fd);
            return;
        }
        c->count -= w;
    }
    shutdown(fd, SHUT_WR);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev); /* the client's close ends it */
}

static int serve(const char *host, double lifetime) {
    raise_nofile();
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    listen_on(ep, host, 7, SOCK_STREAM, K_LISTEN_ECHO);
    for (int p = 7001; p <= 7008; p++) listen_on(ep, host, p, SOCK_STREAM, K_LISTEN_ECHO);
    listen_on(ep, host, 9, SOCK_STREAM, K_LISTEN_SINK);
    listen_on(ep, host, 19, SOCK_STREAM, K_LISTEN_SOURCE);
    listen_on(ep, host, 7, SOCK_DGRAM, K_UDP);
    char *buf = malloc(CHUNK), *block = malloc(CHUNK);
    if (!buf || !block) fail("out of memory");
    memset(block, 's', CHUNK);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    double end = now() + lifetime;
    struct epoll_event evs[MAX_EVENTS];
    while (!stopping && now() < end) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            struct sconn *c = &conns[fd];
            if (c->kind == K_LISTEN_ECHO || c->kind == K_LISTEN_SINK ||
                c->kind == K_LISTEN_SOURCE) {
                for (;;) {
                    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break;
                    if (cfd >= MAX_FDS) {
                        close(cfd);
                        continue;
                    }
                    nodelay(cfd);
                    memset(&conns[cfd], 0, sizeof conns[cfd]);
                    conns[cfd].kind = c->kind == K_LISTEN_ECHO   ? K_ECHO
                                      : c->kind == K_LISTEN_SINK ? K_SINK
                                                                 : K_SOURCE;
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
            } else if (c->kind == K_UDP) {
                for (;;) {
                    struct sockaddr_storage from;
                    socklen_t len = sizeof from;
                    ssize_t r = recvfrom(fd, buf, CHUNK, 0, (struct sockaddr *)&from, &len);
                    if (r < 0) break;
                    sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, len);
                }
            } else if (c->kind == K_ECHO) {
                ssize_t r = read(fd, buf, CHUNK);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r <= 0 || write_all(fd, buf, (size_t)r) < 0) drop(ep, fd);
            } else if (c->kind == K_SINK) {
                ssize_t r = read(fd, buf, CHUNK);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r > 0) {
                    c->count += r;
                    continue;
                }
                if (r == 0) {
                    char reply[32];
                    int len = snprintf(reply, sizeof reply, "%lld\n", c->count);
                    write_all(fd, reply, (size_t)len);
                }
                drop(ep, fd);
            } else if (c->kind == K_SOURCE) {
                if (evs[k].events & EPOLLOUT) {
                    source_fill(ep, fd, block);
                    continue;
                }
                ssize_t r = read(fd, c->header + c->header_got, (size_t)(8 - c->header_got));
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r <= 0) {
                    drop(ep, fd);
                    continue;
                }
                if (c->header_got == 8) continue; /* extra bytes after the request */
                c->header_got += (int)r;
                if (c->header_got == 8) {
                    long long want = 0;
                    for (int i = 0; i < 8; i++) want = (want << 8) | c->header[i];
                    c->count = want;
                    source_fill(ep, fd, block);
                }
            }
        }
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: epoll_client pingpong HOST PORT CONNS SIZE SECONDS MAXREQ WARMUP\n"
            "       epoll_client connrate HOST PORT CONCURRENCY SECONDS MAXCONN\n"
            "       epoll_client send|recv HOST PORT BYTES SECONDS\n"
            "       epoll_client idle HOST PORT N SECONDS\n"
            "       epoll_client udp HOST PORT SIZE SECONDS MAXREQ WARMUP\n"
            "       epoll_client serve HOST LIFETIME\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(mode, "pingpong") && argc == 9)
        return pingpong(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]),
                        atol(argv[7]), atol(argv[8]));
    if (!strcmp(mode, "connrate") && argc == 7)
        return connrate(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atol(argv[6]));
    if (!strcmp(mode, "send") && argc == 6)
        return bulk_send(argv[2], atoi(argv[3]), atoll(argv[4]), atof(argv[5]));
    if (!strcmp(mode, "recv") && argc == 6)
        return bulk_recv(argv[2], atoi(argv[3]), atoll(argv[4]), atof(argv[5]));
    if (!strcmp(mode, "idle") && argc == 6)
        return idle(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    if (!strcmp(mode, "udp") && argc == 8)
        return udp(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atol(argv[6]),
                   atol(argv[7]));
    if (!strcmp(mode, "serve") && argc == 4) return serve(argv[2], atof(argv[3]));
    usage();
    return 2;
}
