"""What the benchmarks share for their processes: ``ip`` and a server subprocess.

Contract: :func:`ip` runs ``ip ARGS`` (30 s bound) and raises RuntimeError with its
stderr when ``check``; :func:`veth_namespace` is a namespace for kernel-side servers
veth-linked to the client's namespace, removed (links first) on exit;
:class:`ServerProcess` starts a command, waits at most ``ready_timeout`` for its first
stdout line (``ready_words``: that line split) and is
stopped by pid (SIGTERM, then SIGKILL), keeping the tail of its stderr in
``error_text``. Nothing here kills by name.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


@contextmanager
def veth_namespace(client_netns: str, netns: str, client_if: str, server_if: str,
                   client_address: str, server_addresses: Iterable[str], *,
                   txqueuelen: int | None = None) -> Iterator[str]:
    """Namespace ``netns`` joined to ``client_netns`` by a veth pair (``client_if`` there
    at ``client_address``, ``server_if`` here at ``server_addresses``, CIDR strings;
    interface names at most 15 characters)."""
    queue = ["txqueuelen", str(txqueuelen)] if txqueuelen else []
    ip("netns", "add", netns)
    try:
        ip("-n", netns, "link", "set", "dev", "lo", "up")
        ip("-n", client_netns, "link", "add", client_if, *queue, "type", "veth",
           "peer", "name", server_if, "netns", netns)
        if queue:
            ip("-n", netns, "link", "set", "dev", server_if, *queue)
        ip("-n", client_netns, "address", "add", client_address, "dev", client_if)
        for address in server_addresses:
            ip("-n", netns, "address", "add", address, "dev", server_if)
        ip("-n", client_netns, "link", "set", "dev", client_if, "up")
        ip("-n", netns, "link", "set", "dev", server_if, "up")
        yield netns
    finally:
        ip("-n", client_netns, "link", "del", "dev", client_if, check=False)
        ip("netns", "del", netns, check=False)


class ServerProcess:
    """One server subprocess, started and stopped by pid (see the module contract)."""

    def __init__(self, cmd: list[str], *, ready_timeout: float, stop_timeout: float) -> None:
        self.cmd = cmd
        self.stop_timeout = stop_timeout
        self.error_text = ""
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errors,
                                        stdin=subprocess.DEVNULL)
        assert self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + ready_timeout
        line = b""
        while time.monotonic() < deadline and self.process.poll() is None:
            readable, _, _ = select.select([stdout], [], [], 0.2)
            if readable:
                line = stdout.readline()
                break
        self.ready_words = line.split()

    def not_ready(self) -> RuntimeError:
        """Stop the server and say why it never got ready (for the caller to raise)."""
        self.stop()
        return RuntimeError(f"server {' '.join(self.cmd)} did not get ready: {self.error_text}")

    def stop(self) -> None:
        pid = self.process.pid
        if self.process.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout=self.stop_timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not self.errors.closed:
            self.errors.seek(0)
            self.error_text = self.errors.read().decode(errors="replace").strip()[-2000:]
            self.errors.close()
