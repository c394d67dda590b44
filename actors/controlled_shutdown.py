"""Controlled shutdown (Kafka's ControlledShutdown, KIP-631's ``wantShutDown``): on SIGTERM
the broker asks the active controller, through its heartbeats, to move its leaderships to
other in-sync replicas and take it out of the ISRs; once that is committed the controller
answers ``should_shut_down`` and the broker closes. A rolling restart then costs each
partition a leader move, not a session timeout of unavailability (docs/operations.md).

``controlled.shutdown.enable=false`` skips it (the broker is fenced when its session runs
out, as after a crash). The wait is bounded by ``broker.session.timeout.ms``: past it the
controller would have fenced the broker anyway; it ends early when no other broker is live
(nothing to move the leaderships to: the last broker of a cluster being stopped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pykka

from .broker_lifecycle import ControlledShutdown


def controlled_shutdown(lifecycle, configs, log, others_live: Callable[[], bool]) -> bool:
    """Block until the controller has moved this broker's leaderships away (True) or the
    bound passed / no other broker is live / it is disabled (False)."""
    if lifecycle is None or not configs.flag("controlled.shutdown.enable") or not others_live():
        return False
    done = threading.Event()
    try:
        lifecycle.tell(ControlledShutdown(done.set))
    except pykka.ActorDeadError:
        return False
    timeout_s = configs.int("broker.session.timeout.ms") / 1000
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done.wait(0.05):
            return True
        if not others_live():
            log.info("controlled shutdown: no other live broker to move leaderships to")
            return False
    log.warning(
        "controlled shutdown: no answer from the controller in {} s; stopping anyway "
        "(the controller fences this broker when its session runs out)",
        timeout_s,
    )
    return False
