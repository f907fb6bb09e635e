"""The command line: --help, demo, decode, and clean errors for user mistakes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from ethox_asyncio.cli import main
from ethox_asyncio.demo import run_demo
from ethox_asyncio.device.pcap import read_pcap
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
    assert text.count(": ok") == 2  # small and fragmented UDP echoed
    assert "error_received(ConnectionRefusedError)" in text
    assert "Not yet:" in text  # the demo says honestly what does not exist
    frames = [record.data for record in read_pcap(capture)]
    assert len(frames) >= 15  # ARP, 3 pings, UDP with fragments both ways, ICMP error


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
