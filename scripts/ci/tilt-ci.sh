#!/usr/bin/env bash
# The workflow's Tilt job: `tilt ci` on the Tiltfile, on a kind cluster that
# already exists (the Tiltfile applies deploy/dev/ itself). It exits 0 once every
# resource is up and the smoke test has taken one real job
# API -> Redis -> worker -> Postgres (see the Tiltfile).
set -euo pipefail
cd "$(dirname "$0")/../.."
tilt ci --file Tiltfile --timeout 15m
tilt down --file Tiltfile
