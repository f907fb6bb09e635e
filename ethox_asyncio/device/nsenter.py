"""Open descriptors inside another network namespace without moving the process.

Contract: ``with in_netns("name"):`` switches the *calling thread* into the
named namespace (``/run/netns/<name>``, as ``ip netns add`` makes it) and
always switches back on exit, even on error. A TAP or packet socket opened
inside stays bound to that namespace's interface after the switch back, so the
event loop keeps running in the original namespace while its device lives in a
test namespace. Needs CAP_SYS_ADMIN; raises :class:`NetnsError` naming the
namespace when it does not exist or permission is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NETNS_RUN_DIR", "NetnsError", "in_netns"]

NETNS_RUN_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000


class NetnsError(OSError):
    """A network namespace could not be entered."""


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread in network namespace ``name`` (None: stay)."""
    if name is None:
        yield
        return
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        message = f"network namespace {name!r} does not exist (no {path})"
        raise NetnsError(errno.ENOENT, message) from None
    try:
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _setns(target)
            except PermissionError as exc:
                raise NetnsError(errno.EPERM, f"entering network namespace {name!r} needs "
                                              "CAP_SYS_ADMIN (run as root)") from exc
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)
    finally:
        os.close(target)
