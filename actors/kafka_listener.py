"""The KAFKA listener: Kafka's wire protocol on a broker's own TCP port.

One thread runs a ``selectors`` loop over the listening socket and every connection (no
thread per connection); decoded requests go to a small worker pool
(``num.network.threads`` threads) that runs the handlers of actors/kafka_dispatch.py, which
reach the broker's actors through the shared BrokerContext as actors/session.py does.
Responses come back from any thread through a queue and a wake-up socket pair; only the
loop thread touches sockets.

Produce and Fetch requests are handled on the loop thread itself (``_HOSTED``): their
handlers never block (appends to the page cache, tells to partition actors), and a hand-off to
a worker and another back to the loop cost more CPU than the request's own work; a client
that pipelines unbatched produces (librdkafka and the Java client at ``linger.ms=0``) got
its requests handled one hand-off pair at a time (docs/runtime.md, "Hosted sessions"). The
other APIs (metadata over thousands of partitions, SASL's key derivation...) go to the pool.

A connection handles one request at a time, in order (Kafka's broker mutes a channel while
a request is in flight), so pipelined requests are answered in order. Bad input (a size
outside 1..socket.request.max.bytes, a truncated or undecodable frame, an unknown API key or
version, bytes after a request, a handler that raises) closes that connection only.
"""

from __future__ import annotations

import collections
import selectors
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger

from . import kafka_metrics, kafka_quotas
from . import kafka_wire as W
from .kafka_api_versions import unsupported_version_response
from .kafka_dispatch import HANDLERS, Call, KafkaEndpoint, load_handlers, served_versions
from .kafka_secure_io import HandshakeDeadlines, TlsChannel

_RECV = 256 * 1024
_HOSTED = frozenset({0, 1})  # Produce, Fetch: handled on the loop thread (module docstring)
_CLOSE = object()  # marker: close the connection (a handler failed)
_MUTE = object()  # marker: quotas: mute the connection (actors/kafka_quotas.py)


class _Conn:
    __slots__ = ("sock", "peer", "inbuf", "outbuf", "busy", "pending", "closed", "want", "doomed",
                 "session", "close_at", "mute_until", "tls", "events", "writing")

    def __init__(self, sock: socket.socket, peer: Any, session: Any = None) -> None:
        self.sock = sock
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.busy = False  # a request of this connection is being handled
        self.pending: collections.deque[bytes] = collections.deque()  # frames not yet handled
        self.closed = False
        self.want = 0
        self.doomed = ""  # bad input seen: answer what came before it, then close
        self.session = session  # actors/kafka_sasl.py KafkaSession (None: codec-only tests)
        self.close_at = 0.0  # failed SASL: closed at this monotonic time, input ignored
        self.mute_until = 0.0  # quotas: no request handled before this monotonic time
        self.tls: TlsChannel | None = None  # an SSL / SASL_SSL listener's (kafka_secure_io.py)
        self.events = selectors.EVENT_READ  # registered with the selector (0: unregistered)
        self.writing = False  # bytes wait to go out


