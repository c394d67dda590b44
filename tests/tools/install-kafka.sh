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
# kafkajs (npm, pinned by tests/tools/kafkajs/package-lock.json) for the consumer-group tests
# (tests/integration/test_kafka_groups.py)
if [ ! -d "$(dirname "$0")/kafkajs/node_modules/kafkajs" ]; then
    (cd "$(dirname "$0")/kafkajs" && npm ci --no-audit --no-fund --silent)
fi
