"""AF_PACKET device: attach the stack to an existing Ethernet interface, such as a veth end.

Contract:

- ``PacketDevice(ifname, *, netns=None, offload=True, mode="auto", ...)`` opens a
  ``SOCK_RAW`` packet socket (packet(7)) bound to ``ifname`` for every EtherType. The
  socket is created inside network namespace ``netns`` (``device/nsenter.py``) and stays
  bound to that namespace's interface; the caller's thread returns to its own
  namespace. It implements the ``Device`` protocol (``device/base.py``).
- Frames: with ``offload`` the capabilities say ``vnet_header``, ``checksum_offload``
  and ``tso``: every frame, received and transmitted, starts with the 10-byte
  ``virtio_net_hdr`` (``device/vnet.py``). Received frames are as the kernel holds them:
  GSO super-frames of up to ~64 KB from a local sender with TSO/GSO (veth enables both,
  ``ethtool -k``; veth GRO is off, so remote traffic is not merged), ``NEEDS_CSUM`` when
  the checksum holds only the pseudo-header sum (a local sender), ``DATA_VALID`` when the
  kernel verified it, neither when software must verify it. Transmitted frames may be
  super-frames the kernel segments and checksums.
- Without ``offload``, frames are plain Ethernet with complete checksums. The socket
  still asks for the vnet header, the only way to learn a frame's checksum state: the
  device completes partial checksums itself, drops (and counts) super-frames, which it
  cannot cut without knowing TCP — turn TSO/GSO off on the peer (``ethtool -K PEER tso
  off gso off``) or use offload — and puts an all-zero header in front of each frame it
  sends (``sendmsg()`` gathers the two, ~11 % slower than ``send()``).
- ``receive(max_frames)`` never blocks and returns writable views valid until the next
  ``receive()``. ``mode="socket"`` reads with one ``recv_into()`` per frame into a reused
  buffer; ``mode="ring"`` reads a ``PACKET_RX_RING`` (TPACKET_V3) mapped into memory and
  returns views into the mapping; ``mode="auto"`` picks ``socket`` (see :data:`AUTO_MODE`).
- ``transmit(frames)`` sends one frame per ``send()``; a gathered frame (a tuple of
  buffers) per ``sendmsg()`` whose iovec is its pieces as they are (behind the zero
  header with offload off), never joined. It returns how many frames were
  accepted: it stops at the first frame the kernel refuses for lack of room (EAGAIN,
  ENOBUFS; a veth whose peer is down answers ENOBUFS too) so the caller can retry the
  rest. It checks every frame's length (all its pieces together) first and raises
  ``FrameTooLarge`` without sending anything. While the link is down, frames are
  dropped and counted, like a NIC without carrier.
- Not received: frames leaving through the interface, ours or anyone's
  (``PACKET_IGNORE_OUTGOING``, Linux >= 4.20), and frames that arrived before the socket
  was bound.
- Errors: ``DeviceNotFound`` (no such interface or namespace), ``DevicePermissionError``
  (no CAP_NET_RAW), ``DeviceGone`` from ``receive``/``transmit`` once the interface was
  deleted or moved to another namespace (and from every call after that), ``DeviceClosed``
  after ``close()``, which is idempotent.
- VLAN: the kernel strips an 802.1Q tag into packet metadata, which this device does not
  read, so tagged frames arrive untagged. Only Ethernet interfaces (ARPHRD_ETHER) open.
- ``stats`` is a :class:`PacketStats`; reading it fetches the kernel's drop counter.
- One device belongs to one thread / event loop.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import (
    ETHERNET_HEADER_LEN,
    VLAN_TAG_LEN,
    ClosesOnExit,
    DeviceCapabilities,
    DeviceClosed,
    DeviceError,
    DeviceGone,
    DeviceNotFound,
    DevicePermissionError,
    Frame,
    FrameTooLarge,
    frame_len,
)
from .nsenter import NetnsError, in_netns
from .vnet import FLAG_NEEDS_CSUM, GSO_NONE, NO_OFFLOAD, VNET_HDR_LEN

__all__ = ["AUTO_MODE", "PACKET_MODES", "PacketDevice", "PacketStats"]

logger = logging.getLogger("ethox_asyncio.device")

#: The receive modes ``PacketDevice`` accepts.
PACKET_MODES = ("auto", "socket", "ring")

#: What ``mode="auto"`` means. Measured on this machine (2 vCPUs, Linux 6.18, veth,
#: 200k frames pre-queued then drained, batches of 64): the ring hands out ~4.3 M small
#: (106 B) frames/s and ~3.1 M full-size ones, ``recv_into()`` ~0.89 M and ~0.77 M,
#: io_uring reads (256 in flight) ~0.84 M and ~0.77 M. But TPACKET_V3 wakes the reader
#: only when a block retires, so a lone frame waits for the block timeout: from send to
#: ``receive()`` median ~0.5 ms, ~1 ms at worst with the 1 ms minimum, against ~7 us for
#: the socket. The stack's own per-frame work is several microseconds (~8 us to parse a
#: UDP frame), so the ring saves at most ~10 % of the CPU per frame under a flood while
#: adding ~70x the latency to every request/response exchange — the traffic this stack
#: exists for.
#: io_uring is not used: it is no faster than ``recv_into()`` here, and writes through it
#: (~0.48 M/s) are slower than one ``send()`` per frame (~0.56 M/s), as is a
#: PACKET_TX_RING (~0.53 M/s): the per-frame cost of sending is the kernel's.
AUTO_MODE = "socket"

# <linux/if_packet.h>, <linux/if_ether.h>, <linux/sockios.h>, <linux/if_arp.h>.
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_VNET_HDR = 15
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
ETH_P_ALL = 0x0003
ETH_P_8021Q = b"\x81\x00"
ARPHRD_ETHER = 1
SO_SNDBUFFORCE = 32  # <asm-generic/socket.h>; Python's socket module lacks both
SO_RCVBUFFORCE = 33
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16s16s")  # struct ifreq: name, then a 16-byte union

#: Ring geometry. A block must hold the largest frame plus its headers: a 64 KiB GSO
#: super-frame behind the 48-byte block header, the 48-byte tpacket3_hdr, the
#: sockaddr_ll area and the vnet header (tpacket_rcv() clamps anything larger).
RING_BLOCK_LEN = 1 << 17
_RING_FRAME_LEN = 2048  # only checked by the kernel for TPACKET_V3 (frame_nr consistency)
_TPACKET_REQ3 = struct.Struct("=7I")  # block size/nr, frame size/nr, retire tov, priv, features
# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1 from offset 8.
_BLOCK_STATUS_OFFSET = 8
_BLOCK_HEADER = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt
_BLOCK_STATUS = struct.Struct("=I")
# struct tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, ...
_FRAME_HEADER = struct.Struct("=I8xII4xH")  # next_offset, snaplen, len, mac
_TPACKET_STATS = struct.Struct("=II")  # tp_packets, tp_drops (V3 appends tp_freeze_q_cnt)
_TPACKET_STATS_V3_LEN = 12
_CSUM_POSITION = struct.Struct("<HH")  # virtio_net_hdr csum_start, csum_offset
_CSUM_POSITION_OFFSET = 6

#: Largest frame the kernel hands a packet socket without BIG TCP: an IP packet of at most
#: 65535 bytes behind an Ethernet header and one VLAN tag.
_MAX_GSO_FRAME_LEN = 65535 + ETHERNET_HEADER_LEN + VLAN_TAG_LEN
#: Socket mode keeps this many super-frames' room in its receive buffer with offload on.
_SUPER_FRAMES_PER_BATCH = 16
_SOCKET_SLOT_LEN = 2048  # room per MTU-sized frame in the socket-mode receive buffer

_LINK_ERRNOS = frozenset({errno.ENETDOWN, errno.ENXIO, errno.ENODEV})
_NO_GSO = bytes([GSO_NONE])  # the virtio-net header's gso_type byte of a plain frame


@dataclass(slots=True)
class PacketStats:
    """Counters of one ``PacketDevice``; bytes include the vnet header when it is exposed."""

    rx_frames: int = 0  # handed out by receive()
    rx_bytes: int = 0
    rx_kernel_drops: int = 0  # PACKET_STATISTICS tp_drops: socket buffer or ring was full
    rx_truncated: int = 0  # larger than the receive buffer or ring block: dropped
    rx_gso_dropped: int = 0  # super-frames received with offload off: dropped
    rx_csum_completed: int = 0  # partial checksums completed in software (offload off)
    tx_frames: int = 0  # accepted by transmit()
    tx_bytes: int = 0
    tx_busy: int = 0  # transmit() calls cut short by EAGAIN / ENOBUFS
    tx_dropped: int = 0  # frames discarded because the link was down


def _frame_bytes_at(frame: Frame, start: int, stop: int) -> bytes:
    """Bytes ``start:stop`` of a frame, contiguous or gathered, without joining its pieces."""
    if not isinstance(frame, tuple):
        return bytes(frame[start:stop])
    found = []
    offset = 0
    for piece in frame:
        end = offset + len(piece)
        if end > start:
            found.append(bytes(piece[max(start - offset, 0) : stop - offset]))
        if end >= stop:
            break
        offset = end
    return b"".join(found)


def _complete_checksum(frame: memoryview) -> bool:
    """Finish the L4 checksum a ``NEEDS_CSUM`` frame (vnet header in front) carries.

    virtio 1.x §5.1.6.2: sum everything from ``csum_start`` to the end, the checksum field
    already holding the pseudo-header sum, and store the complement at ``csum_start +
    csum_offset`` — what the kernel's skb_checksum_help() does, including writing 0xFFFF
    for a zero result. Protocol-agnostic. Returns False when the offsets do not fit.
    """
    csum_start, csum_offset = _CSUM_POSITION.unpack_from(frame, _CSUM_POSITION_OFFSET)
    start = VNET_HDR_LEN + csum_start
    field = start + csum_offset
    if field + 2 > len(frame):
        return False
    total = int.from_bytes(frame[start:], "big")
    if (len(frame) - start) & 1:
        total <<= 8  # pad with a zero byte (RFC 1071 §4.1)
    remainder = total % 0xFFFF  # 2**16 ≡ 1 (mod 0xFFFF): congruent to the ones' sum
    frame[field : field + 2] = (0xFFFF - remainder if remainder else 0xFFFF).to_bytes(2, "big")
    return True


class _SocketReceiver:
    """One ``recv_into()`` per frame, frames packed back to back in one reused buffer."""

    def __init__(self, sock: socket.socket, max_frame_len: int, buffer_len: int,
                 on_error: Callable[[OSError], None]) -> None:
        self._recv_into = sock.recv_into
        self._buffer = memoryview(bytearray(buffer_len))
        self._last_start = buffer_len - max_frame_len
        self._max_frame_len = max_frame_len
        self._on_error = on_error
        self.truncated = 0

    def receive(self, max_frames: int) -> list[memoryview]:
        frames: list[memoryview] = []
        buffer, recv_into, max_len = self._buffer, self._recv_into, self._max_frame_len
        offset = 0
        while len(frames) < max_frames and offset <= self._last_start:
            try:
                # MSG_TRUNC makes a packet socket return the frame's real length (packet(7)),
                # so a frame cut to the room left is recognised and dropped.
                frame_len = recv_into(buffer[offset : offset + max_len], max_len, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError as exc:
                self._on_error(exc)
                break
            if frame_len > max_len:
                self.truncated += 1
                continue
            frames.append(buffer[offset : offset + frame_len])
            offset += frame_len
        return frames

    def close(self) -> None:
        self._buffer.release()


class _RingReceiver:
    """A TPACKET_V3 receive ring (kernel Documentation/networking/packet_mmap.rst).

    The kernel fills blocks in ring order and retires a block (``block_status`` gets
    TP_STATUS_USER) when the next frame does not fit or ``tp_retire_blk_tov`` ms after its
    first frame; poll() reports readable only for retired blocks. The reader walks
    retired blocks in the same order and gives a block back by writing TP_STATUS_KERNEL to
    its status, which it does at the next ``receive()`` since the views it handed out
    point into the block. x86-64 keeps loads in order (TSO), so reading ``block_status``
    first orders the frame reads after it; Python has no barrier for weaker CPUs.
    With PACKET_VNET_HDR the kernel writes the header just before the frame (at
    ``tp_mac - 10``), so a view that starts there is the same layout the socket returns.
    """

    def __init__(self, sock: socket.socket, blocks: int, timeout_ms: int,
                 on_error: Callable[[OSError], None]) -> None:
        frames_per_block = RING_BLOCK_LEN // _RING_FRAME_LEN
        request = _TPACKET_REQ3.pack(RING_BLOCK_LEN, blocks, _RING_FRAME_LEN,
                                     frames_per_block * blocks, timeout_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self._sock = sock
        self._mmap = mmap.mmap(sock.fileno(), RING_BLOCK_LEN * blocks, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        self._ring = memoryview(self._mmap)
        self._blocks = blocks
        self._on_error = on_error
        self._block = 0  # index of the block being read (or to be read next)
        self._frame_offset = 0  # ring offset of the next unread tpacket3_hdr in that block
        self._frames_left = 0  # unread frames in that block
        self._handed_out: list[int] = []  # blocks fully read by the previous receive()
        self.truncated = 0

    def receive(self, max_frames: int) -> list[memoryview]:
        ring = self._ring
        for base in self._handed_out:
            _BLOCK_STATUS.pack_into(ring, base + _BLOCK_STATUS_OFFSET, TP_STATUS_KERNEL)
        self._handed_out.clear()
        frames: list[memoryview] = []
        while len(frames) < max_frames and (self._frames_left or self._open_block()):
            take = min(self._frames_left, max_frames - len(frames))
            self._read_frames(take, frames)
            if not self._frames_left:
                self._handed_out.append(self._block * RING_BLOCK_LEN)
                self._block = (self._block + 1) % self._blocks
        if not frames:
            self._check_socket_error()
        return frames

    def _read_frames(self, count: int, frames: list[memoryview]) -> None:
        ring, offset = self._ring, self._frame_offset
        for _ in range(count):
            next_offset, snap_len, frame_len, mac = _FRAME_HEADER.unpack_from(ring, offset)
            if snap_len == frame_len:
                start = offset + mac
                frames.append(ring[start - VNET_HDR_LEN : start + snap_len])
            else:
                self.truncated += 1
            offset += next_offset
        self._frame_offset = offset
        self._frames_left -= count

    def _open_block(self) -> bool:
        """Start reading the next retired block; False when the kernel still owns it."""
        for _ in range(self._blocks):
            base = self._block * RING_BLOCK_LEN
            status, count, first = _BLOCK_HEADER.unpack_from(self._ring,
                                                             base + _BLOCK_STATUS_OFFSET)
            if not status & TP_STATUS_USER:
                return False
            if count:
                self._frame_offset, self._frames_left = base + first, count
                return True
            _BLOCK_STATUS.pack_into(self._ring, base + _BLOCK_STATUS_OFFSET, TP_STATUS_KERNEL)
            self._block = (self._block + 1) % self._blocks
        return False

    def _check_socket_error(self) -> None:
        # With nothing to read, a wake-up may be the socket error the kernel posts when the
        # link goes down or the interface goes away (packet_notifier()); it keeps poll()
        # reporting POLLERR until read, and only a system call reads it.
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._on_error(OSError(code, f"{errno.errorcode.get(code, code)} on the ring"))

    def close(self) -> None:
        self._handed_out.clear()
        self._ring.release()
        try:
            self._mmap.close()
        except BufferError:
            # The caller still holds frame views; the mapping goes when the last one does.
            logger.debug("packet ring still referenced by frame views; unmapped later")


def _open_socket(ifname: str, netns: str | None) -> socket.socket:
    """A packet socket created in ``netns`` that receives nothing until it is bound."""
    try:
        with in_netns(netns):
            try:
                socket.if_nametoindex(ifname)
            except OSError as exc:
                where = f"in network namespace {netns!r}" if netns else "in this namespace"
                raise DeviceNotFound(ifname, where) from exc
            # Protocol 0: "no packets are received" until bind() names a protocol
            # (packet(7)), so nothing queued between socket() and bind() reaches us.
            return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError as exc:
        raise DevicePermissionError(
            "opening an AF_PACKET socket needs CAP_NET_RAW (run as root)") from exc
    except NetnsError as exc:
        if exc.errno == errno.EPERM:
            raise DevicePermissionError(str(exc)) from exc
        raise DeviceNotFound(ifname, str(exc)) from exc


def _set_buffer_len(sock: socket.socket, force_option: int, option: int, length: int) -> None:
    """Size a socket buffer; the FORCE variant (CAP_NET_ADMIN) ignores net.core.*mem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_option, length)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, length)


