#!/bin/sh
# Agent A (AXME send_intent + wait_for): hand a job to agent B, then block until it is done.
#
#   agent_a.sh WORK_ID [TIMEOUT_SECONDS]
#
# Safe to re-run after a crash: the session and the request are written with fixed ids, so a
# retry writes nothing new and simply waits again (idempotent retries).
# Prints the final work unit as JSON on stdout. Exit code is `handoff wait`'s: 0 completed, 6 failed, 7 canceled, 124 timeout.
set -eu
HANDOFF=${HANDOFF:-handoff}
WORK=${1:?usage: agent_a.sh WORK_ID [TIMEOUT_SECONDS]}
TIMEOUT=${2:-120}
CHANNEL=${CHANNEL:-handoffs}
SESSION=${A_SESSION:-sess_agenta}

$HANDOFF session new --agent agent-a --channel "$CHANNEL" --id "$SESSION" >/dev/null
$HANDOFF request --session "$SESSION" --to agent-b --channel "$CHANNEL" --work "$WORK" --idempotency-key "$WORK" \
    --deadline "${DEADLINE:-1h}" \
    -d "Process the customer feedback analysis (handoff $WORK)" \
    --context '{"data_type":"customer_feedback","records":1200,"batches":'"${BATCHES:-5}"',"next_steps":["classify","summarise"]}' \
    >/dev/null
echo "agent-a: handed off $WORK to agent-b; waiting (timeout ${TIMEOUT}s)" >&2
set +e
$HANDOFF wait "$WORK" --timeout "$TIMEOUT" -o json   # the outcome, as JSON, on stdout
code=$?
set -e
echo "agent-a: wait exit code $code" >&2
exit $code
