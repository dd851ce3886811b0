# Sourced by the handoff hooks (not a hook itself): chooses the handoff session this clone acts as.
#
#   handoff_session   sets S (the session id; empty if none could be had), OLD (the id used before,
#                     when it had to be replaced) and WHY (a one-line reason when S is not usable).
#
# The id is kept per clone (per worktree) in .git/handoff/<consumer>-session, never committed, so
# each clone is its own session by default and a restarted harness (crash, /clear, resume) picks up
# the same inbox, open work and checkpoint.  A session that was closed, or belongs to another agent,
# is replaced by a new one: closing is final, and `session new --id` refuses to reopen it.
# HANDOFF_SESSION pins an explicit id instead; a pinned id that is closed is reported, not replaced.
handoff_session() {
    S="" OLD="" WHY=""
    local gitdir file saved pinned="" info state agent
    gitdir=$(git rev-parse --absolute-git-dir 2>/dev/null) || { WHY="not a git repository"; return 1; }
    file="$gitdir/handoff/${CONSUMER}-session"
    saved=$(cat "$file" 2>/dev/null || true)
    # (an id these hooks saved, or exported to the harness's shell, is not a pin)
    if [ -n "${HANDOFF_SESSION:-}" ] && [ "$HANDOFF_SESSION" != "$saved" ] \
        && [ "$HANDOFF_SESSION" != "${HANDOFF_SESSION_BY_HOOK:-}" ]; then pinned=$HANDOFF_SESSION; fi
    local want=${pinned:-$saved}
    if [ -n "$want" ]; then
        info=$($HANDOFF session status "$want" -o json 2>/dev/null)
        case $? in
            0) read -r state agent < <(printf '%s' "$info" | python3 -c \
                   'import json,sys; d=json.load(sys.stdin); print(d.get("state"), d.get("agent"))')
               if [ "$state" != "closed" ] && { [ -n "$pinned" ] || [ "$agent" = "$AGENT" ]; }; then
                   S=$want; return 0
               fi
               if [ -n "$pinned" ]; then
                   WHY="session $want (HANDOFF_SESSION) is closed; unset HANDOFF_SESSION to get a new one"
                   return 1
               fi
               OLD=$want ;;                      # closed, or another agent's: replaced below
            4) ;;                                # not in this checkout (another branch, a fresh clone): open it
            *) WHY="\`handoff session status $want\` failed"; return 1 ;;
        esac
    fi
    local args=(session new --agent "$AGENT" -o json)
    local c
    for c in ${CHANNELS//,/ }; do args+=(--channel "$c"); done
    if [ -n "$want" ] && [ -z "$OLD" ]; then args+=(--id "$want"); fi
    info=$($HANDOFF "${args[@]}" 2>/dev/null) || { WHY="could not open a handoff session"; return 1; }
    S=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])') || return 1
    if [ -z "$pinned" ]; then mkdir -p "$(dirname "$file")" && printf '%s\n' "$S" >"$file"; fi
    return 0
}
