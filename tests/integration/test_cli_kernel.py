"""`python -m ethox_asyncio ping|echo|connect` against the kernel in a namespace."""

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

TCP_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=5)
data = bytes(range(256)) * 400
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
print("tcp-echo-ok" if got == data else f"tcp-echo-wrong {len(got)}")
"""

# One connection: answers every chunk upper-cased, closes at the client's EOF.
UPPER_SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 7700))
server.listen(1)
server.settimeout(20)
print("ready", flush=True)
conn, _ = server.accept()
conn.settimeout(20)
while chunk := conn.recv(65536):
    conn.sendall(chunk.upper())
conn.close()
"""


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
        assert server.stdout.readline().strip() == "TCP echo on 198.18.0.2:7"
        assert server.stdout.readline().strip() == "TCP echo on [fd00::2]:7"
        reply = topo.run(sys.executable, "-c", CLIENT, capture_output=True, text=True)
        assert reply.stdout.strip() == "echo me", reply.stderr
        reply = topo.run(sys.executable, "-c", CLIENT6, capture_output=True, text=True)
        assert reply.stdout.strip() == "echo me", reply.stderr
        for address in ("198.18.0.2", "fd00::2"):
            reply = topo.run(sys.executable, "-c", TCP_CLIENT, address, capture_output=True,
                             text=True)
            assert reply.stdout.strip() == "tcp-echo-ok", reply.stderr
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "stopped" in out


def test_echo_tcp_only(topo: Topology) -> None:
    server = subprocess.Popen(cli(topo, "echo", "--tcp", "--port", "7"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "TCP echo on 198.18.0.2:7"
        assert server.stdout.readline().strip() == "TCP echo on [fd00::2]:7"
        reply = topo.run(sys.executable, "-c", TCP_CLIENT, "198.18.0.2", capture_output=True,
                         text=True)
        assert reply.stdout.strip() == "tcp-echo-ok", reply.stderr
        reply = topo.run(sys.executable, "-c", CLIENT, capture_output=True, text=True)
        assert "echo me" not in reply.stdout  # no UDP echo: the kernel gets unreachable
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=10)
        assert "stopped" in out
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err


@pytest.mark.parametrize("host", ["198.18.0.1", "fd00::1"])
def test_connect_copies_stdin_and_prints_the_replies(topo: Topology, host: str) -> None:
    kernel = topo.popen(sys.executable, "-c", UPPER_SERVER, host, stdout=subprocess.PIPE,
                        text=True)
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "ready"
        lines = "".join(f"line {n}\n" for n in range(2000))  # many segments each way
        result = subprocess.run(cli(topo, "connect", host, "7700"), input=lines,
                                capture_output=True, text=True, timeout=30, check=False)
    finally:
        kernel.kill()
        kernel.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == lines.upper()  # stdin's EOF half-closed, the server's ended it
    assert result.stderr == ""


def test_connect_to_a_closed_port_is_refused(topo: Topology) -> None:
    result = subprocess.run(cli(topo, "connect", "198.18.0.1", "7701"), input="",
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("ethox-asyncio connect: 198.18.0.1 port 7701: "
                                     "[Errno 111] Connection refused")


def test_missing_options_are_a_clean_error() -> None:
    result = subprocess.run([sys.executable, "-m", "ethox_asyncio", "ping", "198.18.0.1"],
                            capture_output=True, text=True, timeout=30, check=False,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "--device (or ETHOX_DEVICE) is required" in result.stderr
    assert "Traceback" not in result.stderr
