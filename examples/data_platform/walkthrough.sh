#!/usr/bin/env bash
# The data platform of seed 004, end to end, as a user types it: a work pool, three child
# flows deployed to it, a worker, and a parent flow that runs the children's deployments one
# after the other (run_deployment) and stops at the first that fails.
#
#   examples/data_platform/walkthrough.sh                    # from the repository root
#   examples/data_platform/walkthrough.sh --fail-transform   # transform-load fails
#
# Everything lives in a fresh temporary ANABRANCH_HOME (the embedded store: no server), so it
# never touches your own runs; it is deleted at the end unless WALKTHROUGH_HOME names a folder
# to use (and keep) instead. The background worker is stopped on exit, however the script
# ends (Ctrl-C included).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${ANABRANCH_BIN:-$here/../../.venv/bin}"
export PATH="$(cd "$bin" && pwd):$PATH"   # `anabranch` and `python` of the project's venv

unset ANABRANCH_API_URL ANABRANCH_DATABASE_URL   # the embedded store in ANABRANCH_HOME
if [[ -n "${WALKTHROUGH_HOME:-}" ]]; then
    mkdir -p "$WALKTHROUGH_HOME"
    export ANABRANCH_HOME="$WALKTHROUGH_HOME"
else
    export ANABRANCH_HOME="$(mktemp -d -t anabranch-walkthrough-XXXXXX)"
fi

worker_pid=""
finish() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$worker_pid" ]] && kill -0 "$worker_pid" 2>/dev/null; then
        echo "+ kill -TERM $worker_pid   # stop the worker (it lets running children finish)"
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    [[ -z "${WALKTHROUGH_HOME:-}" ]] && rm -rf "$ANABRANCH_HOME"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

run() { echo "+ $*"; "$@"; }
cd "$here"

# 1. A work pool: where deployed runs wait for a worker. At most 2 of its runs at once.
run anabranch work-pool create data-platform --concurrency-limit 2

# 2. Deploy each child flow as FLOW/dev. The flow names are extract, transform-load, cleanup.
run anabranch deploy flows.py:extract --name dev --pool data-platform
run anabranch deploy flows.py:transform_load --name dev --pool data-platform
run anabranch deploy flows.py:cleanup --name dev --pool data-platform
run anabranch deployment ls

# 3. A worker for the pool, in the background: each child runs in a process of its own.
echo "+ anabranch worker start --pool data-platform &   # its output: \$ANABRANCH_HOME/worker.log"
anabranch worker start --pool data-platform >"$ANABRANCH_HOME/worker.log" 2>&1 &
worker_pid=$!

# 4. The parent, in this shell's process; it prints its flow run id and final state.
echo "+ python parent.py $*"
parent_status=0
result="$(python parent.py "$@")" || parent_status=$?
read -r parent_id parent_state <<<"$result"
echo "parent flow run $parent_id ended $parent_state"

# 5. The run tree: the parent and the children it triggered, with their states and times.
run anabranch flow-run inspect "$parent_id"
exit "$parent_status"
