#!/usr/bin/env bash
# pip-audit over every lock in requirements/, against the public vulnerability
# data (needs the internet). Run by `make audit` and by the workflow's audit job.
# Vulnerabilities without a fix are listed, each with its reason, in
# .github/pip-audit-ignore.txt ("ID  # reason" per line); anything else fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
pip_audit=${PIP_AUDIT:-.venv/bin/pip-audit}

ignore_args=()
while read -r id _; do
  [[ -z $id || $id == \#* ]] && continue
  ignore_args+=(--ignore-vuln "$id")
done < .github/pip-audit-ignore.txt

status=0
for lock in requirements/*.txt; do
  echo "==> $lock"
  # The locks are complete and hash-pinned: audit them as they are, no resolver.
  "$pip_audit" --disable-pip --require-hashes --strict --progress-spinner off \
    -r "$lock" "${ignore_args[@]}" || status=1
done
exit "$status"
