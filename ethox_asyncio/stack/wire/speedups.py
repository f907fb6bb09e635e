"""Which implementation of the hot stateless functions runs: compiled or pure Python.

Contract:
- :data:`compiled` is the C extension ``ethox_asyncio.stack.wire._speedups``
  (``_speedups.c``) when it was built and may be used, else None. It is chosen once,
  here, at import; every module with a compiled twin binds its public name to the
  C function or to its pure-Python reference (``_py_*``) accordingly:
  ``checksum.ones_sum`` / ``checksum`` / ``verify``, ``interface.parse_tcp_frame`` and
  ``parse_tcp_segment``, ``tcp.host.ts_frame``, ``ipv4.fill_ipv4``. Both give the
  same outputs for the same inputs (tests/wire/test_speedups.py compares them); the
  Python code stays the readable reference.
- ``ETHOX_NO_EXTENSIONS`` set to anything but ``""`` or ``"0"`` forces the pure-Python
  reference (the convention of aiohttp, yarl and multidict): the extension itself
  refuses to load, since the stack is sans-IO and reads no environment.
- :func:`speedups_active` says which one runs; :data:`REASON` says why (for logs,
  ``ethox-asyncio`` diagnostics and bug reports).

The extension is optional (pyproject.toml: built when gcc and the Python headers are
there); CI requires it (``ETHOX_REQUIRE_SPEEDUPS=1``) and runs the whole suite a second
time without it.
"""

from __future__ import annotations

__all__ = ["REASON", "TcpFrame", "compiled", "speedups_active"]

#: What :func:`~..interface.parse_tcp_frame` returns for a frame on the hot path:
#: ``(key, seq, ack, flags, window, ts_val, ts_ecr, header_len, data, payload,
#: checksum_ok)``; ``key`` is ``(family, dst, dst_port, src, src_port)``.
TcpFrame = tuple[tuple[int, int, int, int, int], int, int, int, int, int | None, int | None,
                 int, memoryview, memoryview, bool]

try:
    from . import _speedups as compiled
except ImportError as error:
    compiled = None  # type: ignore[assignment,unused-ignore]
    REASON = f"pure Python ({error})"
else:
    REASON = "compiled (ethox_asyncio.stack.wire._speedups)"


def speedups_active() -> bool:
    """True when the compiled twins run, False for the pure-Python reference."""
    return compiled is not None
