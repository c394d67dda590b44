#!/usr/bin/env bash
# Quix Streams (a stream-processing framework on librdkafka) for tests/integration/
# test_kafka_quix.py, in its own virtualenv: quixstreams pins confluent-kafka<2.13, which the
# project's dev extra must not be downgraded to. The venv is kept outside the work tree
# (~/.cache/rillet/tools/quix-venv), so a fresh clone on the same machine reuses it.
# Idempotent: installs only when missing. Not run by tests/tools/install.sh (the test is
# marked slow, and the install takes a minute): run `bash tests/tools/quix/install.sh` first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)/.."
venv="$HOME/.cache/rillet/tools/quix-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import quixstreams" >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/quix/requirements.txt"
fi
