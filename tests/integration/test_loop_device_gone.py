"""The device disappearing under a running loop: reported, endpoints closed, loop alive."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Interface
from typing import Any

import pytest

import ethox_asyncio
from ethox_asyncio.config import StackConfig
from ethox_asyncio.device.base import DeviceGone
from ethox_asyncio.netns import topology

pytestmark = pytest.mark.netns


class Watcher(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.lost = asyncio.Event()

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


def test_deleting_the_tap_is_reported_and_the_loop_keeps_running() -> None:
    with topology("tap") as topo:
        config = StackConfig(device=topo.device_spec, addresses=(IPv4Interface("198.18.0.2/24"),))
        handled: list[dict[str, Any]] = []

        async def main() -> tuple[list[Exception], int]:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _loop, context: handled.append(context))
            transport, watcher = await loop.create_datagram_endpoint(
                Watcher, local_addr=("198.18.0.2", 5000))
            await loop.run_in_executor(None, lambda: topo.run(
                "ip", "link", "del", topo.kernel_ifname, check=True))
            # Traffic would wake the pump; without any, the next send does.
            transport.sendto(b"x", ("198.18.0.1", 9))
            await asyncio.wait_for(watcher.lost.wait(), 5)
            still_alive = await asyncio.wait_for(loop.run_in_executor(None, lambda: 7), 5)
            return watcher.errors, still_alive

        errors, alive = ethox_asyncio.run(main(), config=config)
    assert any(isinstance(error, DeviceGone) for error in errors), errors
    assert any(isinstance(context.get("exception"), DeviceGone) for context in handled)
    assert alive == 7
