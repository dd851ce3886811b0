"""One error type for every refusal, carrying a machine-readable reason code.

Exit codes follow the product contract: 1 failure, 2 usage, 3 refused by a
protocol rule, 4 not found, 5 verification failed.  A few commands (``wait``)
have their own documented codes on success paths; those are not errors.
"""
from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_VERIFY = 5

# reason_code -> exit code.  Anything not listed is a plain failure (1).
_EXIT_BY_REASON = {
    # usage: the arguments themselves are wrong
    "usage": EXIT_USAGE,
    "invalid_argument": EXIT_USAGE,
    "invalid_id": EXIT_USAGE,
    "invalid_body": EXIT_USAGE,
    "body_too_large": EXIT_USAGE,
    "argument_too_large": EXIT_USAGE,
    "not_a_directory": EXIT_USAGE,
    "invalid_surface": EXIT_USAGE,
    "unsupported_kind": EXIT_USAGE,
    "malformed": EXIT_USAGE,
    "no_session": EXIT_USAGE,
    # refused by a protocol rule
    "work_closed": EXIT_REFUSED,
    "work_container_mismatch": EXIT_REFUSED,
    "not_target": EXIT_REFUSED,
    "not_participant": EXIT_REFUSED,
    "invalid_transition": EXIT_REFUSED,
    "work_exists": EXIT_REFUSED,
    "duplicate": EXIT_REFUSED,
    "id_conflict": EXIT_REFUSED,
    "expired": EXIT_REFUSED,
    "session_closed": EXIT_REFUSED,
    "self_direct": EXIT_REFUSED,
    "lease_held": EXIT_REFUSED,
    "no_lease": EXIT_REFUSED,
    "already_responded": EXIT_REFUSED,
    "legacy_field_rejected": EXIT_REFUSED,
    "not_session_owner": EXIT_REFUSED,
    "awaiting_approval": EXIT_REFUSED,  # a person's gate (core/approvals.py)
    "not_approver": EXIT_REFUSED,
    "no_open_gate": EXIT_REFUSED,
    "no_approvers": EXIT_REFUSED,
    # not found
    "not_found": EXIT_NOT_FOUND,
    "conversation_not_found": EXIT_NOT_FOUND,
    "session_not_found": EXIT_NOT_FOUND,
    "work_not_found": EXIT_NOT_FOUND,
    "not_initialized": EXIT_NOT_FOUND,
    "not_a_repo": EXIT_NOT_FOUND,
    # verification
    "verification_failed": EXIT_VERIFY,
}


class HandoffError(Exception):
    """A refusal or failure with a reason code, a message and a hint for the user."""

    def __init__(self, reason_code: str, message: str, hint: str = "", *, exit_code: int | None = None,
                 details: dict[str, object] | None = None):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.hint = hint
        self.exit_code = exit_code if exit_code is not None else _EXIT_BY_REASON.get(reason_code, EXIT_FAILURE)
        self.details = details or {}

    def to_json(self) -> dict[str, object]:
        err: dict[str, object] = {"reason_code": self.reason_code, "message": self.message, "hint": self.hint}
        if self.details:
            err["details"] = self.details
        return {"error": err}
