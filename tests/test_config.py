"""StackConfig: parsing of ETHOX_* variables and clear errors naming the setting."""

from __future__ import annotations

import ipaddress

import pytest

from ethox_asyncio.config import ConfigError, StackConfig, random_mac
from ethox_asyncio.stack.wire.ethernet import EthernetAddress


def test_from_env_reads_every_variable() -> None:
    config = StackConfig.from_env({
        "ETHOX_DEVICE": "tap:tap0",
        "ETHOX_ADDRESS": "198.18.0.2/24, fd00::2/64",
        "ETHOX_GATEWAY": "198.18.0.1,fd00::1",
        "ETHOX_MAC": "02:00:00:00:00:02",
        "ETHOX_MTU": "9000",
        "ETHOX_PCAP": "/tmp/x.pcap",
    })
    assert config.device == "tap:tap0"
    assert config.addresses == (ipaddress.ip_interface("198.18.0.2/24"),
                                ipaddress.ip_interface("fd00::2/64"))
    assert config.gateways == (ipaddress.ip_address("198.18.0.1"), ipaddress.ip_address("fd00::1"))
    assert config.mac == EthernetAddress("02:00:00:00:00:02")
    assert config.mtu == 9000
    assert config.pcap == "/tmp/x.pcap"


def test_empty_environment_gives_defaults() -> None:
    config = StackConfig.from_env({})
    assert config.device is None and config.addresses == () and config.mtu == 1500
    assert config.mac.is_unicast and config.mac.is_local


@pytest.mark.parametrize(("env", "named"), [
    ({"ETHOX_ADDRESS": "198.18.0.2"}, "ETHOX_ADDRESS"),
    ({"ETHOX_ADDRESS": "198.18.0.300/24"}, "ETHOX_ADDRESS"),
    ({"ETHOX_GATEWAY": "gateway"}, "ETHOX_GATEWAY"),
    ({"ETHOX_MAC": "02:00:00"}, "ETHOX_MAC"),
    ({"ETHOX_MTU": "big"}, "ETHOX_MTU"),
    ({"ETHOX_MTU": "100"}, "mtu"),
    ({"ETHOX_DEVICE": "tun:tap0"}, "device"),
    ({"ETHOX_DEVICE": "tap:tap0,engine=fast"}, "device"),
    ({"ETHOX_MAC": "01:00:5e:00:00:01"}, "mac"),
    ({"ETHOX_ADDRESS": "198.18.0.2/24", "ETHOX_GATEWAY": "198.19.0.1"}, "gateway"),
])
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        StackConfig.from_env(env)


def test_random_mac_is_local_unicast() -> None:
    for _ in range(50):
        mac = random_mac()
        assert mac.is_unicast and mac.is_local and len(mac) == 6
