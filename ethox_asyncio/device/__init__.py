"""Devices: move frames between the stack and the outside. Knows fds and bytes, not protocols.

Contract: nothing under ``device`` imports ``stack`` (and vice versa); only
``loop.py`` joins them. ``tests/test_layering.py`` enforces it.
"""
