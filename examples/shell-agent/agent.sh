#!/usr/bin/env bash
# A whole agent in a shell loop: `handoff watch --exec` runs on-entry.sh once per new inbox entry
# (entry JSON on stdin, ids in HANDOFF_* variables), at least once, even across restarts.
#
#   examples/shell-agent/agent.sh            # inside a repository with .handoffs/
#
# Environment: HANDOFF_SESSION (default sess_shell_agent), HANDOFF_AGENT (default shell-agent),
# HANDOFF_CHANNEL (default general), LIMIT (exit after N entries; default: run until killed).
set -eu
HANDOFF=${HANDOFF:-handoff}
HERE=$(cd "$(dirname "$0")" && pwd)
export HANDOFF_SESSION=${HANDOFF_SESSION:-sess_shell_agent}
# opens the session, or finds it again (same id, agent and channel: a retry); a closed one is refused
# (session_closed, with the way out) rather than watched by an agent that could not answer anything
$HANDOFF session new --id "$HANDOFF_SESSION" --agent "${HANDOFF_AGENT:-shell-agent}" \
    --channel "${HANDOFF_CHANNEL:-general}" >/dev/null
echo "shell-agent: watching as $HANDOFF_SESSION" >&2
exec $HANDOFF watch --session "$HANDOFF_SESSION" --consumer shell-agent --exec "$HERE/on-entry.sh" \
    ${LIMIT:+--limit "$LIMIT"}
