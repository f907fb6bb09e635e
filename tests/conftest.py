"""Test-suite policy shared by every test module.

- ``@pytest.mark.netns`` tests need root, ``ip`` and network namespaces; they are
  skipped without them, except when ``ETHOX_REQUIRE_NETNS=1`` (set by
  scripts/test.sh under CI as root), where any skip of such a test — and of a
  ``@pytest.mark.tshark`` test — is turned into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_INTEGRATION = os.environ.get("ETHOX_REQUIRE_NETNS") == "1"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def _tshark_unavailable() -> str | None:
    return None if shutil.which("tshark") else "needs tshark"


def pytest_runtest_setup(item: pytest.Item) -> None:
    reasons = []
    if item.get_closest_marker("netns") is not None:
        reasons.append(_netns_unavailable())
    if item.get_closest_marker("tshark") is not None:
        reasons.append(_tshark_unavailable())
    for reason in reasons:
        if reason is None:
            continue
        if REQUIRE_INTEGRATION:
            pytest.fail(f"ETHOX_REQUIRE_NETNS=1 but this integration test cannot run: {reason}")
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    integration = item.get_closest_marker("netns") or item.get_closest_marker("tshark")
    if REQUIRE_INTEGRATION and integration and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"integration test skipped under ETHOX_REQUIRE_NETNS=1: {report.longrepr}"
