"""Typed configuration, from keyword arguments or ``ETHOX_*`` environment variables.

Contract: :meth:`StackConfig.from_env` reads only the variables listed below and
raises :class:`ConfigError` (a ``ValueError``) naming the variable and the bad
value; it never half-applies a configuration. The values are validated here so
that the loop and the stack can trust them.

=================  ===============================================  =====================
variable           meaning                                          example
=================  ===============================================  =====================
ETHOX_DEVICE       device string (``tap:NAME``, ``packet:IF``,       ``tap:tap0``
                   ``memory``)
ETHOX_ADDRESS      comma-separated interface CIDRs, IPv4 and IPv6    ``198.18.0.2/24,fd00::2/64``
ETHOX_GATEWAY      comma-separated default gateways                  ``198.18.0.1``
ETHOX_MAC          the interface MAC (default: random, locally      ``02:00:00:00:00:02``
                   administered)
ETHOX_MTU          IP MTU in bytes (default 1500)                    ``1500``
ETHOX_PCAP         capture every frame to this pcap file            ``/tmp/ethox.pcap``
=================  ===============================================  =====================
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .device.spec import DeviceSpecError, parse_device_spec
from .stack.wire.ethernet import EthernetAddress

__all__ = ["ConfigError", "StackConfig", "parse_gateways", "parse_interfaces", "random_mac"]

IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MIN_MTU = 1280  # IPv6 minimum link MTU (RFC 8200 §5); also well above IPv4's 68
MAX_MTU = 65535


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_interfaces(value: str | list[str] | tuple[str, ...], *, setting: str = "address",
                     ) -> tuple[IpInterface, ...]:
    """Parse ``"198.18.0.2/24,fd00::2/64"`` (or a list of such) into interfaces."""
    items = _split(value) if isinstance(value, str) else list(value)
    result: list[IpInterface] = []
    for item in items:
        if "/" not in str(item):
            raise ConfigError(f"{setting}: {item!r} needs a prefix length, e.g. 198.18.0.2/24")
        try:
            result.append(ipaddress.ip_interface(item))
        except ValueError as exc:
            raise ConfigError(f"{setting}: {item!r} is not an IPv4/IPv6 CIDR ({exc})") from None
    return tuple(result)


def parse_gateways(value: str | list[str] | tuple[str, ...], *, setting: str = "gateway",
                   ) -> tuple[IpAddress, ...]:
    items = _split(value) if isinstance(value, str) else list(value)
    result: list[IpAddress] = []
    for item in items:
        try:
            result.append(ipaddress.ip_address(item))
        except ValueError:
            raise ConfigError(f"{setting}: {item!r} is not an IP address") from None
    return tuple(result)


def random_mac() -> EthernetAddress:
    """A random unicast, locally administered MAC (IEEE 802: U/L bit set, I/G bit clear)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return EthernetAddress(bytes(raw))


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Everything needed to bring one interface up."""

    device: str | None = None
    addresses: tuple[IpInterface, ...] = ()
    gateways: tuple[IpAddress, ...] = ()
    mac: EthernetAddress = field(default_factory=random_mac)
    mtu: int = 1500
    pcap: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            try:
                parse_device_spec(self.device)
            except DeviceSpecError as exc:
                raise ConfigError(f"device: {exc}") from None
        if not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ConfigError(f"mtu: {self.mtu} is outside {MIN_MTU}..{MAX_MTU}")
        if not self.mac.is_unicast:
            raise ConfigError(f"mac: {self.mac} is a multicast address; an interface needs unicast")
        for gateway in self.gateways:
            if not any(gateway in iface.network for iface in self.addresses
                       if iface.version == gateway.version):
                raise ConfigError(f"gateway: {gateway} is not inside any configured address's "
                                  f"network ({', '.join(map(str, self.addresses)) or 'none'})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        """Build a configuration from ``ETHOX_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if env.get("ETHOX_DEVICE"):
            kwargs["device"] = env["ETHOX_DEVICE"]
        if env.get("ETHOX_ADDRESS"):
            kwargs["addresses"] = parse_interfaces(env["ETHOX_ADDRESS"], setting="ETHOX_ADDRESS")
        if env.get("ETHOX_GATEWAY"):
            kwargs["gateways"] = parse_gateways(env["ETHOX_GATEWAY"], setting="ETHOX_GATEWAY")
        if env.get("ETHOX_MAC"):
            try:
                kwargs["mac"] = EthernetAddress(env["ETHOX_MAC"])
            except ValueError:
                raise ConfigError(f"ETHOX_MAC: {env['ETHOX_MAC']!r} is not a MAC address") from None
        if env.get("ETHOX_MTU"):
            try:
                kwargs["mtu"] = int(env["ETHOX_MTU"])
            except ValueError:
                raise ConfigError(f"ETHOX_MTU: {env['ETHOX_MTU']!r} is not an integer") from None
        if env.get("ETHOX_PCAP"):
            kwargs["pcap"] = env["ETHOX_PCAP"]
        return cls(**kwargs)  # type: ignore[arg-type]
