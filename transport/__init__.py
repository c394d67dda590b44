"""The wire: request/response messages, the strict CBOR envelope codec, ZeroMQ endpoints.

Only transport/endpoint.py imports zmq.
"""
