"""Types of the compiled io_uring helper (ethox_asyncio/device/_uring_batch.c)."""

from collections.abc import Sequence
from types import TracebackType

from .base import Frame

CLOSE_TIMEOUT_MS: int
IORING_ASYNC_CANCEL_ALL: int
IORING_ASYNC_CANCEL_ANY: int
IORING_CQE_BUFFER_SHIFT: int
IORING_CQE_F_BUFFER: int
IORING_CQE_F_MORE: int
IORING_CQ_EVENTFD_DISABLED: int
IORING_ENTER_EXT_ARG: int
IORING_ENTER_GETEVENTS: int
IORING_FEAT_EXT_ARG: int
IORING_FEAT_SINGLE_MMAP: int
IORING_OFF_CQ_RING: int
IORING_OFF_SQES: int
IORING_OFF_SQ_RING: int
IORING_OP_ASYNC_CANCEL: int
IORING_OP_READ_MULTISHOT: int
IORING_OP_WRITE: int
IORING_REGISTER_EVENTFD: int
IORING_REGISTER_PBUF_RING: int
IORING_SETUP_COOP_TASKRUN: int
IORING_SETUP_CQSIZE: int
IORING_SETUP_DEFER_TASKRUN: int
IORING_SETUP_SINGLE_ISSUER: int
IORING_SETUP_SUBMIT_ALL: int
IORING_SETUP_TASKRUN_FLAG: int
IORING_SQ_TASKRUN: int
IORING_UNREGISTER_PBUF_RING: int
IOSQE_BUFFER_SELECT: int

class Ring:
    def __init__(self, fd: int, *, rx_buffers: int, tx_buffers: int, buffer_len: int,
                 defer_taskrun: bool = False) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def defer_taskrun(self) -> bool: ...
    @property
    def setup_flags(self) -> int: ...
    @property
    def buffer_len(self) -> int: ...
    @property
    def rx_buffers(self) -> int: ...
    @property
    def tx_buffers(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def tx_available(self) -> int: ...
    @property
    def armed(self) -> bool: ...
    def receive(self, max_frames: int, /) -> list[memoryview]: ...
    def transmit(self, frames: Sequence[Frame], /) -> int: ...
    def eventfd(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Ring: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None: ...
