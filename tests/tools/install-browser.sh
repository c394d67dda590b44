#!/usr/bin/env bash
# Headless Chromium (Debian's package) and playwright-core (npm, pinned by the lock file) for
# the web console's browser tests (tests/integration/test_console_browser.py). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d browser/node_modules/playwright-core ]; then
    (cd browser && npm ci --no-audit --no-fund --silent)
fi
