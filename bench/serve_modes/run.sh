#!/bin/bash
# Requests/s and server CPU per request of one handler served three ways on this machine: one
# isolate (deno serve), two isolates by `deno serve --parallel`, two Workers with reusePort (what
# ROOMCAST_WORKERS=2 runs). Needs `ab` (apache2-utils), which shares the 2 cores with the server.
# Usage: bench/serve_modes/run.sh [requests]
cd "$(dirname "$0")" || exit 1
N=${1:-100000}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # port pid
  sleep 1.5
  ab -q -k -c 64 -n 2000 "http://127.0.0.1:$1/" > /dev/null 2>&1 # warm up
  for round in 1 2 3; do
    before=$(cpu "$2")
    rps=$(ab -q -k -c 64 -n "$N" "http://127.0.0.1:$1/" 2>/dev/null | awk '/Requests per second/ {print $4}')
    after=$(cpu "$2")
    echo "$rps $(( (after - before) * 10000000 / N ))"
  done | sort -n | sed -n 2p | awk '{printf "%8.0f req/s, %5.1f µs server CPU per request (median of 3)\n", $1, $2 / 1000}'
}
deno serve --port 8301 --host 127.0.0.1 handler.ts > /dev/null 2>&1 & P=$!
echo "one isolate:                $(measure 8301 $P)"; kill $P
DENO_JOBS=2 deno serve --parallel --port 8302 --host 127.0.0.1 handler.ts > /dev/null 2>&1 & P=$!
echo "deno serve --parallel (2):  $(measure 8302 $P)"; kill $P
deno run -A --unstable-net workers.ts 8303 2 > /dev/null 2>&1 & P=$!
echo "2 Workers with reusePort:   $(measure 8303 $P)"; kill $P
