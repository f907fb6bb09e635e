"""FaultInjector over the memory link (no privileges), with a virtual clock."""

from __future__ import annotations

import itertools
import select
import struct
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from typing import Any

import pytest

from ethox_asyncio.device.base import (
    Buffer,
    Device,
    DeviceCapabilities,
    DeviceClosed,
    Frame,
    FrameTooLarge,
    frame_bytes,
)
from ethox_asyncio.device.fault import (
    TX_RETRY_INTERVAL,
    FaultInjector,
    FaultStats,
    gilbert_elliott,
)
from ethox_asyncio.device.memory import MemoryEndpoint, MemoryLink

N_FRAMES = 10_000
BATCH = 64
HEADER = bytes.fromhex("020000000002" "020000000001" "88b5")  # local experimental EtherType


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_frame(sequence: int, length: int = 64) -> bytes:
    """An Ethernet frame whose payload starts with ``sequence`` and then varies with it."""
    payload = struct.pack("!I", sequence) + bytes((sequence + i) % 251 for i in range(length))
    return HEADER + payload[: length - len(HEADER)]


def sequence_of(frame: Frame) -> int:
    value: int = struct.unpack_from("!I", frame, len(HEADER))[0]
    return value


@pytest.fixture
def link() -> Iterator[MemoryLink]:
    with MemoryLink(2, rx_queue_len=4096) as memory_link:
        yield memory_link


def receive_all(device: Device, clock: VirtualClock, *, settle: float = 10.0) -> list[bytes]:
    """Receive until the device holds nothing, letting virtual time pass when it asks."""
    frames: list[bytes] = []
    for _ in range(N_FRAMES):  # bounded: far more rounds than any test needs
        batch = device.receive(BATCH)
        frames.extend(bytes(frame) for frame in batch)
        if batch:
            continue
        poll_at = getattr(device, "poll_at", lambda: None)()
        if poll_at is None:
            return frames
        assert poll_at <= clock.now + settle, "the injector holds a frame for too long"
        clock.now = max(clock.now, poll_at)
    raise AssertionError("the injector never ran dry")


def run_rx(seed: int, count: int = N_FRAMES, **faults: float) -> tuple[list[bytes], FaultStats]:
    """Send ``count`` frames through an rx-faulty link; return what came out, and the stats."""
    clock = VirtualClock()
    with MemoryLink(2, rx_queue_len=4096) as memory_link:
        sender, receiver = memory_link.endpoints
        injector = FaultInjector(receiver, seed=seed, clock=clock, **faults)
        out: list[bytes] = []
        for start in range(0, count, BATCH):
            sender.transmit([make_frame(n) for n in range(start, min(start + BATCH, count))])
            clock.now += 0.001
            out.extend(receive_all(injector, clock))
        return out, injector.stats


def within(observed: int, expected: float, count: int = N_FRAMES) -> bool:
    """``observed`` is within five binomial standard deviations of ``expected``."""
    p = expected / count
    return abs(observed - expected) <= 5 * (count * p * (1 - p)) ** 0.5


class ListDevice:
    """A scripted device: frames to receive are queued by the test, transmitted frames
    are recorded; ``accept_per_call`` limits how many ``transmit()`` takes."""

    def __init__(self, *, vnet_header: bool = False, accept_per_call: int | None = None) -> None:
        self.capabilities = DeviceCapabilities(mtu=1500, max_batch=BATCH,
                                               vnet_header=vnet_header)
        self.incoming: list[bytes] = []
        self.sent: list[bytes] = []
        self.accept_per_call = accept_per_call
        self.deadline: float | None = None
        self.closed = False

    def fileno(self) -> int:
        return -1

    def receive(self, max_frames: int) -> Sequence[memoryview]:
        taken, self.incoming = self.incoming[:max_frames], self.incoming[max_frames:]
        return [memoryview(bytearray(frame)) for frame in taken]

    def transmit(self, frames: Sequence[Frame]) -> int:
        accepted = len(frames) if self.accept_per_call is None else min(
            len(frames), self.accept_per_call)
        self.sent.extend(frame_bytes(frame) for frame in frames[:accepted])
        return accepted

    def poll_at(self) -> float | None:
        return self.deadline

    def close(self) -> None:
        self.closed = True


# --- determinism --------------------------------------------------------------------------

ALL_FAULTS = {"drop": 0.05, "duplicate": 0.05, "reorder": 0.05, "corrupt": 0.05,
              "delay": 0.002, "jitter": 0.003}


def test_same_seed_same_outputs_and_stats() -> None:
    first = run_rx(7, 3000, **ALL_FAULTS)
    second = run_rx(7, 3000, **ALL_FAULTS)
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert first[1].rx_dropped and first[1].rx_duplicated and first[1].rx_corrupted


def test_different_seeds_differ() -> None:
    first = run_rx(7, 3000, **ALL_FAULTS)
    second = run_rx(8, 3000, **ALL_FAULTS)
    assert first[0] != second[0]
    assert astuple(first[1]) != astuple(second[1])


