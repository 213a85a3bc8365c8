#!/bin/sh
# Try the three-node setup on one machine: three `tandem serve` nodes sharing one SQLite
# file, behind HAProxy (deploy/haproxy.cfg) on http://127.0.0.1:8080 (stats on :8404).
# Needs Debian's haproxy (`make haproxy`) and `make setup`. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
DB=${DB:-tandem.db}
BIN=.venv/bin
PIDS=""
trap 'kill $PIDS 2>/dev/null; wait' INT TERM EXIT
for port in 8001 8002 8003; do
    TANDEM_DRAIN_SECONDS=${TANDEM_DRAIN_SECONDS:-5} $BIN/tandem serve --db "$DB" --port $port &
    PIDS="$PIDS $!"
done
TANDEM_LB_BIND=${TANDEM_LB_BIND:-127.0.0.1:8080} TANDEM_LB_STATS=${TANDEM_LB_STATS:-127.0.0.1:8404} \
TANDEM_NODE1=127.0.0.1:8001 TANDEM_NODE2=127.0.0.1:8002 TANDEM_NODE3=127.0.0.1:8003 \
TANDEM_CHECK_INTER=${TANDEM_CHECK_INTER:-2s} \
    haproxy -db -f deploy/haproxy.cfg &
PIDS="$PIDS $!"
wait
