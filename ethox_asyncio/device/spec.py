"""Device strings: the one syntax the CLI and ``ETHOX_DEVICE`` use to name a device.

Contract:

- Grammar: ``KIND[:NAME][,OPTION=VALUE]...``. ``tap:NAME`` opens (or creates) TAP
  interface NAME, ``packet:IFNAME`` binds an AF_PACKET socket to an existing interface,
  ``memory`` makes an in-memory link (no name). Examples::

      tap:tap0,netns=ethox-a,engine=plain,offload=off,mtu=9000,txqueuelen=10000
      packet:veth1,netns=ns,mode=ring,offload=on
      memory,mtu=9000

- :func:`parse_device_spec` validates everything it can without touching the system
  (kind, interface name, option names per kind, option values) and raises
  :class:`DeviceSpecError` (a ``ValueError``) with one line saying what is wrong and
  what is accepted. Values are stored canonically (``offload=true`` becomes ``on``,
  ``mtu=09000`` becomes ``9000``), so ``parse_device_spec(str(spec)) == spec`` always
  holds and ``str()`` of a parsed canonical string gives the string back.
- :func:`open_device` turns a spec into a :class:`Device`: ``TapDevice(name, **options)``
  (``device/tap.py``), ``PacketDevice(name, **options)`` (``device/packet.py``), or
  endpoint 0 of a new two-endpoint ``MemoryLink``; :func:`memory_peer` returns the
  other endpoint of that link. Errors from opening (no such interface, no permission)
  are the device's own ``DeviceError``\\ s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import Device
from .memory import MemoryEndpoint, MemoryLink

__all__ = [
    "DEVICE_KINDS",
    "DeviceSpec",
    "DeviceSpecError",
    "memory_peer",
    "open_device",
    "parse_device_spec",
]

# Linux IFNAMSIZ is 16 including the terminating NUL.
_IFNAME_MAX_LEN = 15
_BOOLEAN_WORDS = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


class DeviceSpecError(ValueError):
    """A device string (or a ``DeviceSpec`` built by hand) is not valid."""


def _canonical_bool(option: str, value: str) -> str:
    if value.lower() not in _BOOLEAN_WORDS:
        raise DeviceSpecError(f"{option}={value!r}: must be on/off/true/false/1/0")
    return "on" if _BOOLEAN_WORDS[value.lower()] else "off"


def _canonical_positive_int(option: str, value: str) -> str:
    try:
        number = int(value, 10)
    except ValueError:
        raise DeviceSpecError(f"{option}={value!r}: must be a positive integer") from None
    if number < 1:
        raise DeviceSpecError(f"{option}={value!r}: must be a positive integer")
    return str(number)


def _canonical_choice(*choices: str) -> Callable[[str, str], str]:
    def canonical(option: str, value: str) -> str:
        if value not in choices:
            raise DeviceSpecError(f"{option}={value!r}: must be one of {'|'.join(choices)}")
        return value

    return canonical


def _canonical_netns(option: str, value: str) -> str:
    # `ip netns` keeps namespaces as files in /run/netns: a name is one path component.
    if not value or "/" in value or value in (".", ".."):
        raise DeviceSpecError(f"{option}={value!r}: must be a network namespace name "
                              "(one path component, as `ip netns list` shows it)")
    return value


_Canonicalizer = Callable[[str, str], str]

# Per kind: option name -> canonicalizer. The option names are the keyword arguments
# of the device's constructor, so open_device() passes them straight through.
_OPTIONS: dict[str, dict[str, _Canonicalizer]] = {
    "tap": {
        "netns": _canonical_netns,
        "engine": _canonical_choice("auto", "uring", "plain"),
        "offload": _canonical_bool,
        "mtu": _canonical_positive_int,
        "max_batch": _canonical_positive_int,
        "rx_buffers": _canonical_positive_int,
        "txqueuelen": _canonical_positive_int,
        "uring_impl": _canonical_choice("auto", "compiled", "python"),
    },
    "packet": {
        "netns": _canonical_netns,
        "mode": _canonical_choice("auto", "socket", "ring"),
        "offload": _canonical_bool,
        "max_batch": _canonical_positive_int,
        "ring_blocks": _canonical_positive_int,
        "block_timeout_ms": _canonical_positive_int,
        "socket_buffer_len": _canonical_positive_int,
    },
    "memory": {
        "mtu": _canonical_positive_int,
        "max_batch": _canonical_positive_int,
        "rx_queue_len": _canonical_positive_int,
    },
}
_BOOLEAN_OPTIONS = {"offload"}
_INTEGER_OPTIONS = {"mtu", "max_batch", "rx_buffers", "txqueuelen", "rx_queue_len",
                    "ring_blocks", "block_timeout_ms", "socket_buffer_len"}
_NAMED_KINDS = ("tap", "packet")

#: The kinds a device string may start with.
DEVICE_KINDS = tuple(_OPTIONS)


def _check_ifname(kind: str, name: str) -> None:
    """Linux's dev_valid_name(), plus the two characters our syntax reserves."""
    if len(name) > _IFNAME_MAX_LEN:
        raise DeviceSpecError(f"{kind}:{name}: interface names have at most "
                              f"{_IFNAME_MAX_LEN} characters, this one has {len(name)}")
    if name in (".", "..") or any(char in name for char in "/:,=") or any(
            char.isspace() for char in name):
        raise DeviceSpecError(f"{kind}:{name!r}: not a valid interface name "
                              "(no '/', ':', ',', '=' or whitespace; not '.' or '..')")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A validated device string: ``kind``, interface ``name`` (None for ``memory``) and
    canonical ``options`` (option name -> value as text, in the order given)."""

    kind: str
    name: str | None
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in _OPTIONS:
            raise DeviceSpecError(f"unknown device kind {self.kind!r}; "
                                  f"known kinds: {', '.join(DEVICE_KINDS)}")
        if self.kind in _NAMED_KINDS:
            if not self.name:
                example = "tap:tap0" if self.kind == "tap" else "packet:veth1"
                raise DeviceSpecError(f"{self.kind} needs an interface name, e.g. {example}")
            _check_ifname(self.kind, self.name)
        elif self.name is not None:
            raise DeviceSpecError(f"{self.kind} takes no name, got {self.name!r} "
                                  f"(write just {self.kind!r})")
        valid = _OPTIONS[self.kind]
        for option, value in self.options.items():
            if option not in valid:
                raise DeviceSpecError(f"unknown option {option!r} for {self.kind}; "
                                      f"valid options: {', '.join(sorted(valid))}")
            if valid[option](option, value) != value:
                raise DeviceSpecError(f"{option}={value!r} is not in canonical form; "
                                      "build DeviceSpec with parse_device_spec()")

    def __str__(self) -> str:
        head = self.kind if self.name is None else f"{self.kind}:{self.name}"
        return ",".join([head, *(f"{option}={value}" for option, value in self.options.items())])

    def constructor_kwargs(self) -> dict[str, Any]:
        """The options as typed keyword arguments for the device's constructor."""
        kwargs: dict[str, Any] = {}
        for option, value in self.options.items():
            if option in _BOOLEAN_OPTIONS:
                kwargs[option] = value == "on"
            elif option in _INTEGER_OPTIONS:
                kwargs[option] = int(value)
            else:
                kwargs[option] = value
        return kwargs


