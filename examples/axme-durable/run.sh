#!/bin/sh
# The AXME durable-handoff scenario, end to end, with real processes:
#   agent A hands a job to agent B and waits; B accepts, checkpoints after each batch,
#   is killed with SIGKILL mid-work, is restarted, resumes from its checkpoint and completes;
#   A's `handoff wait` returns `completed`.
#
#   run.sh [REPO_DIR]      (default: a fresh temporary git repository)
#
# HANDOFF overrides the command (e.g. HANDOFF="python3 -m handoff").
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
HANDOFF=${HANDOFF:-handoff}
export HANDOFF
REPO=${1:-$(mktemp -d "${TMPDIR:-/tmp}/axme-durable.XXXXXX")}
WORK=${WORK:-work_ho_2026_0033}
STEP=${STEP_SECONDS:-0.4}
export BATCHES=${BATCHES:-6}

mkdir -p "$REPO" && cd "$REPO"
if [ ! -d .git ]; then
    git init -q -b main . && git commit -q --allow-empty -m "initial"
fi
$HANDOFF init --workspace axme-demo >/dev/null

echo "== B starts (in its own process group, so the kill takes its watcher too)"
setsid python3 "$HERE/agent_b.py" --step-seconds "$STEP" --exit-when-idle >b1.log 2>&1 &
B=$!
echo "== A hands off $WORK and waits"
"$HERE/agent_a.sh" "$WORK" 120 >a.json 2>a.log &
A=$!

# Let B get through a couple of batches, then crash it hard.
i=0
until grep -q "^batch 2/" b1.log 2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge 600 ]; then
        echo "B never reached batch 2"; cat b1.log a.log; kill -KILL "-$B" "$A" 2>/dev/null; exit 1
    fi
    sleep 0.1
done
kill -KILL "-$B"
wait $B 2>/dev/null || true
echo "== B killed with SIGKILL; checkpoint on the work unit:"
$HANDOFF work status "$WORK" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["checkpoint"])'

echo "== B restarts"
python3 "$HERE/agent_b.py" --step-seconds "$STEP" --exit-when-idle >b2.log 2>&1
cat b2.log

set +e
wait $A
code=$?
set -e
echo "== A's wait exited $code:"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["wait_result"], d["result"])' a.json
exit $code
