#!/usr/bin/env bash
# facecert in any CI system (GitLab, Jenkins, Buildkite, a cron job): the same steps as the GitHub
# Actions workflow docs/examples/facecert.yml, as one script. docs/ci.md explains each step;
# tests/ci/test_workflow.py runs this script on every change of facecert.
#
# Settings (environment):
#   REPORTS             where the reports go (default: reports)
#   FACECERT_TAGS       the plans' tags, e.g. "tasks or cadence" (default: the whole plan)
#   STAGING_URL         a platform server to certify (default: none, only the self-test)
#   FACECERT_TRIGGERS   its trigger file (default: triggers/mock_server.yaml)
#   FACECERT_BASELINE   the baseline that gates it, if the file exists (default: ci/facecert-staging-baseline.json)
#   FACECERT_TIME_SCALE for a simulator only: shrink protocol intervals (default: real time)
#   BASE_REF            a git ref to compare schemas/ with (default: none, no contract diff)
#
# Exit status: 0 all gates passed; 1 a certification failed (only on new findings, with a baseline)
# or the contract diff has a change no message could show; 2 unusable input or setup.
set -euo pipefail

REPORTS=${REPORTS:-reports}
FACECERT_TAGS=${FACECERT_TAGS:-}
FACECERT_TRIGGERS=${FACECERT_TRIGGERS:-triggers/mock_server.yaml}
FACECERT_BASELINE=${FACECERT_BASELINE:-ci/facecert-staging-baseline.json}
mkdir -p "$REPORTS"

tags=()
if [ -n "$FACECERT_TAGS" ]; then tags=(--tags "$FACECERT_TAGS"); fi

# 1. the reference-peer self-test: facecert and its peers work on this machine
facecert certify device --demo --report "$REPORTS/self-test-device" "${tags[@]}"
facecert certify server --demo --report "$REPORTS/self-test-server" "${tags[@]}"

# 2. the platform server under test, gated by its baseline (only new findings fail)
if [ -n "${STAGING_URL:-}" ]; then
  options=("${tags[@]}")
  if [ -n "${FACECERT_TIME_SCALE:-}" ]; then options+=(--time-scale "$FACECERT_TIME_SCALE"); fi
  if [ -f "$FACECERT_BASELINE" ]; then options+=(--baseline "$FACECERT_BASELINE"); fi
  facecert certify server --url "$STAGING_URL" --triggers "$FACECERT_TRIGGERS" \
    --report "$REPORTS/staging" --write-baseline "$REPORTS/staging-baseline.json" "${options[@]}"
fi

# 3. the contract diff, when schemas/ changed since BASE_REF
if [ -n "${BASE_REF:-}" ] && ! git diff --quiet "$BASE_REF...HEAD" -- schemas/; then
  base="$(mktemp -d)"
  trap 'rm -rf "$base"' EXIT
  git archive "$BASE_REF" schemas | tar -x -C "$base"
  facecert contract diff --old "$base/schemas" --new schemas --markdown -o "$REPORTS/contract-diff.md"
  facecert contract diff --old "$base/schemas" --new schemas --json -o "$REPORTS/contract-diff.json" \
    --fail-on unconfirmed
fi

echo "facecert: all gates passed; reports in $REPORTS/ (junit.xml and html/index.html per run)"