def test_a_frames_fate_does_not_depend_on_the_other_probabilities() -> None:
    """Every frame draws the same numbers whether a fault is enabled or not: adding
    corruption changes some bits but not which frames are dropped."""
    dropped_only, dropped_stats = run_rx(3, 2000, drop=0.1)
    also_corrupted, stats = run_rx(3, 2000, drop=0.1, corrupt=0.3)
    assert stats.rx_dropped == dropped_stats.rx_dropped
    assert len(also_corrupted) == len(dropped_only)
    bit_differences = [
        (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
        for a, b in zip(dropped_only, also_corrupted, strict=True)
    ]
    assert set(bit_differences) == {0, 1}
    assert bit_differences.count(1) == stats.rx_corrupted


# Frame fates, observed from outside: frames carry their number three times (a flipped
# bit damages at most one copy), batches enter at whole seconds and leave within one.
FATE_FRAMES = 3000
FATE_BATCH_GAP = 1.0  # seconds between batches: longer than any delay + jitter below


def fate_frame(number: int) -> bytes:
    return HEADER + struct.pack("!III", number, number, number) + bytes(
        (number + i) % 251 for i in range(38))


def fate_number(frame: bytes) -> int:
    a, b, c = struct.unpack_from("!III", frame, len(HEADER))
    return a if a in (b, c) else b


class ClockedListDevice(ListDevice):
    """A ListDevice that notes when each transmitted frame left."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent_at: list[tuple[float, bytes]] = []

    def transmit(self, frames: Sequence[Frame]) -> int:
        self.sent_at.extend((self.clock.now, bytes(frame)) for frame in frames)
        return super().transmit(frames)


def run_lane(direction: str, seed: int, *, rx_noise: bool = False,
             **faults: Any) -> list[tuple[float, bytes]]:
    """``FATE_FRAMES`` frames through one direction of an injector over a scripted device;
    returns every delivered frame with the (virtual) time it left the injector.
    ``rx_noise``: traffic in the other direction meanwhile (with ``direction="both"``)."""
    clock = VirtualClock()
    inner = ClockedListDevice(clock)
    lane = "both" if rx_noise else direction
    injector = FaultInjector(inner, seed=seed, clock=clock, direction=lane, **faults)
    delivered: list[tuple[float, bytes]] = []

    def take(frames: Sequence[Frame]) -> None:
        delivered.extend((clock.now, bytes(frame)) for frame in frames)

    for start in range(0, FATE_FRAMES, BATCH):
        clock.now = start // BATCH * FATE_BATCH_GAP
        batch = [fate_frame(n) for n in range(start, min(start + BATCH, FATE_FRAMES))]
        if direction == "rx":
            inner.incoming.extend(batch)
        else:
            assert injector.transmit(batch) == len(batch)
            if rx_noise:
                inner.incoming.extend(make_frame(n) for n in range(start, start + 7))
        for _ in range(10 * BATCH):  # drain this batch before the next one comes
            received = injector.receive(BATCH)
            if direction == "rx":
                take(received)
            if received:
                continue
            poll_at = injector.poll_at()
            if poll_at is None:
                break
            assert poll_at < clock.now + FATE_BATCH_GAP, "a frame is held past the next batch"
            clock.now = max(clock.now, poll_at)
        else:
            raise AssertionError("the injector never ran dry")
    if direction == "tx":
        delivered = inner.sent_at
    return delivered


def fates(delivered: list[tuple[float, bytes]]) -> dict[int, list[tuple[float, int | None]]]:
    """Frame number -> (time it left, bit flipped or None) for each copy that arrived."""
    result: dict[int, list[tuple[float, int | None]]] = {}
    for left_at, frame in delivered:
        number = fate_number(frame)
        difference = int.from_bytes(frame, "big") ^ int.from_bytes(fate_frame(number), "big")
        assert difference.bit_count() <= 1
        result.setdefault(number, []).append(
            (left_at, difference.bit_length() if difference else None))
    return result


@pytest.mark.parametrize("rx_noise", [False, True], ids=["tx_only", "with_rx_traffic"])
def test_same_seed_same_transmitted_sequence(rx_noise: bool) -> None:
    """Two injectors, same seed and parameters, same frames handed to ``transmit()``:
    the same frames reach the inner device, in the same order, at the same (virtual)
    times — also when one of them is receiving traffic meanwhile (its own generator)."""
    faults = {**ALL_FAULTS, "reorder": 0.1}
    first = run_lane("tx", 21, **faults)
    second = run_lane("tx", 21, rx_noise=rx_noise, **faults)
    assert first == second
    numbers = [fate_number(frame) for _, frame in first]
    assert len(set(numbers)) < FATE_FRAMES  # frames were dropped
    assert len(numbers) > len(set(numbers))  # and duplicated
    assert numbers != sorted(numbers)  # and reordered
    assert sum(frame != fate_frame(fate_number(frame)) for _, frame in first) > 0  # corrupted
    assert run_lane("tx", 22, **faults) != first


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_drop_rate_changes_no_other_decision_about_a_frame(direction: str) -> None:
    """docs/layers/devices.md: frame k meets the same fate whatever the other
    probabilities are. With drop 0.1 or 0.3 (same seed), the frames 0.3 drops include
    every frame 0.1 drops, and a frame both let through is corrupted in the same bit,
    duplicated or not alike, and delayed by the same jitter."""
    faults = {"corrupt": 0.2, "duplicate": 0.2, "delay": 0.01, "jitter": 0.2}
    light = fates(run_lane(direction, 5, drop=0.1, **faults))
    heavy = fates(run_lane(direction, 5, drop=0.3, **faults))
    assert set(heavy) < set(light)  # the same draw decides: below 0.1 is below 0.3
    assert within(FATE_FRAMES - len(light), 0.1 * FATE_FRAMES, FATE_FRAMES)
    assert within(FATE_FRAMES - len(heavy), 0.3 * FATE_FRAMES, FATE_FRAMES)
    for number, copies in heavy.items():
        assert copies == light[number], f"frame {number}"
    assert any(len(copies) == 2 for copies in heavy.values())
    assert any(bit is not None for copies in heavy.values() for _, bit in copies)
    assert len({at for copies in heavy.values() for at, _ in copies}) > len(heavy) // 2


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_drop_rate_changes_which_frames_are_held_only_through_the_held_frame_rule(
        direction: str) -> None:
    """Reordering: whether frame k is *chosen* to be held back is its own draw, the same
    for drop 0.1 and 0.3. Whether it really is held also depends on its predecessor (a
    frame arriving while another is held releases it and is never held itself), and the
    drop rate decides which frame that predecessor is: the one exception to "the same
    fate" (devices.md says so)."""
    faults = {"reorder": 0.3, "corrupt": 0.2, "duplicate": 0.2}
    light = run_lane(direction, 6, drop=0.1, **faults)
    heavy = run_lane(direction, 6, drop=0.3, **faults)
    chosen_light, chosen_heavy = chosen_to_be_held(light), chosen_to_be_held(heavy)
    both = chosen_light.keys() & chosen_heavy.keys()
    assert all(chosen_light[n] == chosen_heavy[n] for n in both)
    assert sum(chosen_light[n] for n in both) > 100 and sum(
        not chosen_light[n] for n in both) > 500  # the comparison is not vacuous
    held_light = {n for n, held in chosen_light.items() if held}
    held_heavy = {n for n, held in chosen_heavy.items() if held}
    light_fates, heavy_fates = fates(light), fates(heavy)
    survivors = light_fates.keys() & heavy_fates.keys()
    assert (held_light ^ held_heavy) & survivors, "the held-frame rule never made a difference"
    for number in survivors:  # corruption and duplication are still the frame's own
        assert [bit for _, bit in light_fates[number]] == [bit for _, bit in heavy_fates[number]]


def chosen_to_be_held(delivered: list[tuple[float, bytes]]) -> dict[int, bool]:
    """For each frame whose reorder draw the output reveals: was it chosen to be held?

    Without delay, a frame that was not held leaves the moment it arrives (at its
    batch's time). A held frame leaves after its successor, or alone when
    ``reorder_timeout`` passes. A frame that arrived while its predecessor was held
    (and released it) was never offered the choice: unknown, left out.
    """
    order: list[int] = []
    left_at: dict[int, float] = {}
    for at, frame in delivered:
        number = fate_number(frame)
        if number not in left_at:
            order.append(number)
            left_at[number] = at
    survivors = sorted(order)
    position = {number: index for index, number in enumerate(order)}
    held = {n for n in survivors
            if left_at[n] > n // BATCH * FATE_BATCH_GAP  # timed out
            or any(later > n for later in order[max(0, position[n] - 1):position[n]])}
    chosen: dict[int, bool] = {}
    previous: int | None = None
    for number in survivors:
        released_predecessor = (previous is not None and previous in held
                                and left_at[previous] == number // BATCH * FATE_BATCH_GAP)
        if number in held:
            chosen[number] = True
        elif not released_predecessor:
            chosen[number] = False
        previous = number
    return chosen


# --- each fault's statistics (10 000 frames) ----------------------------------------------

def test_no_faults_passes_frames_through_untouched(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(receiver)
    frames = [make_frame(n) for n in range(10)]
    sender.transmit(frames)
    received = injector.receive(BATCH)
    assert [bytes(frame) for frame in received] == frames
    assert injector.poll_at() is None
    assert injector.stats == FaultStats()  # a pass-through lane counts nothing


def test_drop_statistics() -> None:
    out, stats = run_rx(1, drop=0.1)
    assert within(stats.rx_dropped, 0.1 * N_FRAMES)
    assert len(out) == N_FRAMES - stats.rx_dropped == stats.rx_frames - stats.rx_dropped
    sequences = [sequence_of(frame) for frame in out]
    assert sequences == sorted(sequences)  # dropping alone keeps order


def test_duplicate_statistics_and_copies_follow_their_original() -> None:
    out, stats = run_rx(2, duplicate=0.1)
    assert within(stats.rx_duplicated, 0.1 * N_FRAMES)
    assert len(out) == N_FRAMES + stats.rx_duplicated
    sequences = [sequence_of(frame) for frame in out]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == N_FRAMES


def test_reorder_statistics() -> None:
    out, stats = run_rx(3, reorder=0.1)
    # A frame arriving while another is held is never held: p / (1 + p) of the frames.
    assert within(stats.rx_reordered, N_FRAMES * 0.1 / 1.1)
    sequences = [sequence_of(frame) for frame in out]
    assert sorted(sequences) == list(range(N_FRAMES))
    swaps = sum(1 for a, b in itertools.pairwise(sequences) if a > b)
    assert swaps == stats.rx_reordered


def test_corrupt_statistics() -> None:
    out, stats = run_rx(4, corrupt=0.1)
    assert within(stats.rx_corrupted, 0.1 * N_FRAMES)
    damaged = sum(1 for n, frame in enumerate(out) if frame != make_frame(n))
    assert damaged == stats.rx_corrupted
    assert len(out) == N_FRAMES


# --- reorder, corrupt, duplicate in detail -------------------------------------------------

def test_reorder_swaps_neighbours_and_times_out_the_last(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    injector = FaultInjector(receiver, reorder=1.0, reorder_timeout=0.25, clock=clock)
    sender.transmit([make_frame(n) for n in range(5)])
    assert [sequence_of(f) for f in injector.receive(BATCH)] == [1, 0, 3, 2]
    assert injector.stats.rx_reordered == 2
    assert injector.poll_at() == 0.25  # frame 4 waits for a successor, but not forever
    clock.now = 0.2
    assert injector.receive(BATCH) == []
    clock.now = 0.25
    assert [sequence_of(f) for f in injector.receive(BATCH)] == [4]
    assert injector.stats.rx_reordered == 2  # a timed-out frame was not reordered
    assert injector.poll_at() is None


def test_held_frame_survives_the_inner_devices_buffer_reuse(link: MemoryLink) -> None:
    """The memory link reuses its receive buffers: a held frame must be a copy."""
    sender, receiver = link.endpoints
    injector = FaultInjector(receiver, reorder=1.0)
    sender.transmit([make_frame(0)])
    assert injector.receive(BATCH) == []  # frame 0 held
    sender.transmit([make_frame(1)])  # lands in the buffer frame 0 came in
    assert [bytes(f) for f in injector.receive(BATCH)] == [make_frame(1), make_frame(0)]


@pytest.mark.parametrize(
    ("vnet_header", "prefix", "protected_len"),
    [
        (False, b"", 14),
        (True, bytes(10), 24),
        (False, HEADER[:12] + b"\x81\x00\x00\x05", 18),  # 802.1Q tag: the TCI is protected too
        (True, bytes(10) + HEADER[:12] + b"\x88\xa8\x00\x05", 28),  # 802.1ad
    ],
)
def test_corrupt_flips_exactly_one_bit_outside_the_headers(
    vnet_header: bool, prefix: bytes, protected_len: int
) -> None:
    inner = ListDevice(vnet_header=vnet_header)
    injector = FaultInjector(inner, corrupt=1.0, seed=5)
    originals = [prefix + make_frame(n, 60 + n % 40) for n in range(2000)]
    inner.incoming = list(originals)
    received = receive_all(injector, VirtualClock())
    assert len(received) == len(originals) == injector.stats.rx_corrupted
    flipped_offsets = set()
    for original, damaged in zip(originals, received, strict=True):
        difference = int.from_bytes(original, "big") ^ int.from_bytes(damaged, "big")
        assert difference.bit_count() == 1
        offset = len(original) - 1 - (difference.bit_length() - 1) // 8
        assert offset >= protected_len
        flipped_offsets.add(offset)
    assert min(flipped_offsets) == protected_len  # the first unprotected byte is fair game
    assert max(flipped_offsets) >= protected_len + 50  # and so is the rest


def test_a_frame_with_nothing_past_the_header_is_not_corrupted() -> None:
    inner = ListDevice()
    injector = FaultInjector(inner, corrupt=1.0)
    inner.incoming = [HEADER]
    assert [bytes(f) for f in injector.receive(BATCH)] == [HEADER]
    assert injector.stats.rx_corrupted == 0


def test_corrupting_on_transmit_leaves_the_callers_buffer_alone(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(sender, corrupt=1.0, direction="tx")
    frame = bytearray(make_frame(0))
    injector.transmit([frame])
    assert frame == make_frame(0)  # a retransmission queue keeps its data
    (received,) = receiver.receive(BATCH)
    assert bytes(received) != make_frame(0)


def test_duplicates_are_independent_copies(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(receiver, duplicate=1.0)
    sender.transmit([make_frame(0)])
    first, second = injector.receive(BATCH)
    assert bytes(first) == bytes(second) == make_frame(0)
    first[20] ^= 0xFF  # the stack edits frames in place (e.g. answering an echo request)
    assert bytes(second) == make_frame(0)
    assert injector.stats.rx_duplicated == 1


def test_duplicates_beyond_the_batch_wait_for_the_next_receive(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    injector = FaultInjector(receiver, duplicate=1.0, clock=clock)
    sender.transmit([make_frame(n) for n in range(3)])
    assert [sequence_of(f) for f in injector.receive(3)] == [0, 0, 1]
    assert receiver.pending() == 0
    poll_at = injector.poll_at()
    assert poll_at is not None and poll_at <= clock.now  # ready now, fd not readable
    sender.transmit([make_frame(3)])
    assert [sequence_of(f) for f in injector.receive(3)] == [1, 2, 2]
    assert [sequence_of(f) for f in injector.receive(3)] == [3, 3]
    assert injector.poll_at() is None


# --- burst loss (Gilbert–Elliott) and drop_if ----------------------------------------------

BURST_FRAMES = 40_000


def lost_frames(seed: int, count: int, **faults: Any) -> tuple[set[int], FaultStats]:
    """Frames 0..count-1 received through an rx-faulty scripted device (no delay, no
    reordering): the numbers of those that did not come out, and the stats."""
    inner = ListDevice()
    injector = FaultInjector(inner, seed=seed, clock=VirtualClock(), direction="rx",
                             **faults)
    inner.incoming = [make_frame(n) for n in range(count)]
    out = receive_all(injector, VirtualClock())
    return set(range(count)) - {sequence_of(frame) for frame in out}, injector.stats


def runs(numbers: set[int]) -> list[int]:
    """Lengths of the runs of consecutive numbers in ``numbers``, in order."""
    lengths: list[int] = []
    previous = None
    for number in sorted(numbers):
        if previous is not None and number == previous + 1:
            lengths[-1] += 1
        else:
            lengths.append(1)
        previous = number
    return lengths


def test_gilbert_elliott_parameters() -> None:
    enter, exit_ = gilbert_elliott(0.01, 3)
    assert exit_ == pytest.approx(1 / 3)
    assert enter / (enter + exit_) == pytest.approx(0.01)  # the stationary loss
    assert gilbert_elliott(0.5, 1) == (1.0, 1.0)  # lose every second frame, alone
    for loss, mean_burst, message in [
        (0.0, 3, "loss is a fraction in \\(0, 1\\), got 0.0"),
        (1.0, 3, "loss is a fraction"),
        (0.1, 0.5, "mean_burst is a number of frames >= 1, got 0.5"),
        (0.9, 2, "mean_burst must be >= 9"),
    ]:
        with pytest.raises(ValueError, match=message):
            gilbert_elliott(loss, mean_burst)


def test_burst_lengths_are_geometric_with_the_requested_mean_and_loss() -> None:
    """Mean burst 4 at 5 % loss: bursts are runs of lost frames (a burst ends on a frame
    that gets through), geometric with P(length n) = r (1 - r)^(n - 1), r = 1/4."""
    enter, exit_ = gilbert_elliott(0.05, 4)
    lost, stats = lost_frames(11, BURST_FRAMES, burst_enter=enter, burst_exit=exit_)
    lengths = runs(lost)
    bursts = len(lengths)
    assert bursts == stats.rx_bursts
    assert len(lost) == stats.rx_dropped == stats.rx_burst_dropped
    assert stats.rx_targeted == 0 and stats.rx_frames == BURST_FRAMES
    assert within(bursts, BURST_FRAMES * 0.95 * enter, BURST_FRAMES)  # ≈ 500 starts
    mean = len(lost) / bursts
    assert abs(mean - 4) < 5 * ((1 - exit_) / exit_**2 / bursts) ** 0.5, mean
    assert abs(len(lost) / BURST_FRAMES - 0.05) < 0.02
    for n in range(1, 7):
        expected = bursts * exit_ * (1 - exit_) ** (n - 1)
        assert within(lengths.count(n), expected, bursts), (n, lengths.count(n), expected)
    assert max(lengths) > 12  # a real tail: P(length > 12) = 0.75**12 ≈ 3 %


def test_without_bursts_the_counters_stay_zero() -> None:
    lost, stats = lost_frames(1, 2000, drop=0.1)
    assert (stats.rx_bursts, stats.rx_burst_dropped, stats.rx_targeted) == (0, 0, 0)
    assert len(lost) == stats.rx_dropped > 0
    # burst_exit alone (no burst_enter) changes nothing
    assert lost_frames(1, 2000, drop=0.1, burst_exit=0.0) == (lost, stats)


def test_burst_loss_is_deterministic_per_seed_and_direction() -> None:
    """Same seed, same bursts — also with traffic in the other direction meanwhile; a
    different seed or the other direction draws other bursts."""
    enter, exit_ = gilbert_elliott(0.05, 3)
    burst = {"burst_enter": enter, "burst_exit": exit_}
    first = run_lane("tx", 31, **burst)
    assert run_lane("tx", 31, **burst) == first
    assert run_lane("tx", 31, rx_noise=True, **burst) == first
    sent = {fate_number(frame) for _, frame in first}
    assert runs(set(range(FATE_FRAMES)) - sent)  # some frames were lost
    assert run_lane("tx", 32, **burst) != first
    assert {fate_number(frame) for _, frame in run_lane("rx", 31, **burst)} != sent


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_burst_loss_changes_no_other_decision_about_a_frame(direction: str) -> None:
    """The burst channel has its own generator: with it, the frames lost are those lost
    without it plus those it drops, and every survivor is corrupted, duplicated and
    delayed exactly as without it."""
    faults = {"drop": 0.1, "corrupt": 0.2, "duplicate": 0.2, "delay": 0.01, "jitter": 0.2}
    enter, exit_ = gilbert_elliott(0.1, 5)
    burst = {"burst_enter": enter, "burst_exit": exit_}
    plain = fates(run_lane(direction, 5, **faults))
    bursty = fates(run_lane(direction, 5, **faults, **burst))
    burst_only = fates(run_lane(direction, 5, **burst))
    everything = set(range(FATE_FRAMES))
    lost_plain, lost_burst = everything - plain.keys(), everything - burst_only.keys()
    assert lost_burst - lost_plain and lost_plain - lost_burst  # not vacuous
    assert everything - bursty.keys() == lost_plain | lost_burst
    for number, copies in bursty.items():
        assert copies == plain[number], f"frame {number}"


def test_drop_if_sees_every_frame_once_in_order_and_drops_its_choice() -> None:
    """Called for every frame of a faulty direction, dropped or not, with the lane, the
    frame's number in it and its (contiguous) bytes; alone it makes the lane faulty."""
    calls: list[tuple[str, int, bytes]] = []

    def drop_if(lane: str, index: int, frame: Buffer) -> bool:
        calls.append((lane, index, bytes(frame)))
        return (lane, index) in {("rx", 2), ("rx", 5), ("tx", 1)}

    inner = ListDevice()
    injector = FaultInjector(inner, drop_if=drop_if, drop=1.0, direction="both",
                             clock=VirtualClock())
    inner.incoming = [make_frame(n) for n in range(8)]
    received = [sequence_of(frame) for frame in receive_all(injector, VirtualClock())]
    assert received == []  # drop=1.0 drops the rest
    assert calls == [("rx", n, make_frame(n)) for n in range(8)]
    calls.clear()
    injector = FaultInjector(inner, drop_if=drop_if, direction="both", clock=VirtualClock())
    inner.incoming = [make_frame(n) for n in range(8)]
    received = [sequence_of(frame) for frame in receive_all(injector, VirtualClock())]
    assert received == [0, 1, 3, 4, 6, 7]
    assert injector.transmit([gathered(make_frame(n, 100)) for n in range(3)]) == 3
    assert [sequence_of(frame) for frame in inner.sent] == [0, 2]
    assert calls == [("rx", n, make_frame(n)) for n in range(8)] + [
        ("tx", n, make_frame(n, 100)) for n in range(3)]
    stats = injector.stats
    assert (stats.rx_frames, stats.rx_dropped, stats.rx_targeted) == (8, 2, 2)
    assert (stats.tx_frames, stats.tx_dropped, stats.tx_targeted) == (3, 1, 1)
    assert stats.rx_burst_dropped == stats.tx_burst_dropped == 0


def test_drop_if_only_acts_on_the_faulty_direction(link: MemoryLink) -> None:
    a, b = link.endpoints
    seen: list[str] = []
    injector = FaultInjector(a, drop_if=lambda lane, index, frame: seen.append(lane) is None,
                             direction="tx")
    b.transmit([make_frame(7)])
    assert [sequence_of(f) for f in injector.receive(BATCH)] == [7]
    assert injector.transmit([make_frame(1)]) == 1
    assert b.pending() == 0 and seen == ["tx"]


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_drop_if_changes_no_other_decision_about_a_frame(direction: str) -> None:
    """drop_if draws nothing: the frames lost are the random ones plus its choice, and
    the survivors meet the same fate."""
    faults = {"drop": 0.1, "corrupt": 0.2, "duplicate": 0.2, "delay": 0.01, "jitter": 0.2}
    plain = fates(run_lane(direction, 8, **faults))
    chosen = fates(run_lane(direction, 8, drop_if=lambda lane, index, frame: index % 7 == 0,
                            **faults))
    everything = set(range(FATE_FRAMES))
    sevenths = {n for n in everything if n % 7 == 0}
    assert everything - chosen.keys() == (everything - plain.keys()) | sevenths
    for number, copies in chosen.items():
        assert copies == plain[number], f"frame {number}"


def test_each_lost_frame_counts_for_one_reason() -> None:
    """drop_if first, then the burst, then ``drop``; ``dropped`` counts them all."""
    enter, exit_ = gilbert_elliott(0.05, 3)
    burst = {"burst_enter": enter, "burst_exit": exit_}
    sevenths = {n for n in range(N_FRAMES) if n % 7 == 0}
    lost_burst, _ = lost_frames(4, N_FRAMES, **burst)
    lost_drop, _ = lost_frames(4, N_FRAMES, drop=0.1)
    lost, stats = lost_frames(4, N_FRAMES, drop=0.1,
                              drop_if=lambda lane, index, frame: index % 7 == 0, **burst)
    assert lost == lost_burst | lost_drop | sevenths
    assert lost_burst & lost_drop and lost_burst & sevenths  # the overlaps exist
    assert stats.rx_dropped == len(lost)
    assert stats.rx_targeted == len(sevenths)
    assert stats.rx_burst_dropped == len(lost_burst - sevenths)
    assert stats.rx_bursts == len(runs(lost_burst))


# --- delay through poll_at ----------------------------------------------------------------

def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_delay_releases_frames_at_poll_at(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    clock.now = 100.0
    injector = FaultInjector(receiver, delay=0.5, clock=clock)
    sender.transmit([make_frame(n) for n in range(3)])
    assert readable(injector.fileno())
    assert injector.receive(BATCH) == []
    assert not readable(injector.fileno())  # the frames are ours now: only poll_at knows
    assert injector.poll_at() == 100.5
    assert injector.stats.rx_delayed == 3
    clock.now = 100.499
    assert injector.receive(BATCH) == []
    clock.now = 100.5
    assert [sequence_of(f) for f in injector.receive(BATCH)] == [0, 1, 2]
    assert injector.poll_at() is None


def test_jitter_spreads_release_times_within_bounds(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    injector = FaultInjector(receiver, delay=1.0, jitter=0.5, clock=clock, seed=9)
    sender.transmit([make_frame(n) for n in range(50)])
    assert injector.receive(BATCH) == []
    release_times = []
    for _ in range(50):
        poll_at = injector.poll_at()
        if poll_at is None:
            break
        assert 1.0 <= poll_at < 1.5
        clock.now = poll_at
        release_times.extend([poll_at] * len(injector.receive(BATCH)))
    assert len(release_times) == 50
    assert len(set(release_times)) > 40  # distinct times, so the order is shuffled


def test_delay_on_transmit_is_released_by_receive(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    injector = FaultInjector(sender, delay=0.1, direction="tx", clock=clock)
    reused = bytearray(make_frame(0))
    assert injector.transmit([reused]) == 1
    reused[:] = make_frame(99)  # the caller reuses its buffer at once
    assert receiver.pending() == 0
    assert injector.poll_at() == 0.1
    clock.now = 0.1
    assert injector.receive(BATCH) == []  # nothing to receive, but the timer work runs
    assert [bytes(f) for f in receiver.receive(BATCH)] == [make_frame(0)]


# --- gathered frames on transmit ----------------------------------------------------------

def gathered(frame: bytes) -> tuple[bytearray, bytearray, memoryview]:
    """``frame`` in three pieces as the stack hands it over: a header bytearray split in
    two, then the payload as a read-only view of application bytes."""
    return bytearray(frame[:6]), bytearray(frame[6:20]), memoryview(frame[20:])


def test_gathered_frames_pass_a_direction_without_faults_untouched(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(sender, drop=1.0, direction="rx")
    frames = [make_frame(n, 100) for n in range(3)]
    assert injector.transmit([gathered(frame) for frame in frames]) == 3
    assert [bytes(f) for f in receiver.receive(BATCH)] == frames
    assert sender.stats.tx_bytes == 300


def test_gathered_frames_are_joined_before_their_faults(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    clock = VirtualClock()
    injector = FaultInjector(sender, corrupt=1.0, duplicate=1.0, delay=0.1, direction="tx",
                             clock=clock, seed=3)
    original = make_frame(0, 200)
    pieces = gathered(original)
    assert injector.transmit([pieces]) == 1
    assert b"".join(pieces) == original  # the caller's pieces are never damaged
    pieces[1][:] = bytes(14)  # and may be reused at once: the held frame owns its data
    clock.now = 0.1
    assert injector.receive(BATCH) == []  # releases the delayed transmit frames
    first, second = (bytes(f) for f in receiver.receive(BATCH))
    assert first == second  # the duplicate is a copy of the damaged frame
    difference = int.from_bytes(original, "big") ^ int.from_bytes(first, "big")
    assert difference.bit_count() == 1
    assert len(original) - 1 - (difference.bit_length() - 1) // 8 >= 14
    stats = injector.stats
    assert (stats.tx_frames, stats.tx_corrupted, stats.tx_duplicated) == (1, 1, 1)


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_a_gathered_frame_beyond_the_mtu_sends_nothing(link: MemoryLink, direction: str) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(sender, duplicate=1.0, direction=direction)
    too_large = make_frame(1, 1515)
    with pytest.raises(FrameTooLarge, match="1515 bytes"):
        injector.transmit([gathered(make_frame(0)), gathered(too_large)])
    assert receiver.pending() == 0
    assert sender.stats.tx_frames == 0


# --- transmit direction, refusal, lifecycle -----------------------------------------------

def test_direction_limits_the_faults(link: MemoryLink) -> None:
    a, b = link.endpoints
    tx_only = FaultInjector(a, drop=1.0, direction="tx")
    assert tx_only.transmit([make_frame(n) for n in range(5)]) == 5  # dropped, as a wire would
    assert b.pending() == 0
    b.transmit([make_frame(7)])
    assert [sequence_of(f) for f in tx_only.receive(BATCH)] == [7]
    assert (tx_only.stats.tx_dropped, tx_only.stats.rx_frames) == (5, 0)

    rx_only = FaultInjector(b, drop=1.0, direction="rx")
    a.transmit([make_frame(1)])
    assert rx_only.receive(BATCH) == []
    rx_only.transmit([make_frame(2)])
    assert [sequence_of(f) for f in a.receive(BATCH)] == [2]


def test_transmit_statistics() -> None:
    with MemoryLink(2, rx_queue_len=2 * N_FRAMES) as memory_link:
        a, b = memory_link.endpoints
        injector = FaultInjector(a, drop=0.1, duplicate=0.1, seed=11, direction="tx")
        frames = [make_frame(n) for n in range(N_FRAMES)]
        assert injector.transmit(frames) == N_FRAMES
        out = [sequence_of(f) for _ in range(2 * N_FRAMES // BATCH + 1)
               for f in b.receive(BATCH)]
    stats = injector.stats
    assert stats.tx_frames == N_FRAMES
    assert within(stats.tx_dropped, 0.1 * N_FRAMES)
    # Only survivors of the drop step may be duplicated: 10 % of 90 %.
    assert within(stats.tx_duplicated, 0.09 * N_FRAMES)
    assert len(out) == N_FRAMES - stats.tx_dropped + stats.tx_duplicated
    assert out == sorted(out)
    assert (stats.rx_frames, stats.rx_dropped) == (0, 0)


def test_refused_frames_are_kept_in_order_and_push_back() -> None:
    inner = ListDevice(accept_per_call=3)
    clock = VirtualClock()
    injector = FaultInjector(inner, duplicate=1.0, direction="tx", clock=clock)
    caller_buffer = bytearray(make_frame(1))
    assert injector.transmit([make_frame(0), caller_buffer]) == 2  # 4 frames, 3 taken
    caller_buffer[:] = make_frame(99)  # the refused frame was copied
    assert [sequence_of(f) for f in inner.sent] == [0, 0, 1]
    assert injector.poll_at() == TX_RETRY_INTERVAL
    assert injector.transmit([make_frame(2)]) == 0  # nothing new may overtake frame 1
    assert [sequence_of(f) for f in inner.sent] == [0, 0, 1]  # too early for a retry
    clock.now = TX_RETRY_INTERVAL
    assert injector.receive(BATCH) == []  # the timer work retries
    assert injector.poll_at() is None
    assert injector.transmit([make_frame(2)]) == 1
    assert [sequence_of(f) for f in inner.sent] == [0, 0, 1, 1, 2, 2]


def test_poll_at_includes_the_inner_devices_deadline() -> None:
    inner = ListDevice()
    injector = FaultInjector(inner, delay=5.0, clock=VirtualClock())
    assert injector.poll_at() is None
    inner.deadline = 3.0
    assert injector.poll_at() == 3.0
    inner.incoming = [make_frame(0)]
    assert injector.receive(BATCH) == []
    assert injector.poll_at() == 3.0
    inner.deadline = 9.0
    assert injector.poll_at() == 5.0


def test_close_is_idempotent_and_closes_inner(link: MemoryLink) -> None:
    sender, receiver = link.endpoints
    injector = FaultInjector(receiver, delay=1.0)
    sender.transmit([make_frame(0)])
    injector.receive(BATCH)
    injector.close()
    injector.close()
    assert isinstance(receiver, MemoryEndpoint) and receiver.closed
    assert injector.poll_at() is None  # held frames were discarded
    for call in (injector.fileno, lambda: injector.receive(1), lambda: injector.transmit([])):
        with pytest.raises(DeviceClosed, match="fault injector is closed"):
            call()


def test_is_a_device(link: MemoryLink) -> None:
    injector = FaultInjector(link.endpoints[0])
    assert isinstance(injector, Device)
    assert injector.capabilities is link.endpoints[0].capabilities


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": 1.5}, "drop is a probability in \\[0, 1\\], got 1.5"),
        ({"corrupt": -0.1}, "corrupt is a probability"),
        ({"delay": -1.0}, "delay is a duration in seconds >= 0"),
        ({"jitter": -1.0}, "jitter is a duration"),
        ({"reorder_timeout": 0.0}, "reorder_timeout must be positive"),
        ({"burst_enter": 1.5}, "burst_enter is a probability in \\[0, 1\\], got 1.5"),
        ({"burst_exit": -0.5}, "burst_exit is a probability in \\[0, 1\\], got -0.5"),
        ({"burst_enter": 0.1, "burst_exit": 0.0},
         "burst_exit must be > 0 when burst_enter is \\(a burst would never end\\), got 0.0"),
        ({"direction": "up"}, "direction must be one of rx, tx, both, got 'up'"),
    ],
)
def test_invalid_arguments(link: MemoryLink, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultInjector(link.endpoints[0], **kwargs)


def test_drop_if_must_be_callable(link: MemoryLink) -> None:
    with pytest.raises(TypeError, match="drop_if must be a callable \\(lane, index, frame\\)"):
        FaultInjector(link.endpoints[0], drop_if={3, 4})  # type: ignore[arg-type]
