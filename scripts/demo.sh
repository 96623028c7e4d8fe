#!/usr/bin/env bash
# The whole release, on this machine: bring the local environment up, release
# a good change (promoted), release a bad one (rolled back), measure what one
# replica carries and what a million tokens cost there, show the history.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
started=$(date +%s)

step "1/5 inferops up --env local (Terraform, GitOps repo, Redis, Prometheus, nginx, service)"
inferops up --env local

step "2/5 release a good change: the new version has a faster first token (expect: promoted)"
inferops release --env local --set INFEROPS_SIMULATOR_TTFT_MS=30

step "3/5 release a bad change: +150 ms latency and 8% errors (expect: rolled back)"
set +e
inferops release --env local --set INFEROPS_FAULTS_EXTRA_LATENCY_MS=150 --set INFEROPS_FAULTS_ERROR_RATE=0.08
code=$?
set -e
if [ "$code" -ne 2 ]; then echo "expected the bad release to be rolled back (exit 2), got $code" >&2; exit 1; fi

step "4/5 capacity of one stable pod: Poisson arrivals at rising rates, priced as an AWS g5.xlarge"
set +e
inferops loadtest --env local --profile capacity-quick --target stable --priced-as aws:g5.xlarge
code=$?
set -e
# 2: an SLO did not hold at the knee's load (or there was no knee): a finding, not a failure.
if [ "$code" -ne 0 ] && [ "$code" -ne 2 ]; then echo "the capacity test failed (exit $code)" >&2; exit 1; fi

step "5/5 inferops history --env local"
inferops history --env local
inferops status --env local

printf '\nDemo finished in %ss. The environment is still up: try `inferops status`,\n' "$(( $(date +%s) - started ))"
printf 'open Prometheus at the address above, or stop it all with `make down`.\n'
