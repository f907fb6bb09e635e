"""The sans-IO protocol stack.

Contract: nothing under ``stack`` performs I/O, reads a clock or imports asyncio,
socket, os, time or the device layer. Time comes in as ``now`` arguments;
deadlines go out through ``poll_at()``. ``tests/test_layering.py`` enforces it.
"""
