"""A broker heartbeat as the control core reads it (coordinator/control/brokers.py
``BrokerBeat``): every field, with a test broker's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Beat:
    broker_id: int
    host: str = "127.0.0.1"
    port: int = 9000
    rack: str | None = None
    metadata_offset: int = 0
    incarnation: str = "a"
    clean_shutdown: bool = True
    internal_host: str = "127.0.0.1"
    internal_port: int = 9100
    want_shut_down: bool = False
    kafka_host: str = ""
    kafka_port: int = 0
