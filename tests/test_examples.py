"""Examples and benchmarks stay runnable (smoke runs, no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_runs(script: Path) -> None:
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_wire_benchmark_runs_bounded() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "wire.py"), "--repeat", "1",
                             "--number", "10"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "parse_tcp_fast" in result.stdout


@pytest.mark.netns
def test_device_benchmark_runs_bounded(tmp_path: Path) -> None:
    table = tmp_path / "devices.md"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "devices.py"), "--frames", "300",
                             "--runs", "1", "--markdown", str(table)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    rows = table.read_text().splitlines()
    paths = 8  # raw TAP, io_uring compiled (offload on/off), pure Python, plain, 3 AF_PACKET
    assert len(rows) == 2 + 2 * paths  # header, rule, rx/tx for each path
    assert all("–" not in row for row in rows[2:]), rows


@pytest.mark.netns
def test_udp_echo_benchmark_runs_bounded(tmp_path: Path) -> None:
    table = tmp_path / "udp_echo.md"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "udp_echo.py"), "--requests",
                             "200", "--runs", "1", "--markdown", str(table)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    rows = table.read_text().splitlines()
    paths = ["ethox (uring)", "ethox (plain)", "kernel asyncio", "kernel uvloop"]
    assert len(rows) == 2 + 2 * len(paths)  # header, rule, each path pinned and unpinned
    for pin in ("cpu 0", "none"):
        for path in paths:
            assert any(row.startswith(f"| {path} | {pin} |") for row in rows), (path, pin, rows)
