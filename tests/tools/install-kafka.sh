#!/usr/bin/env bash
# The Kafka command-line client the KAFKA-listener tests drive (tests/integration/
# test_kafka_data.py): kcat (Debian's package). Idempotent: apt-get only when it is missing.
set -euo pipefail
if ! command -v kcat >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq kcat >/dev/null
fi
