#!/usr/bin/env bash
# The browser test on its own: installs Chromium and the node modules when missing, then runs
# the test (tests/api/browser.rs starts the server and drives /docs with e2e/swagger-ui.mjs).
# Screenshots of each stage: target/e2e/screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
e2e/install.sh
E2E_REQUIRED=1 cargo test --locked --test api browser -- --nocapture
