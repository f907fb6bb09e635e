"""`python -m ethox_asyncio ping|echo` against the kernel in a namespace."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ethox_asyncio.netns import Topology, topology

pytestmark = pytest.mark.netns

CLIENT = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"echo me", ("198.18.0.2", 7))
print(s.recvfrom(100)[0].decode())
"""

CLIENT6 = CLIENT.replace("AF_INET", "AF_INET6").replace("198.18.0.2", "fd00::2")


@pytest.fixture
def topo() -> Iterator[Topology]:
    with topology("tap") as made:
        yield made


def cli(topo: Topology, *args: str) -> list[str]:
    return [sys.executable, "-m", "ethox_asyncio", *args, "--device", topo.device_spec,
            "--address", "198.18.0.2/24", "--address", "fd00::2/64"]


def test_ping_prints_replies_and_a_summary(topo: Topology) -> None:
    result = subprocess.run(cli(topo, "ping", "198.18.0.1", "-c", "2", "-i", "0.1"),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("bytes from 198.18.0.1: icmp_seq=") == 2
    assert "2 packets transmitted, 2 received, 0% packet loss" in result.stdout


def test_ping_over_ipv6(topo: Topology) -> None:
    result = subprocess.run(cli(topo, "ping", "fd00::1", "-c", "2", "-i", "0.1"),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "2 packets transmitted, 2 received, 0% packet loss" in result.stdout


def test_ping_to_nobody_fails_with_status_1(topo: Topology) -> None:
    result = subprocess.run(cli(topo, "ping", "198.18.0.99", "-c", "1", "-W", "0.5"),
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "1 packets transmitted, 0 received, 100% packet loss" in result.stdout


def test_echo_serves_the_kernel_and_stops_cleanly(topo: Topology) -> None:
    server = subprocess.Popen(cli(topo, "echo", "--port", "7"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "UDP echo on 198.18.0.2:7"
        assert server.stdout.readline().strip() == "UDP echo on [fd00::2]:7"
        reply = topo.run(sys.executable, "-c", CLIENT, capture_output=True, text=True)
        assert reply.stdout.strip() == "echo me", reply.stderr
        reply = topo.run(sys.executable, "-c", CLIENT6, capture_output=True, text=True)
        assert reply.stdout.strip() == "echo me", reply.stderr
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "stopped" in out


def test_missing_options_are_a_clean_error() -> None:
    result = subprocess.run([sys.executable, "-m", "ethox_asyncio", "ping", "198.18.0.1"],
                            capture_output=True, text=True, timeout=30, check=False,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "--device (or ETHOX_DEVICE) is required" in result.stderr
    assert "Traceback" not in result.stderr
