"""Golden frames captured from the Linux kernel (how: tests/golden/README.md).

``load("tcp4_session")`` returns the Ethernet frames of ``tcp4_session.pcap`` in
capture order; ``names()`` lists the captures available.
"""

from __future__ import annotations

from pathlib import Path

from ethox_asyncio.device.pcap import read_pcap

GOLDEN_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """Names of the golden captures, without the ``.pcap`` suffix, sorted."""
    return sorted(path.stem for path in GOLDEN_DIR.glob("*.pcap"))


def load(name: str) -> list[bytes]:
    """The frames of ``tests/golden/<name>.pcap``, each one complete Ethernet frame."""
    path = GOLDEN_DIR / f"{name.removesuffix('.pcap')}.pcap"
    if not path.is_file():
        raise FileNotFoundError(f"no golden capture {name!r}; available: {', '.join(names())}")
    return [record.data for record in read_pcap(path)]
