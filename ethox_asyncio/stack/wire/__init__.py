"""Wire codecs: parse and emit every header the stack speaks.

Two levels per protocol (see docs/wire.md):
- a *view* (``EthernetFrame``, ``Ipv4Packet``, ``TcpSegment`` ...) over a
  ``memoryview`` for field access and in-place edits, with ``checked()`` to
  validate lengths first;
- a frozen *Repr* (``EthernetRepr``, ``Ipv4Repr``, ``TcpRepr`` ...) with
  ``parse(...)``, ``emit(buf, ...)``, ``header_len``/``buffer_len`` and a one-line,
  tcpdump-like ``__str__``.

Malformed input raises a :class:`~.errors.WireError` subclass and nothing else.
"""
