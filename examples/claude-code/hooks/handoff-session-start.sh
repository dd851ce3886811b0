#!/usr/bin/env bash
# SessionStart hook (Claude Code; Codex hooks take the same one): find or open this clone's handoff
# session, then hand `handoff brief` to the model as hookSpecificOutput.additionalContext.
#
# The session id is per clone (see handoff-session.sh): two clones never share one by default, a
# restart resumes the same one, and a closed one is replaced by a new session.  The id is also
# exported to the agent's shell commands (HANDOFF_SESSION) through $CLAUDE_ENV_FILE (Claude Code) or
# $CODEX_ENV_FILE (recent Codex), where the harness gives one.  Everything the brief shows is
# marked as seen for the after-turn hook, which then only announces what is new.
set -u
HANDOFF=${HANDOFF:-handoff}
CONSUMER=${HANDOFF_CONSUMER:-claude-code}
AGENT=${HANDOFF_AGENT:-claude}
CHANNELS=${HANDOFF_CHANNEL:-general}             # one channel, or several separated by commas
here=$(dirname "${BASH_SOURCE[0]}")
input=$(cat)                                     # {"session_id", "cwd", "source", ...}
cwd=$(printf '%s' "$input" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cwd") or "")' 2>/dev/null)
cd "${CLAUDE_PROJECT_DIR:-${cwd:-.}}" 2>/dev/null || exit 0
[ -f .handoffs/config.yaml ] || exit 0           # not a handoff repository: stay out of the way
. "$here/handoff-session.sh"
if handoff_session; then
    brief=$($HANDOFF brief --session "$S" 2>/dev/null) || brief="(\`handoff brief --session $S\` failed)"
    was=""
    [ -n "$OLD" ] && was=" (it replaces session $OLD, which is closed)"
    text="$brief
Your handoff session id is $S$was: act with the handoff CLI, passing --session $S."
    envfile=${CLAUDE_ENV_FILE:-${CODEX_ENV_FILE:-}}   # sourced into the agent's shell commands
    if [ -n "$envfile" ]; then
        printf 'export HANDOFF_SESSION=%s HANDOFF_SESSION_BY_HOOK=%s\n' "$S" "$S" >>"$envfile"
    fi
    # the brief showed everything waiting: advance this consumer's cursor past it, silently
    $HANDOFF watch --session "$S" --once --consumer "$CONSUMER" --remind-every 0 >/dev/null 2>&1 || true
else
    text="handoff: no session for this agent: $WHY."
fi
TEXT="$text" python3 -c '
import json, os
print(json.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": os.environ["TEXT"]}}))'
exit 0
