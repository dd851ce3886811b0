#!/usr/bin/env bash
# One inbox entry for the shell agent (run by `handoff watch --exec`): the entry JSON is on stdin,
# HANDOFF_KIND, HANDOFF_WORK_ID, HANDOFF_WORK_STATE, HANDOFF_MESSAGE_ID... in the environment.
# A non-zero exit makes the watcher retry this entry later (with backoff).
#
# The "work" here is a stand-in: count the lines of the files named in the context bundle's
# files_changed (paths are data from another agent: only existing files inside the repo are read).
set -eu
HANDOFF=${HANDOFF:-handoff}
entry=$(cat)
W=${HANDOFF_WORK_ID:-}
if [ -n "$W" ] && [ "${HANDOFF_WORK_STATE:-}" = "submitted" ] && [ "${HANDOFF_KIND:-}" = "say" ]; then
    $HANDOFF accept "$W" -m "shell agent on it" >/dev/null
    files=$(printf '%s' "$entry" | python3 -c '
import json, os, sys
ctx = (json.load(sys.stdin).get("body") or {}).get("context") or {}
root = os.path.realpath(".")
for f in ctx.get("files_changed") or []:
    p = os.path.realpath(str(f))
    if p.startswith(root + os.sep) and os.path.isfile(p):
        print(os.path.relpath(p, root))')
    done_json="[]"; total=0
    for f in $files; do
        n=$(wc -l <"$f")
        total=$((total + n))
        done_json=$(DONE="$done_json" F="$f" python3 -c 'import json,os; d=json.loads(os.environ["DONE"]); d.append(os.environ["F"]); print(json.dumps(d))')
        $HANDOFF progress "$W" -m "counted $f" --checkpoint "{\"done\": $done_json}" >/dev/null
    done
    $HANDOFF complete "$W" -m "counted $total lines" --result "{\"lines\": $total, \"files\": $done_json}" >/dev/null
    echo "shell-agent: completed $W ($total lines)" >&2
elif [ -n "${HANDOFF_MESSAGE_ID:-}" ]; then
    # anything else (a broadcast, a trace on someone's work): acknowledge it locally
    $HANDOFF inbox --ack "$HANDOFF_MESSAGE_ID" >/dev/null 2>&1 || true
fi
