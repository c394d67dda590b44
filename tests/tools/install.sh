#!/usr/bin/env bash
# Installs the tools that tests drive but that pip does not bring: every install-*.sh here
# (system packages with apt-get, npm packages into tests/tools/node_modules). Each script is
# idempotent and quick when its tools are already present. The README's test command and
# .ci/run run this; a test whose tool is missing fails under CI=true and skips otherwise.
set -euo pipefail
cd "$(dirname "$0")"
for script in install-*.sh; do
    [ -e "$script" ] || continue
    bash "$script"
done
