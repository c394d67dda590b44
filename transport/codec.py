"""The envelope codec: protocol messages <-> multipart frames. Bytes in, messages out; no I/O.

A message is one ZeroMQ multipart message (the ROUTER's identity frame is the endpoint's
business, not the codec's):

    frame 0      CBOR map {"api": str, "v": int, "cid": int, "body": map}
    frame 1..n   raw record batches, referenced from the body by frame number

``body`` holds the dataclass fields by name, recursively: nested dataclasses are maps, tuples
are arrays, ``dict[str, str]`` are maps, ``None`` is null. A ``Records`` field is encoded as
the number of the extra frame that carries its bytes (1-based, in order of appearance), or
null for empty records; those bytes are never re-encoded.

Decoding is strict and raises ``ProtocolError`` for anything malformed, never another
exception: size caps checked before parsing; no CBOR tags, no indefinite lengths, no duplicate
keys, bounded nesting, no trailing bytes; exact key sets; exact types (``type(x) is int``, a
bool is not an int); ints within int64; every extra frame referenced exactly once.
"""

from __future__ import annotations

import io
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import cbor2

from .errors import ProtocolError
from .protocol import RAW, REQUESTS, RESPONSES, ErrorCode, ErrorResponse

MAX_HEADER_BYTES = 1 << 20  # a request's frame 0; responses may use a larger cap
MAX_RESPONSE_HEADER_BYTES = 64 << 20
MAX_FRAME_BYTES = 100 << 20  # Kafka's socket.request.max.bytes
MAX_FRAMES = 65536
MAX_DEPTH = 16
MAX_ITEMS = 1 << 20  # elements of one array or map
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_ENVELOPE_KEYS = frozenset({"api", "v", "cid", "body"})

Frame = bytes | bytearray | memoryview


