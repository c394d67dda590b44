"""The storage engine of one partition: record batches, segments, indexes, recovery.

Pure and synchronous: imports only the standard library, cbor2, blake3 and the optional
compression codecs. Never pykka, zmq or loguru (enforced by tests/unit/test_layering.py).
"""
