"""An in-memory Ethernet segment whose endpoints are Devices, for tests and pair setups.

Contract:

- ``MemoryLink(n_endpoints)`` is a hub: a frame transmitted on one endpoint is queued
  on every *other* open endpoint, in order. Nothing is delivered back to the sender.
- ``transmit()`` copies every frame before returning (the caller may reuse its
  buffer; a gathered frame, a tuple of buffers, is joined into one copy), validates
  the whole batch first and raises ``FrameTooLarge`` without sending anything if one
  frame (all its pieces together) exceeds ``mtu + 14`` bytes (``mtu + 18`` when it
  carries an IEEE 802.1Q / 802.1ad tag). It returns ``len(frames)``: like a wire, the
  link accepts everything, and a receiver whose queue is full drops the frame and
  counts it in its ``stats.rx_dropped`` (tail drop, like a NIC ring).
- ``receive(max_frames)`` copies queued frames into the endpoint's own reusable
  buffers and returns writable views of them, valid until the next ``receive()``,
  exactly like a device with a buffer ring: code that keeps a view too long sees it
  overwritten here as it would on real hardware.
- ``pending()`` tells sans-IO tests how many frames wait, without any descriptor.
  ``fileno()`` creates an eventfd on first use; it polls readable exactly while frames
  are queued (the notification is drained when ``receive()`` empties the queue).
- Single-threaded: an endpoint belongs to one event loop / thread. No privileges needed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .base import (
    ETHERNET_HEADER_LEN,
    VLAN_TAG_LEN,
    ClosesOnExit,
    DeviceCapabilities,
    DeviceClosed,
    Frame,
    FrameTooLarge,
    frame_bytes,
)

__all__ = ["EndpointStats", "MemoryEndpoint", "MemoryLink"]

# Tag protocol identifiers that make a frame 4 bytes longer: IEEE 802.1Q and 802.1ad.
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
_ETHERTYPE_OFFSET = 12


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint. ``rx_*`` count frames handed out by ``receive()``."""

    tx_frames: int = 0
    tx_bytes: int = 0
    rx_frames: int = 0
    rx_bytes: int = 0
    rx_dropped: int = 0  # arrived while the receive queue was full


class MemoryEndpoint:
    """One station on a ``MemoryLink``; implements the ``Device`` protocol."""

    def __init__(
        self, link: MemoryLink, index: int, capabilities: DeviceCapabilities, rx_queue_len: int
    ) -> None:
        self.index = index
        self.stats = EndpointStats()
        self._link = link
        self._capabilities = capabilities
        self._rx_queue: deque[bytes] = deque()
        self._rx_queue_len = rx_queue_len
        buffer_len = capabilities.mtu + ETHERNET_HEADER_LEN + VLAN_TAG_LEN
        self._rx_buffers = [
            memoryview(bytearray(buffer_len)) for _ in range(capabilities.max_batch)
        ]
        self._event_fd: int | None = None
        self._event_fd_signalled = False
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._rx_queue)} pending"
        return f"<MemoryEndpoint {self.index} of {len(self._link.endpoints)}, {state}>"

    @property
    def capabilities(self) -> DeviceCapabilities:
        return self._capabilities

    @property
    def link(self) -> MemoryLink:
        """The link this endpoint is a station on (its ``endpoints`` are the peers)."""
        return self._link

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        """Frames queued for ``receive()``."""
        return len(self._rx_queue)

    def fileno(self) -> int:
        """An eventfd readable while frames are queued (created on first call)."""
        self._check_open()
        if self._event_fd is None:
            self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            if self._rx_queue:
                self._signal_readable()
        return self._event_fd

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        self._check_open()
        count = min(max_frames, len(self._rx_queue), self._capabilities.max_batch)
        views = []
        for slot in range(count):
            frame = self._rx_queue.popleft()
            frame_len = len(frame)
            buffer = self._rx_buffers[slot]
            buffer[:frame_len] = frame
            views.append(buffer[:frame_len])
            self.stats.rx_bytes += frame_len
        self.stats.rx_frames += count
        if not self._rx_queue and self._event_fd_signalled:
            self._clear_readable()
        return views

    def transmit(self, frames: Sequence[Frame]) -> int:
        self._check_open()
        copies = [frame_bytes(frame) for frame in frames]
        for frame in copies:
            self._link._check_frame_len(frame)
        for frame in copies:
            self._link._deliver(frame, sender=self)
            self.stats.tx_bytes += len(frame)
        self.stats.tx_frames += len(copies)
        return len(copies)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx_queue.clear()
        if self._event_fd is not None:
            os.close(self._event_fd)
            self._event_fd = None

    def _enqueue(self, frame: bytes) -> None:
        """Queue a frame arriving from the link, or drop and count it when full."""
        if len(self._rx_queue) >= self._rx_queue_len:
            self.stats.rx_dropped += 1
            return
        self._rx_queue.append(frame)
        if self._event_fd is not None and not self._event_fd_signalled:
            self._signal_readable()

    def _signal_readable(self) -> None:
        assert self._event_fd is not None
        os.eventfd_write(self._event_fd, 1)
        self._event_fd_signalled = True

    def _clear_readable(self) -> None:
        assert self._event_fd is not None
        os.eventfd_read(self._event_fd)  # resets the counter to 0: no longer readable
        self._event_fd_signalled = False

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosed(f"memory endpoint {self.index}")


class MemoryLink(ClosesOnExit):
    """A shared segment joining ``n_endpoints`` ``MemoryEndpoint`` devices (see module doc).

    ``rx_queue_len`` bounds each endpoint's receive queue in frames; ``max_batch``
    bounds one ``receive()``; ``checksum_offload`` is only advertised in the
    endpoints' capabilities so both sides of a test can agree to skip checksums.
    """

    def __init__(
        self,
        n_endpoints: int = 2,
        mtu: int = 1500,
        *,
        rx_queue_len: int = 1024,
        max_batch: int = 64,
        checksum_offload: bool = False,
    ) -> None:
        for name, value in (
            ("n_endpoints", n_endpoints),
            ("mtu", mtu),
            ("rx_queue_len", rx_queue_len),
            ("max_batch", max_batch),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.mtu = mtu
        self.max_frame_len = mtu + ETHERNET_HEADER_LEN
        capabilities = DeviceCapabilities(
            mtu=mtu, max_batch=max_batch, checksum_offload=checksum_offload
        )
        self.endpoints = tuple(
            MemoryEndpoint(self, index, capabilities, rx_queue_len) for index in range(n_endpoints)
        )

    def _check_frame_len(self, frame: bytes) -> None:
        """Raise ``FrameTooLarge`` unless ``frame`` fits the MTU (plus one VLAN tag)."""
        limit = self.max_frame_len
        if frame[_ETHERTYPE_OFFSET : _ETHERTYPE_OFFSET + 2] in _VLAN_TPIDS:
            limit += VLAN_TAG_LEN
        if len(frame) > limit:
            raise FrameTooLarge(len(frame), limit, self.mtu)

    def _deliver(self, frame: bytes, sender: MemoryEndpoint) -> None:
        """Queue ``frame`` on every open endpoint except ``sender``."""
        for endpoint in self.endpoints:
            if endpoint is not sender and not endpoint.closed:
                endpoint._enqueue(frame)

    def close(self) -> None:
        """Close every endpoint (releasing their descriptors)."""
        for endpoint in self.endpoints:
            endpoint.close()