class _Bad(Exception):
    """Internal: a schema violation, with the path to the offending field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


class _Ctx:
    __slots__ = ("frames", "used")

    def __init__(self, frames: Sequence[Frame]) -> None:
        self.frames = frames
        self.used = bytearray(len(frames))


Encoder = Callable[[Any, list], Any]
Decoder = Callable[[Any, _Ctx], Any]


# ------------------------------------------------------------------------- schema compiling


def _enc_plain(value: Any, _raw: list) -> Any:
    return value


def _int_dec(w: Any, _ctx: _Ctx) -> int:
    if type(w) is not int:
        raise _Bad(f"expected an int, got {type(w).__name__}")
    if not _I64_MIN <= w <= _I64_MAX:
        raise _Bad("int out of int64 range")
    return w


def _simple_dec(kind: type) -> Decoder:
    name = kind.__name__

    def dec(w: Any, _ctx: _Ctx) -> Any:
        if type(w) is not kind:
            raise _Bad(f"expected {name}, got {type(w).__name__}")
        return w

    return dec


def _raw_enc(value: Any, raw: list) -> int | None:
    if not value:
        return None
    raw.append(value)
    return len(raw)  # frame number: frame 0 is the header


def _raw_dec(w: Any, ctx: _Ctx) -> Frame:
    if w is None:
        return b""
    if type(w) is not int:
        raise _Bad(f"expected a frame number, got {type(w).__name__}")
    if not 1 <= w < len(ctx.frames):
        raise _Bad(f"frame number {w} out of range (message has {len(ctx.frames)} frames)")
    if ctx.used[w]:
        raise _Bad(f"frame {w} referenced twice")
    ctx.used[w] = 1
    return ctx.frames[w]


def _compile(tp: Any) -> tuple[Encoder, Decoder]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated and RAW in tp.__metadata__:
        return _raw_enc, _raw_dec
    if tp is int:
        return _enc_plain, _int_dec
    if tp in (bool, str, bytes):
        return _enc_plain, _simple_dec(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        inner_enc, inner_dec = _compile(args[0])

        def opt_enc(value: Any, raw: list) -> Any:
            return None if value is None else inner_enc(value, raw)

        def opt_dec(w: Any, ctx: _Ctx) -> Any:
            return None if w is None else inner_dec(w, ctx)

        return opt_enc, opt_dec
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple {tp}")
        item_enc, item_dec = _compile(args[0])

        def tuple_enc(value: Any, raw: list) -> list:
            return [item_enc(v, raw) for v in value]

        def tuple_dec(w: Any, ctx: _Ctx) -> tuple:
            if type(w) is not list:
                raise _Bad(f"expected an array, got {type(w).__name__}")
            out = []
            for i, v in enumerate(w):
                try:
                    out.append(item_dec(v, ctx))
                except _Bad as e:
                    e.path.insert(0, f"[{i}]")
                    raise
            return tuple(out)

        return tuple_enc, tuple_dec
    if origin is dict:
        key_t, val_t = typing.get_args(tp)
        if key_t is not str:
            raise TypeError(f"unsupported dict {tp}")
        _, val_dec = _compile(val_t)

        def dict_enc(value: Any, _raw: list) -> dict:
            return dict(value)

        def dict_dec(w: Any, ctx: _Ctx) -> dict:
            if type(w) is not dict:
                raise _Bad(f"expected a map, got {type(w).__name__}")
            out = {}
            for k, v in w.items():
                if type(k) is not str:
                    raise _Bad("map keys must be text")
                try:
                    out[k] = val_dec(v, ctx)
                except _Bad as e:
                    e.path.insert(0, f"[{k!r}]")
                    raise
            return out

        return dict_enc, dict_dec
    if is_dataclass(tp):
        return _compile_dataclass(tp)
    raise TypeError(f"unsupported field type {tp}")


_SCHEMAS: dict[type, tuple[Encoder, Decoder]] = {}


def _compile_dataclass(cls: type) -> tuple[Encoder, Decoder]:
    """The encoder and decoder of ``cls``, generated as straight-line code (one per
    dataclass, built once): a fetch answer for thousands of partitions is thousands of
    nested messages, and a loop over the fields with a kwargs dict cost twice as much.
    Plain fields are copied inline; an int is checked inline; anything else calls its
    field's compiled decoder. A schema violation names its field path, as before."""
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    hints = typing.get_type_hints(cls, include_extras=True)
    parts = [(f.name, *_compile(hints[f.name])) for f in fields(cls)]
    names = frozenset(name for name, _, _ in parts)
    env: dict[str, Any] = {
        "cls": cls, "names": names, "_Bad": _Bad, "_int_dec": _int_dec,
        "MIN": _I64_MIN, "MAX": _I64_MAX,
    }
    enc_items, dec_lines, args = [], [], []
    for i, (name, e, d) in enumerate(parts):
        env[f"e{i}"], env[f"d{i}"] = e, d
        enc_items.append(
            f"{name!r}: value.{name}" if e is _enc_plain else f"{name!r}: e{i}(value.{name}, raw)"
        )
        dec_lines.append(f"        at = {name!r}")
        if d is _int_dec:
            dec_lines.append(f"        v{i} = w[{name!r}]")
            dec_lines.append(f"        if type(v{i}) is not int or not MIN <= v{i} <= MAX:")
            dec_lines.append(f"            _int_dec(v{i}, ctx)")
        else:
            dec_lines.append(f"        v{i} = d{i}(w[{name!r}], ctx)")
        args.append(f"{name}=v{i}")
    src = (
        "def enc(value, raw):\n"
        f"    return {{{', '.join(enc_items)}}}\n"
        "def dec(w, ctx):\n"
        "    if type(w) is not dict:\n"
        "        raise _Bad(f'expected a map, got {type(w).__name__}')\n"
        "    if w.keys() != names:\n"
        "        missing = sorted(names - w.keys())\n"
        "        extra = sorted(str(k) for k in w.keys() - names)\n"
        f"        raise _Bad(f'{cls.__name__}: missing keys {{missing}}, unexpected keys {{extra}}')\n"
        "    at = None\n"
        "    try:\n"
        + ("\n".join(dec_lines) + "\n" if dec_lines else "        pass\n")
        + "    except _Bad as e:\n"
        "        e.path.insert(0, at)\n"
        "        raise\n"
        f"    return cls({', '.join(args)})\n"
    )
    if getattr(cls, "__slots__", None) and not hasattr(cls, "__post_init__"):
        # a frozen dataclass's __init__ sets each field through object.__setattr__ (half
        # the decoding time): fill the slots directly, every field is given
        env["new"] = object.__new__
        for i, (name, _, _) in enumerate(parts):
            env[f"s{i}"] = cls.__dict__[name].__set__
        sets = "".join(f"    s{i}(obj, v{i})\n" for i in range(len(parts)))
        src = src.replace(
            f"    return cls({', '.join(args)})\n", f"    obj = new(cls)\n{sets}    return obj\n"
        )
    exec(compile(src, f"<codec {cls.__name__}>", "exec"), env)  # noqa: S102 - our own source
    enc, dec = env["enc"], env["dec"]
    _SCHEMAS[cls] = (enc, dec)
    return enc, dec


def _schema(cls: type) -> tuple[Encoder, Decoder]:
    """``cls``'s compiled encoder and decoder, compiled on first use: compiling all ~200
    message types at import cost every process (each broker, each CLI command) ~0.2 s of
    CPU, and most processes use a few of them (tests/unit/transport compiles them all)."""
    return _SCHEMAS.get(cls) or _compile_dataclass(cls)


# ------------------------------------------------------------------------------ strict CBOR


def _reject_tag(*_args: Any) -> Any:
    raise ValueError("CBOR tags are not allowed")