class PacketDevice(ClosesOnExit):
    """An AF_PACKET socket on an existing Ethernet interface (see module doc).

    ``max_batch`` bounds one ``receive()``. Ring mode: ``ring_blocks`` blocks of
    :data:`RING_BLOCK_LEN` bytes, each retired at the latest ``block_timeout_ms`` after
    its first frame (1 ms, the smallest the kernel takes, keeps the added latency
    under ~1 ms). ``socket_buffer_len`` sizes the kernel's send and receive buffers in
    socket mode: the default 208 KiB holds only ~200 small frames, and a burst beyond
    that is dropped (``stats.rx_kernel_drops``).
    """

    def __init__(self, ifname: str, *, netns: str | None = None, offload: bool = True,
                 mode: str = "auto", max_batch: int = 64, ring_blocks: int = 64,
                 block_timeout_ms: int = 1, socket_buffer_len: int = 4 << 20) -> None:
        if mode not in PACKET_MODES:
            raise ValueError(f"mode must be one of {', '.join(PACKET_MODES)}, got {mode!r}")
        for name, value in (("max_batch", max_batch), ("ring_blocks", ring_blocks),
                            ("block_timeout_ms", block_timeout_ms),
                            ("socket_buffer_len", socket_buffer_len)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.ifname = ifname
        self.netns = netns
        self.offload = offload
        self.mode = AUTO_MODE if mode == "auto" else mode
        self._stats = PacketStats()
        self._closed = False
        self._gone = False
        self._link_down_logged = False
        self._gso_drop_logged = False
        self._sock = _open_socket(ifname, netns)
        try:
            self._configure(max_batch, ring_blocks, block_timeout_ms, socket_buffer_len)
        except BaseException:
            self._sock.close()
            raise

    def _configure(self, max_batch: int, ring_blocks: int, block_timeout_ms: int,
                   socket_buffer_len: int) -> None:
        sock = self._sock
        # Always ask for the virtio-net header, also with offload off: it is the only way
        # to learn that a frame from a local sender has a partial checksum or is a GSO
        # super-frame. It must precede the ring (the kernel answers EBUSY after).
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        # Hand frames straight to the driver, skipping the qdisc: a device that retries
        # on EAGAIN/ENOBUFS does its own queueing, and the qdisc layer costs a lock and an
        # enqueue/dequeue per frame (packet(7), PACKET_QDISC_BYPASS). Side effect: our
        # frames skip the taps too, so tcpdump on this interface does not see them.
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        # Frames leaving through this interface (the kernel's own, another socket's) are
        # not input; our own never loop back to us anyway.
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self._receiver: _SocketReceiver | _RingReceiver
        if self.mode == "ring":
            self._receiver = _RingReceiver(sock, ring_blocks, block_timeout_ms,
                                           self._on_receive_error)
        else:
            _set_buffer_len(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, socket_buffer_len)
            _set_buffer_len(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, socket_buffer_len)
        try:
            sock.bind((self.ifname, ETH_P_ALL))
        except OSError as exc:
            raise DeviceNotFound(self.ifname, f"bind: {exc.strerror}") from exc
        sock.setblocking(False)
        hardware_type = sock.getsockname()[3]
        if hardware_type != ARPHRD_ETHER:
            raise DeviceError(errno.EINVAL, f"{self.ifname!r} is not an Ethernet interface "
                                            f"(ARPHRD type {hardware_type})")
        self.mtu = self._interface_mtu()
        self.mac_address = self._interface_mac()
        self._max_plain_len = self.mtu + ETHERNET_HEADER_LEN
        if self.mode == "socket":
            # Room for a whole super-frame with offload off too, so one is recognised by
            # its vnet header and counted as such rather than as truncated.
            max_frame_len = VNET_HDR_LEN + _MAX_GSO_FRAME_LEN
            buffer_len = max_batch * _SOCKET_SLOT_LEN + max_frame_len
            if self.offload:
                buffer_len = max(buffer_len, _SUPER_FRAMES_PER_BATCH * max_frame_len)
            self._receiver = _SocketReceiver(sock, max_frame_len, buffer_len,
                                             self._on_receive_error)
        self._capabilities = DeviceCapabilities(
            mtu=self.mtu, max_batch=max_batch, checksum_offload=self.offload,
            tso=self.offload, vnet_header=self.offload)
        self._send = sock.send
        self._sendmsg = sock.sendmsg

    def _interface_mtu(self) -> int:
        # SIOCGIFMTU on the socket looks the name up in the socket's namespace.
        request = _IFREQ.pack(self.ifname.encode(), b"")
        reply = fcntl.ioctl(self._sock.fileno(), SIOCGIFMTU, request)
        return int.from_bytes(reply[16:20], "little", signed=True)

    def _interface_mac(self) -> bytes:
        request = _IFREQ.pack(self.ifname.encode(), b"")
        reply = fcntl.ioctl(self._sock.fileno(), SIOCGIFHWADDR, request)
        return bytes(reply[18:24])  # struct sockaddr: family (2 bytes), then the address

    def __repr__(self) -> str:
        where = f" in {self.netns}" if self.netns else ""
        state = "closed" if self._closed else ("gone" if self._gone else "open")
        return (f"<PacketDevice {self.ifname}{where} mode={self.mode} "
                f"offload={'on' if self.offload else 'off'} {state}>")

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self._capabilities

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> PacketStats:
        """The counters, with the kernel's drop count fetched first while the device is open."""
        if not self._closed:
            self._fetch_kernel_counters()
        return self._stats

    def _fetch_kernel_counters(self) -> None:
        # PACKET_STATISTICS clears the kernel's counters when read (packet(7)): add them up.
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS_V3_LEN)
        self._stats.rx_kernel_drops += _TPACKET_STATS.unpack_from(raw)[1]
        self._stats.rx_truncated = self._receiver.truncated

    def fileno(self) -> int:
        self._check_open()
        return self._sock.fileno()

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        self._check_usable()
        frames = self._receiver.receive(min(max_frames, self._capabilities.max_batch))
        if not self.offload:
            frames = self._strip_offload(frames)
        stats = self._stats
        stats.rx_frames += len(frames)
        for frame in frames:
            stats.rx_bytes += len(frame)
        return frames

    def _strip_offload(self, frames: list[memoryview]) -> list[memoryview]:
        """Plain frames from vnet-headed ones: complete checksums, drop super-frames."""
        plain = []
        for frame in frames:
            if frame[1] != GSO_NONE:  # gso_type
                self._drop_super_frame(len(frame) - VNET_HDR_LEN)
                continue
            if frame[0] & FLAG_NEEDS_CSUM and _complete_checksum(frame):
                self._stats.rx_csum_completed += 1
            plain.append(frame[VNET_HDR_LEN:])
        return plain

    def _drop_super_frame(self, frame_len: int) -> None:
        self._stats.rx_gso_dropped += 1
        if not self._gso_drop_logged:
            self._gso_drop_logged = True
            logger.warning("%s: dropping a %d-byte GSO super-frame: offload is off, so turn "
                           "TSO/GSO off on the sending side (ethtool -K PEER tso off gso off)",
                           self.ifname, frame_len)

    def transmit(self, frames: Sequence[Frame]) -> int:
        self._check_usable()
        self._check_lengths(frames)
        stats = self._stats
        for index, frame in enumerate(frames):
            try:
                if isinstance(frame, tuple):  # gathered: the pieces are the iovec
                    self._sendmsg(frame if self.offload else (NO_OFFLOAD, *frame))
                elif self.offload:
                    self._send(frame)
                else:
                    self._sendmsg((NO_OFFLOAD, frame))
            except BlockingIOError:
                stats.tx_busy += 1
                return index
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    stats.tx_busy += 1
                    return index
                return self._on_transmit_error(exc, index, frames)
            stats.tx_frames += 1
            stats.tx_bytes += frame_len(frame)
        self._link_down_logged = False
        return len(frames)

    def _check_lengths(self, frames: Sequence[Frame]) -> None:
        """Raise ``FrameTooLarge`` before sending anything, as the kernel would per frame.

        packet_snd() allows the MTU plus the Ethernet header, 4 bytes more for an 802.1Q
        tag, and any length for a GSO frame (vnet ``gso_type`` set).
        """
        header_len = VNET_HDR_LEN if self.offload else 0
        limit = header_len + self._max_plain_len
        for frame in frames:
            length = frame_len(frame)
            if length <= limit or (self.offload and _frame_bytes_at(frame, 1, 2) != _NO_GSO):
                continue
            ethertype = header_len + 12
            tagged = _frame_bytes_at(frame, ethertype, ethertype + 2) == ETH_P_8021Q
            if not (tagged and length <= limit + VLAN_TAG_LEN):
                raise FrameTooLarge(length - header_len, self._max_plain_len, self.mtu)

    def _on_transmit_error(self, exc: OSError, index: int, frames: Sequence[Frame]) -> int:
        if exc.errno == errno.EMSGSIZE:
            header_len = VNET_HDR_LEN if self.offload else 0
            raise FrameTooLarge(frame_len(frames[index]) - header_len, self._max_plain_len,
                                self.mtu) from exc
        if exc.errno not in _LINK_ERRNOS:
            raise DeviceError(exc.errno, f"{self.ifname}: sending frame {index} of the batch "
                                         f"failed: {exc.strerror}") from exc
        self._raise_if_gone(exc)
        dropped = len(frames) - index
        self._stats.tx_dropped += dropped
        self._log_link_down("dropping frames")
        return len(frames)

    def _on_receive_error(self, exc: OSError) -> None:
        if exc.errno not in _LINK_ERRNOS:
            raise DeviceError(exc.errno, f"{self.ifname}: receiving failed: {exc.strerror}")
        self._raise_if_gone(exc)
        self._log_link_down("nothing arrives until it is up again")

    def _raise_if_gone(self, exc: OSError) -> None:
        # After NETDEV_UNREGISTER (deleted, or moved to another namespace) the socket's
        # ifindex is -1 and getsockname() finds no name; a link that is merely down keeps it.
        if self._sock.getsockname()[0] == "":
            self._gone = True
            raise DeviceGone(self.ifname, exc.strerror or "") from exc

    def _log_link_down(self, consequence: str) -> None:
        if not self._link_down_logged:
            self._link_down_logged = True
            logger.warning("%s: link is down; %s", self.ifname, consequence)

    def close(self) -> None:
        if self._closed:
            return
        self._fetch_kernel_counters()
        self._closed = True
        self._receiver.close()
        self._sock.close()

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed(f"packet device {self.ifname}")

    def _check_usable(self) -> None:
        self._check_open()
        if self._gone:
            raise DeviceGone(self.ifname)
