"""The command line: --help, demo, decode, and clean errors for user mistakes."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ethox_asyncio.cli import main
from ethox_asyncio.demo import run_demo
from ethox_asyncio.device.pcap import PcapWriter, read_pcap
from tests import golden


def test_module_help_lists_subcommands() -> None:
    result = subprocess.run([sys.executable, "-m", "ethox_asyncio", "--help"],
                            capture_output=True, text=True, check=True)
    assert "demo" in result.stdout and "decode" in result.stdout


def test_demo_answers_every_request_and_writes_a_capture(tmp_path: Path) -> None:
    out = io.StringIO()
    capture = tmp_path / "demo.pcap"
    assert run_demo(pcap_path=str(capture), out=out) == 0
    text = out.getvalue()
    assert text.count("ping 198.18.0.1: icmp_seq=") == 2
    assert text.count("ping fd00::1: icmp_seq=") == 2
    assert text.count(": ok") == 4  # small and fragmented UDP, TCP over both families
    assert text.count("-> 6000 bytes back: ok") == 2
    assert "error_received(ConnectionRefusedError)" in text
    assert "TCP to closed port 9 -> ConnectionRefusedError" in text
    assert "Next:" in text  # the demo says honestly what does not exist yet
    frames = [record.data for record in read_pcap(capture)]
    # ARP, pings, UDP with fragments both ways, the ICMP error, two TCP connections
    # (handshake, data, FINs) and the RST.
    assert len(frames) >= 40
    assert any(b"HELLO OVER THE USER-SPACE TCP" in frame for frame in frames)


def test_decode_prints_one_line_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    path = golden.GOLDEN_DIR / "arp_icmpv4_echo.pcap"
    assert main(["decode", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(golden.load("arp_icmpv4_echo"))
    assert "ARP, Request who-has 198.18.0.2 tell 198.18.0.1" in lines[0]


def test_decode_of_a_non_pcap_is_a_clean_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "not.pcap"
    bogus.write_bytes(b"hello world, not a capture")
    assert main(["decode", str(bogus)]) == 2
    assert "ethox-asyncio decode:" in capsys.readouterr().err


def test_decode_of_a_missing_file_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "/nonexistent/ethox.pcap"]) == 2
    assert "No such file" in capsys.readouterr().err


def run_cli(*argv: str, user: str | None = None,
            stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """``python -W error -m ethox_asyncio ARGV`` in a subprocess, as ``user`` if given (root).

    ``-W error`` turns a RuntimeWarning such as "coroutine ... was never awaited" into
    an "Exception ignored" report with a traceback, so either shows on stderr.
    """
    command = [sys.executable, "-W", "error", "-m", "ethox_asyncio", *argv]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *command]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ETHOX_")}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=stdin,
                          cwd="/", env=env, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], command: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "never awaited" not in result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ethox-asyncio {command}: "), result.stderr


def test_missing_interface_is_a_one_line_error() -> None:
    # The loop's device fails to open after ping's coroutine exists (issue #10).
    result = run_cli("ping", "--device", "packet:missing0", "--address", "198.18.0.2/24",
                     "-c", "1", "198.18.0.1")
    assert_one_line_error(result, "ping")
    assert "missing0" in result.stderr


def test_unwritable_capture_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("echo", "--device", "memory", "--address", "198.18.0.2/24",
                     "--pcap", str(tmp_path / "no" / "such" / "dir.pcap"))
    assert_one_line_error(result, "echo")
    assert "No such file or directory" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv(1) to run as nobody")
@pytest.mark.parametrize(("command", "device"), [
    ("echo", "tap:ethoxcli0"),
    ("ping", "packet:lo"),
])
def test_missing_capability_is_a_one_line_error(command: str, device: str) -> None:
    # As nobody: no CAP_NET_ADMIN to create the TAP, no CAP_NET_RAW for AF_PACKET.
    args = [command, "--device", device, "--address", "198.18.0.2/24"]
    if command == "ping":
        args += ["-c", "1", "198.18.0.1"]
    result = run_cli(*args, user="nobody")
    assert_one_line_error(result, command)
    assert "CAP_NET_" in result.stderr


def test_decode_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # `decode big.pcap | head -1`: the reader goes away while decode still writes.
    capture = tmp_path / "big.pcap"
    frame = golden.load("tcp4_session")[0]
    with PcapWriter(capture) as writer:
        for number in range(2000):  # ~500 KB of text, far beyond any pipe buffer
            writer.write(frame, 1_700_000_000 + number)
    process = subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "ethox_asyncio", "decode", str(capture)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    try:
        status = process.wait(timeout=60)
    finally:
        process.kill()
    assert first.startswith(b"    1 ")
    assert process.stderr.read() == b""
    assert status == 0


def test_ping_interrupted_prints_statistics_without_a_traceback() -> None:
    # Ctrl-C ends ping(8) with its statistics; a background job starts with SIGINT
    # ignored, so the child gets the default disposition back first.
    process = subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "ethox_asyncio", "ping", "--device", "memory",
         "--address", "198.18.0.2/24", "-c", "1000", "-i", "0.05", "-W", "0.05", "198.18.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("PING 198.18.0.1")
        assert process.stdout.readline() == "no reply from 198.18.0.1: icmp_seq=1\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert err == ""
    assert "--- 198.18.0.1 ping statistics ---" in out
    assert ", 0 received, 100% packet loss" in out
    assert process.returncode == 1  # no reply, as ping(8)


def test_help_lists_connect_and_echo_serves_tcp() -> None:
    result = subprocess.run([sys.executable, "-m", "ethox_asyncio", "--help"],
                            capture_output=True, text=True, check=True)
    assert "connect" in result.stdout and "UDP and TCP echo" in result.stdout


def test_connect_to_a_missing_interface_is_a_one_line_error() -> None:
    result = run_cli("connect", "--device", "packet:missing0", "--address", "198.18.0.2/24",
                     "198.18.0.1", "80")
    assert_one_line_error(result, "connect")


def test_connect_that_times_out_says_so_and_exits_1() -> None:
    # The memory device has no peer: ARP is never answered, the SYN never leaves.
    result = run_cli("connect", "--device", "memory", "--address", "198.18.0.2/24",
                     "-w", "0.3", "198.18.0.1", "80")
    assert result.returncode == 1, result
    assert result.stderr.strip() == "ethox-asyncio connect: 198.18.0.1 port 80: timed out"
    assert result.stdout == ""