class KafkaListener:
    """``start()`` binds and serves; ``stop()`` closes everything (idempotent)."""

    def __init__(
        self,
        host: str,
        port: int,
        broker: Any,
        advertised: tuple[str, int] | None = None,
        max_request_bytes: int = 100 * 1024 * 1024,
        workers: int = 3,
        failed_auth_delay_ms: int = 100,
        handshake_timeout_ms: int = 10000,
        tls: Any = None,
    ) -> None:
        load_handlers()
        self._versions = served_versions()
        self._broker = broker
        self._max = max_request_bytes
        self._sel = selectors.DefaultSelector()
        self._server = socket.create_server((host or "0.0.0.0", port), backlog=128)
        self._server.setblocking(False)
        self.host, self.port = self._server.getsockname()[:2]
        adv = advertised or (self.host, self.port)
        self.endpoint = KafkaEndpoint(adv[0], adv[1] or self.port)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._done: collections.deque[tuple[_Conn, Any, int]] = collections.deque()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kafka-worker")
        self._thread = threading.Thread(target=self._run, name="kafka-listener", daemon=True)
        self._stopping = False
        self.connections = 0
        self.closed_bad = 0  # connections closed for bad input (observable in tests)
        self.hosted = 0  # requests handled on the loop thread (_HOSTED; tests read it)
        self._auth_delay = max(0, failed_auth_delay_ms) / 1000
        self._closing: list[_Conn] = []  # failed authentications, closed after the delay
        self._muted: set[_Conn] = set()  # throttled connections (quotas), resumed when due
        self._metrics = kafka_metrics.register(broker)  # None: metrics off (docs/metrics.md)
        # TLS (an ssl.SSLContext) and handshake.timeout.ms: actors/kafka_secure_io.py
        self._tls = tls
        self.handshakes = HandshakeDeadlines(handshake_timeout_ms)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> KafkaListener:
        self._sel.register(self._server, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------ loop thread

    def _run(self) -> None:
        try:
            while not self._stopping:
                wait = 1.0
                if self._closing:
                    wait = max(0.0, min(wait, min(c.close_at for c in self._closing) - time.monotonic()))
                if self._muted:
                    wait = max(0.0, min(wait, min(c.mute_until for c in self._muted) - time.monotonic()))
                wait = self.handshakes.wait(time.monotonic(), wait)
                if self._done:  # answered on this thread after the last flush (_HOSTED)
                    wait = 0.0
                for key, mask in self._sel.select(timeout=wait):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._io(key.data, mask)
                self._flush_done()
                self._close_due()
                self._unmute_due()
                for conn in self.handshakes.due(time.monotonic(), _handshaken):
                    self._bad(conn, "handshake not finished within handshake.timeout.ms")
        except Exception:  # never expected; the broker logs it and keeps its other doors
            logger.exception("kafka listener loop failed")
        finally:
            for key in list(self._sel.get_map().values()):
                if isinstance(key.data, _Conn):
                    key.data.sock.close()
            for conn in self._muted:  # not registered while muted
                conn.sock.close()
            self._sel.close()
            self._server.close()
            self._wake_r.close()
            self._wake_w.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            if self._metrics is not None:
                self._metrics.connection_creation += 1
                self._metrics.connection_count += 1
            conn = _Conn(sock, peer, self._session(peer))
            if self._tls is not None:
                conn.tls = TlsChannel(self._tls)
            if conn.tls is not None or (conn.session is not None and conn.session.sasl):
                self.handshakes.add(conn, time.monotonic())
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _io(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                return self._close(conn)
            if data == b"":
                return self._close(conn)
            if data and self._metrics is not None:
                self._metrics.incoming_bytes += len(data)
            if data and conn.tls is not None:
                try:
                    data = conn.tls.receive(data)
                except ssl.SSLError as e:  # not TLS (a PLAINTEXT client?) or broken TLS
                    return self._bad(conn, f"TLS: {e.reason or e}")
                if conn.tls.wire:
                    self._write(conn)
            if data and not conn.doomed and not conn.close_at:
                conn.inbuf += data
                try:
                    self._frames(conn)
                except W.FrameError as e:
                    conn.doomed = str(e)
                    conn.inbuf.clear()
                    self._close_if_doomed(conn)
        if mask & selectors.EVENT_WRITE and not conn.closed:
            self._write(conn)

    def _frames(self, conn: _Conn) -> None:
        buf = conn.inbuf
        while True:
            if conn.want == 0:
                if len(buf) < 4:
                    return
                conn.want = W.frame_size(bytes(buf[:4]), self._max)
                del buf[:4]
            if len(buf) < conn.want:
                return
            with memoryview(buf) as view:  # one copy of a (large) frame, not two
                frame = bytes(view[: conn.want])
            del buf[: conn.want]
            conn.want = 0
            conn.pending.append(frame)
            self._next(conn)

    def _close_if_doomed(self, conn: _Conn) -> None:
        if conn.doomed and not (conn.busy or conn.pending or conn.outbuf or conn.closed
                                or (conn.tls is not None and conn.tls.wire)):
            self._bad(conn, conn.doomed)

    def _next(self, conn: _Conn) -> None:
        """Dispatch the connection's next frame unless one is in flight."""
        if conn.busy or not conn.pending or conn.closed or conn.close_at:
            return self._close_if_doomed(conn)
        if conn.mute_until and conn.mute_until > time.monotonic():
            return self._mute(conn)  # throttled: Kafka mutes the channel (_unmute_due resumes)
        frame = conn.pending.popleft()
        try:
            request = W.decode_request(frame, self._versions)
        except W.UnsupportedVersion as e:
            response = unsupported_version_response()
            if self._metrics is not None:  # answered here: an ApiVersions with its error
                self._metrics.responded("ApiVersions", response, 0.0)
            return self._queue_bytes(conn, W.encode_response(e.correlation_id, response))
        except W.FrameError as e:
            return self._bad(conn, str(e))
        if conn.session is not None and not conn.session.may_serve(request.api_key):
            return self._bad(conn, f"API key {request.api_key} before SASL authentication")
        conn.busy = True
        if request.api_key in _HOSTED:
            self.hosted += 1
            self._handle(conn, request, kafka_metrics.now())  # its answer: _flush_done
        else:
            self._pool.submit(self._handle, conn, request, kafka_metrics.now())

    def _session(self, peer: Any) -> Any:
        configs = getattr(self._broker, "broker_configs", None)
        if configs is None:
            return None
        from .kafka_sasl import session_for

        return session_for(configs, peer[0] if isinstance(peer, tuple) else str(peer))

    def _queue_bytes(self, conn: _Conn, data: bytes) -> None:
        conn.outbuf += data
        self._write(conn)
        self._next(conn)

    def _write(self, conn: _Conn) -> None:
        if conn.closed:
            return
        out = conn.outbuf if conn.tls is None else conn.tls.seal(conn.outbuf)
        try:
            while out:
                sent = conn.sock.send(out)
                del out[:sent]
                if self._metrics is not None:
                    self._metrics.outgoing_bytes += sent
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return self._close(conn)
        conn.writing = bool(out)
        self._interest(conn)
        self._close_if_doomed(conn)

    def _interest(self, conn: _Conn) -> None:
        """Register what the loop waits for on the connection: reading unless it is muted
        (Kafka stops reading a throttled channel: its bytes stay in the kernel's buffers,
        then the client's, and a client that pipelines on regardless blocks), writing
        while bytes wait to go out."""
        events = (0 if conn in self._muted else selectors.EVENT_READ) | (
            selectors.EVENT_WRITE if conn.writing else 0)
        if events == conn.events or conn.closed:
            return
        if not conn.events:
            self._sel.register(conn.sock, events, conn)
        elif not events:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _mute(self, conn: _Conn) -> None:
        if conn not in self._muted and not conn.closed:
            self._muted.add(conn)
            self._interest(conn)

    def _bad(self, conn: _Conn, why: str) -> None:
        self.closed_bad += 1
        logger.warning("kafka listener: closing {} ({})", conn.peer, why)
        self._close(conn, bad=True)

    def _close(self, conn: _Conn, bad: bool = False) -> None:
        if conn.closed:
            return
        conn.closed = True
        m = self._metrics
        if m is not None:
            m.connection_count -= 1
            if bad:
                m.connection_close_bad_input += 1
            else:
                m.connection_close_disconnected += 1
        self._muted.discard(conn)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _flush_done(self) -> None:
        while self._done:
            conn, data, throttle_ms = self._done.popleft()
            if throttle_ms > 0:  # quotas: answered (or charged), then muted that long
                conn.mute_until = max(conn.mute_until, time.monotonic() + throttle_ms / 1000)
                self._mute(conn)
            if data is _MUTE:
                continue
            conn.busy = False
            if conn.closed:
                continue
            if data is None:
                self._next(conn)
            elif data is _CLOSE:
                self._bad(conn, "handler failed")
            else:
                if conn.session is not None and conn.session.close and not conn.close_at:
                    # SASL failed: answer, then close after connection.failed.authentication
                    # .delay.ms (Kafka's: the client reads the answer; guessing is slowed)
                    conn.close_at = time.monotonic() + self._auth_delay
                    conn.pending.clear()
                    self._closing.append(conn)
                self._queue_bytes(conn, data)

    def _unmute_due(self) -> None:
        if not self._muted:
            return
        now = time.monotonic()
        for conn in [c for c in self._muted if c.mute_until <= now or c.closed]:
            self._muted.discard(conn)
            self._interest(conn)  # reading again
            self._next(conn)

    def _close_due(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._closing if c.close_at <= now]:
            self._closing.remove(conn)
            self._bad(conn, "SASL authentication failed")

    # ----------------------------------------------------------------------- any thread

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending (or we are stopping)

    def _finish(self, conn: _Conn, data: object, throttle_ms: int = 0) -> None:
        self._done.append((conn, data, throttle_ms))
        if threading.current_thread() is not self._thread:
            self._wake()  # (the loop thread flushes _done before it selects again)

    def _handle(self, conn: _Conn, request: W.Request, start: float) -> None:
        answered = threading.Event()
        metrics = self._metrics

        def respond(response: Any) -> None:
            if answered.is_set():
                return
            answered.set()
            response = kafka_quotas.with_throttle(response, request_throttle.ms())
            if metrics is not None:  # latency and error codes (actors/kafka_metrics.py)
                try:
                    metrics.responded(kafka_metrics.api_name(request.api_key, request.body),
                                      response, kafka_metrics.now() - start)
                except Exception:  # noqa: BLE001 - a metric never costs the client its answer
                    logger.exception("kafka api {}: metrics failed", request.api_key)
            try:
                data = None if response is None else W.encode_response(request.correlation_id, response)
            except Exception:
                logger.exception("kafka api {} v{}: bad response", request.api_key, request.api_version)
                data = _CLOSE
            self._finish(conn, data, max(call.mute_ms, kafka_quotas.throttle_ms_of(response)))

        call = Call(request, self._broker, self.endpoint, respond, conn.session)
        request_throttle = kafka_quotas.RequestThrottle(call)
        try:
            from .kafka_auth import cluster_check_fails

            why = cluster_check_fails(call)
            if why is not None:
                logger.info("kafka listener: closing {}: {}", conn.peer, why)
                answered.set()
                return self._finish(conn, _CLOSE)
            began = time.perf_counter_ns()
            result = HANDLERS[request.api_key].handler(call)
            muted = request_throttle.charge(time.perf_counter_ns() - began)
            if muted > 0:  # request_percentage: the connection is muted; an answer still
                # to go out carries the throttle too (kafka_quotas.with_throttle)
                self._finish(conn, _MUTE, muted)
        except Exception:
            logger.exception("kafka api {} v{} handler failed", request.api_key, request.api_version)
            answered.set()
            return self._finish(conn, _CLOSE)
        if result is not None:
            respond(result)




def _handshaken(conn: _Conn) -> bool:
    """Has ``conn`` finished its TLS handshake and SASL authentication (or gone)?"""
    return conn.closed or ((conn.tls is None or conn.tls.handshaken)
                           and (conn.session is None or conn.session.authenticated))


def start_kafka_listener(configs: dict, broker: Any) -> KafkaListener | None:
    """The broker's KAFKA listener if ``listeners`` names one (actors/listeners.py), started;
    else None. Advertised at its ``advertised.listeners`` KAFKA entry or its bound address."""
    from .listeners import Listener, advertised_addresses, parse_listeners

    bound = parse_listeners(configs.get("listeners", ""))
    kafka = bound.get("KAFKA")
    if kafka is None:
        return None
    workers = int(configs.get("num.network.threads", 3))
    listener = KafkaListener(
        kafka.host, kafka.port, broker,
        max_request_bytes=int(configs.get("socket.request.max.bytes", 100 * 1024 * 1024)),
        workers=workers,
        failed_auth_delay_ms=int(configs.get("connection.failed.authentication.delay.ms", 100)),
        handshake_timeout_ms=int(configs.get("handshake.timeout.ms", 10000)),
        tls=kafka_tls_context(configs),
    )
    real = {"KAFKA": Listener("KAFKA", kafka.host, listener.port)}
    host, _, port = advertised_addresses(real, _only_kafka(configs.get("advertised.listeners", ""))).get("KAFKA").rpartition(":")
    listener.endpoint = KafkaEndpoint(host, int(port))
    return listener.start()


def kafka_tls_context(configs: dict) -> Any:
    """The KAFKA listener's ssl.SSLContext on an SSL / SASL_SSL listener, else None."""
    from .configs import BROKER_DEFAULTS, kafka_protocol
    from .kafka_secure_io import server_context

    merged = {**BROKER_DEFAULTS, **configs}
    return server_context(merged) if kafka_protocol(merged).endswith("SSL") else None


def _only_kafka(text: str) -> str:
    return ",".join(p for p in text.split(",") if p.strip().upper().startswith("KAFKA://"))
