"""Per-event SSH signatures (``ssh-keygen -Y sign/verify``), optional.

The signed bytes are the canonical JSON of the parsed event without its
``sig`` field (sorted keys, no spaces, UTF-8), so a signature survives any
YAML re-formatting and any history rewrite (rebase, squash).  The namespace
is ``handoff/v1``.  Public keys live in ``.handoffs/allowed_signers``
(OpenSSH format, one ``<principal> <key-type> <key>`` a line, the principal
being the agent name); changes to that file deserve a CODEOWNERS review.

The writer signs when ``HANDOFF_SIGNING_KEY`` (or ``identity.signing_key``
in the config) names a private key file; ``handoff verify`` checks.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from handoff.errors import HandoffError

NAMESPACE = "handoff/v1"


def canonical(ev: dict) -> bytes:
    """The bytes a signature covers: the event without ``sig`` as canonical JSON."""
    body = {k: v for k, v in ev.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_key(config: dict) -> str | None:
    key = os.environ.get("HANDOFF_SIGNING_KEY") or ((config.get("identity") or {}).get("signing_key")
                                                   if isinstance(config.get("identity"), dict) else None)
    return os.path.expanduser(str(key)) if key else None


def _ssh_keygen() -> str:
    import shutil
    exe = shutil.which("ssh-keygen")
    if not exe:
        raise HandoffError("signing_unavailable", "ssh-keygen is not installed",
                           hint="install OpenSSH (8.1 or later) or unset HANDOFF_SIGNING_KEY")
    return exe


def sign(data: bytes, key: str) -> str:
    """An armored SSH signature of ``data`` made with the private key file ``key``."""
    proc = subprocess.run([_ssh_keygen(), "-Y", "sign", "-q", "-n", NAMESPACE, "-f", key], input=data,
                          capture_output=True)
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise HandoffError("signing_failed", f"could not sign with {key}: {msg}",
                           hint="check HANDOFF_SIGNING_KEY (a private key file, no passphrase prompt possible)")
    return proc.stdout.decode().strip() + "\n"


def verify(data: bytes, sig: str, allowed_signers: bytes, principal: str) -> str | None:
    """None when ``sig`` is a valid signature of ``data`` by ``principal``; else why not."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="handoff-sig-") as tmp:
        signers, sig_file = Path(tmp) / "allowed_signers", Path(tmp) / "event.sig"
        signers.write_bytes(allowed_signers)
        sig_file.write_text(sig)
        proc = subprocess.run([_ssh_keygen(), "-Y", "verify", "-f", str(signers), "-I", principal,
                               "-n", NAMESPACE, "-s", str(sig_file)], input=data, capture_output=True)
    if proc.returncode == 0:
        return None
    text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
    return text[-1] if text else f"ssh-keygen exit {proc.returncode}"
