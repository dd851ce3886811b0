#!/usr/bin/env bash
# Codex `notify` hook: after each agent turn, surface handoff inbox entries that are new since
# the last turn (once each), for the person watching and in a log the agent can read.
#
# ~/.codex/config.toml (user config only):   notify = ["/path/to/repo/examples/codex/notify.sh"]
# Codex passes one JSON argument: {"type": "agent-turn-complete", "thread-id", "turn-id", "cwd",
# "input-messages", "last-assistant-message", ...}.  Whatever this prints goes nowhere the model
# reads: a notify program cannot add to its context.  For that, use the hooks (examples/codex/
# hooks.json) or have the agent run `handoff brief` at the start of a task (AGENTS.md).
set -u
HANDOFF=${HANDOFF:-handoff}
CONSUMER=${HANDOFF_CONSUMER:-codex}
payload=${1:-}
case "$payload" in *agent-turn-complete*) ;; *) exit 0 ;; esac
cwd=$(printf '%s' "$payload" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cwd") or "")' 2>/dev/null)
cd "${HANDOFF_REPO:-${cwd:-.}}" 2>/dev/null || exit 0
[ -f .handoffs/config.yaml ] && [ -n "${HANDOFF_SESSION:-}" ] || exit 0
news=$($HANDOFF watch --session "$HANDOFF_SESSION" --once --consumer "$CONSUMER" 2>/dev/null) || exit 0
[ -n "$news" ] || exit 0
count=$(printf '%s\n' "$news" | grep -c .)
log="$(git rev-parse --git-common-dir)/handoff/codex-news.log"
mkdir -p "$(dirname "$log")"
{ date -u +"%Y-%m-%dT%H:%M:%SZ"; printf '%s\n' "$news"; } >>"$log"
if command -v notify-send >/dev/null 2>&1; then
    notify-send "handoff: $count new for $HANDOFF_SESSION" "$news" 2>/dev/null || true
fi
printf 'handoff: %s new inbox entr%s for %s (run `handoff brief`):\n%s\n' \
    "$count" "$([ "$count" = 1 ] && echo y || echo ies)" "$HANDOFF_SESSION" "$news" >&2
exit 0
