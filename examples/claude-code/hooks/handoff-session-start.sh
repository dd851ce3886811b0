#!/usr/bin/env bash
# Claude Code SessionStart hook: make sure this agent's handoff session exists, then print
# `handoff brief` (a SessionStart hook's stdout becomes context for the new Claude session).
#
# Uses a fixed session id (HANDOFF_SESSION, set in .claude/settings.json "env"), so a Claude
# session that starts after a crash, /clear or a restart picks up the same inbox, the same open
# work and its last checkpoint.  Everything the brief shows is marked as seen for the after-turn
# hook, which then only announces what is new.
set -u
HANDOFF=${HANDOFF:-handoff}
CONSUMER=${HANDOFF_CONSUMER:-claude-code}
cat >/dev/null                                   # the hook's input JSON: not needed here
cd "${CLAUDE_PROJECT_DIR:-.}" 2>/dev/null || exit 0
[ -f .handoffs/config.yaml ] || exit 0           # not a handoff repository: stay out of the way
S=${HANDOFF_SESSION:-}
if [ -z "$S" ]; then
    echo "handoff: set HANDOFF_SESSION in .claude/settings.json \"env\" to receive handoffs here."
    exit 0
fi
if ! $HANDOFF session status "$S" >/dev/null 2>&1; then
    $HANDOFF session new --id "$S" --agent "${HANDOFF_AGENT:-claude}" \
        --channel "${HANDOFF_CHANNEL:-general}" >/dev/null || { echo "handoff: could not open session $S"; exit 0; }
fi
$HANDOFF brief --session "$S" || exit 0
echo "Act with the handoff CLI (commands above); your session id is $S."
# the brief showed everything waiting: advance this consumer's cursor past it, silently
$HANDOFF watch --session "$S" --once --consumer "$CONSUMER" --remind-every 0 >/dev/null 2>&1 || true
exit 0
