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
if ! $HANDOFF session status "$HANDOFF_SESSION" >/dev/null 2>&1; then
    $HANDOFF session new --id "$HANDOFF_SESSION" --agent "${HANDOFF_AGENT:-shell-agent}" \
        --channel "${HANDOFF_CHANNEL:-general}" >/dev/null
fi
echo "shell-agent: watching as $HANDOFF_SESSION" >&2
exec $HANDOFF watch --session "$HANDOFF_SESSION" --consumer shell-agent --exec "$HERE/on-entry.sh" \
    ${LIMIT:+--limit "$LIMIT"}
