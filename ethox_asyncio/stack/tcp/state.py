"""TCP connection states (RFC 9293 §3.3.2) and the user calls legal in each.

Contract:
- :class:`TcpState` has the eleven RFC states; ``SYNCHRONIZED`` the states
  after the handshake (RFC 9293 §3.5.3, §3.10.7.4), where a RST or a SYN must
  pass the RFC 5961 checks.
- :func:`check_call` raises :class:`TcpStateError` when ``call`` is not legal in
  ``state``, with the errno Linux returns for the matching socket call:
  ``send`` after shutdown/close or on a closed connection is ``EPIPE``
  (``tcp_sendmsg``: ``sk_shutdown & SEND_SHUTDOWN``), on a connection that never
  left LISTEN/CLOSED ``ENOTCONN``; ``shutdown``/``close`` on a closed
  connection ``ENOTCONN`` (``inet_shutdown``); ``open`` on a used connection
  ``EISCONN``. A second ``shutdown`` while the connection is already closing is
  not an error (Linux returns 0). ``close`` and ``abort`` are legal everywhere
  (no-ops once CLOSED). :data:`LEGAL_CALLS` is the table.
"""

from __future__ import annotations

import enum
import errno

__all__ = ["LEGAL_CALLS", "SYNCHRONIZED", "TcpState", "TcpStateError", "UserCall", "check_call"]


class TcpState(enum.IntEnum):
    """RFC 9293 §3.3.2, Figure 5."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


SYNCHRONIZED = frozenset({
    TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT,
    TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT,
})


class UserCall(enum.Enum):
    """The user interface of RFC 9293 §3.9.1, as the transports use it."""

    OPEN = "open"  # open() / accept(): only on a fresh connection
    SEND = "send"
    SHUTDOWN = "shutdown"  # write_eof(): FIN after the buffer drains
    CLOSE = "close"  # close(): shutdown + no more reading (orphan)
    ABORT = "abort"


_S = TcpState
# RFC 9293 §3.10: SEND is queued in SYN-SENT/SYN-RECEIVED, allowed in ESTABLISHED
# and CLOSE-WAIT; CLOSE in every state that still has a TCB.
# CLOSE and ABORT are accepted everywhere (no-ops once CLOSED), like close(2).
LEGAL_CALLS: dict[UserCall, frozenset[TcpState]] = {
    UserCall.OPEN: frozenset({_S.CLOSED}),
    UserCall.SEND: frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT}),
    UserCall.SHUTDOWN: frozenset(set(_S) - {_S.CLOSED, _S.LISTEN}),
    UserCall.CLOSE: frozenset(_S),
    UserCall.ABORT: frozenset(_S),
}
_NEVER_CONNECTED = frozenset({_S.CLOSED, _S.LISTEN})


class TcpStateError(OSError):
    """A user call that the connection's state does not allow (errno as Linux)."""

    def __init__(self, code: int, call: UserCall, state: TcpState) -> None:
        super().__init__(code, f"{call.value}() is not allowed in state {state.name}")
        self.call = call
        self.state = state


def check_call(call: UserCall, state: TcpState, *, ever_connected: bool = True) -> None:
    """Raise :class:`TcpStateError` unless ``call`` is legal in ``state``."""
    if state in LEGAL_CALLS[call]:
        return
    if call is UserCall.OPEN:
        code = errno.EISCONN
    elif call is UserCall.SEND:
        code = errno.EPIPE if ever_connected or state not in _NEVER_CONNECTED else errno.ENOTCONN
    else:
        code = errno.ENOTCONN
    raise TcpStateError(code, call, state)