class _AllTags(dict):
    """semantic_decoders mapping that rejects every tag, known or not."""

    def __missing__(self, _key: Any) -> Any:
        return _reject_tag

    def __contains__(self, _key: object) -> bool:
        return True

    def get(self, _key: Any, _default: Any = None) -> Any:
        return _reject_tag


_NO_TAGS = _AllTags()


def loads_strict(data: Frame, *, max_bytes: int = MAX_HEADER_BYTES) -> Any:
    """Decode one CBOR item strictly (see module docstring); ``ProtocolError`` otherwise."""
    if len(data) > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"header frame of {len(data)} bytes exceeds {max_bytes} bytes",
        )
    if not data:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "empty header frame")
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            fp,
            tag_hook=_reject_tag,
            semantic_decoders=_NO_TAGS,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        ).decode()
    except Exception as e:  # noqa: BLE001 - cbor2 raises several types; all mean malformed
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"malformed CBOR: {e}") from None
    if fp.tell() != len(data):
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, f"{len(data) - fp.tell()} trailing bytes after CBOR item"
        )
    return value


# --------------------------------------------------------------------------------- envelope


def _encode(msg: Any, correlation_id: int) -> list[Frame]:
    enc = _schema(type(msg))[0]
    raw: list = []
    body = enc(msg, raw)
    header = cbor2.dumps({"api": msg.API, "v": msg.VERSION, "cid": correlation_id, "body": body})
    return [header, *raw]


def encode_request(msg: Any, correlation_id: int) -> list[Frame]:
    """Frames for a request message; ``correlation_id`` is echoed in the response."""
    if REQUESTS.get(getattr(msg, "API", None)) is not type(msg):
        raise TypeError(f"not a request message: {msg!r}")
    return _encode(msg, correlation_id)


def encode_response(msg: Any, correlation_id: int) -> list[Frame]:
    """Frames for a response message (or an ``ErrorResponse``)."""
    if RESPONSES.get(getattr(msg, "API", None)) is not type(msg):
        raise TypeError(f"not a response message: {msg!r}")
    return _encode(msg, correlation_id)


def encode_error(code: int, message: str, correlation_id: int = -1) -> list[Frame]:
    """Frames for an ``ErrorResponse``."""
    return _encode(ErrorResponse(error_code=int(code), error_message=message), correlation_id)


def _decode(
    frames: Sequence[Frame], registry: dict[str, type], max_header: int, max_frame: int
) -> tuple[int, Any]:
    if not frames:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "empty message")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, f"more than {MAX_FRAMES} frames")
    for f in frames[1:]:
        if len(f) > max_frame:
            raise ProtocolError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"frame of {len(f)} bytes exceeds the limit of {max_frame} bytes",
            )
    env = loads_strict(frames[0], max_bytes=max_header)
    if type(env) is not dict or env.keys() != _ENVELOPE_KEYS:
        raise ProtocolError(
            ErrorCode.INVALID_REQUEST, "frame 0 must be a map with keys api, v, cid, body"
        )
    cid = env["cid"]
    if type(cid) is not int or not _I64_MIN <= cid <= _I64_MAX:
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "cid must be an int64")
    try:
        api, version = env["api"], env["v"]
        if type(api) is not str or type(version) is not int:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "api must be text and v an int")
        cls = registry.get(api)
        if cls is None:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, f"unknown api {api[:64]!r}")
        if version != cls.VERSION:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"{api} version {version} is not supported (supported: {cls.VERSION})",
            )
        ctx = _Ctx(frames)
        try:
            msg = _schema(cls)[1](env["body"], ctx)
        except _Bad as e:
            path = ".".join(["body", *e.path]).replace(".[", "[")
            raise ProtocolError(ErrorCode.INVALID_REQUEST, f"{api}: {path}: {e.message}") from None
        except Exception as e:  # noqa: BLE001 - e.g. a dataclass __post_init__; still malformed
            raise ProtocolError(ErrorCode.INVALID_REQUEST, f"{api}: {e}") from None
        unused = [i for i in range(1, len(frames)) if not ctx.used[i]]
        if unused:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, f"frames {unused[:8]} not referenced")
        return cid, msg
    except ProtocolError as e:
        e.correlation_id = cid
        raise


def decode_request(
    frames: Sequence[Frame], *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> tuple[int, Any]:
    """``(correlation_id, request)`` from frames; ``ProtocolError`` (with a
    ``correlation_id`` attribute when the cid could be read) on anything malformed."""
    return _decode(frames, REQUESTS, MAX_HEADER_BYTES, max_frame_bytes)


def decode_response(
    frames: Sequence[Frame], *, max_frame_bytes: int = MAX_FRAME_BYTES
) -> tuple[int, Any]:
    """``(correlation_id, response)``; the response may be an ``ErrorResponse``."""
    return _decode(frames, RESPONSES, MAX_RESPONSE_HEADER_BYTES, max_frame_bytes)