def parse_device_spec(text: str) -> DeviceSpec:
    """Parse a device string (see the module doc); raise ``DeviceSpecError`` if invalid."""
    text = text.strip()
    if not text:
        raise DeviceSpecError("empty device string; expected one of tap:NAME, packet:IFNAME, "
                              "memory (each optionally followed by ,OPTION=VALUE...)")
    head, *option_items = text.split(",")
    kind, colon, name = head.partition(":")
    if kind not in _OPTIONS:
        raise DeviceSpecError(f"unknown device kind {kind!r} in {text!r}; "
                              f"known kinds: {', '.join(DEVICE_KINDS)}")
    valid = _OPTIONS[kind]
    options: dict[str, str] = {}
    for item in option_items:
        option, equals, value = (part.strip() for part in item.partition("="))
        if not option:
            raise DeviceSpecError(f"empty option in {text!r} (stray comma?)")
        if option not in valid:
            raise DeviceSpecError(f"unknown option {option!r} for {kind}; "
                                  f"valid options: {', '.join(sorted(valid))}")
        if not equals or not value:
            raise DeviceSpecError(f"option {option!r} needs a value ({option}=VALUE)")
        if option in options:
            raise DeviceSpecError(f"option {option!r} given twice in {text!r}")
        options[option] = valid[option](option, value)
    return DeviceSpec(kind, name if colon else None, options)


def open_device(spec: str | DeviceSpec) -> Device:
    """Open the device a spec names (parsing it first if it is a string)."""
    if isinstance(spec, str):
        spec = parse_device_spec(spec)
    kwargs = spec.constructor_kwargs()
    # The TAP and AF_PACKET modules are imported only when asked for, so the memory
    # link works where they cannot be imported or used.
    if spec.kind == "tap":
        from .tap import TapDevice

        assert spec.name is not None  # DeviceSpec guarantees a name for tap
        return TapDevice(spec.name, **kwargs)
    if spec.kind == "packet":
        from .packet import PacketDevice

        assert spec.name is not None
        return PacketDevice(spec.name, **kwargs)
    link = MemoryLink(2, **kwargs)
    return link.endpoints[0]


def memory_peer(endpoint: MemoryEndpoint) -> MemoryEndpoint:
    """The other endpoint of the two-endpoint link ``open_device("memory")`` made."""
    # MemoryEndpoint keeps its link private; this package-internal helper is the one
    # place that reaches for it, so the pair stays reachable without widening memory.py.
    endpoints = endpoint.link.endpoints
    if len(endpoints) != 2:
        raise ValueError(f"{endpoint!r} is on a link of {len(endpoints)} endpoints, not a pair")
    return endpoints[1 - endpoint.index]

