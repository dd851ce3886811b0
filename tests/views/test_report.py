"""`handoff report`: a branch's handoff activity as Markdown and as a self-contained HTML page."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib

import pytest


@pytest.fixture
def activity(repo):
    """main: one finished handoff and one pending; feature: answers the pending one, opens and closes another."""
    sa = repo.session("alice", "dev")["session_id"]
    sb = repo.session("bob", "dev")["session_id"]
    old = repo.j("request", "--session", sa, "--to", "bob", "--channel", "dev", "-d", "Old finished work")["handoff_id"]
    repo.ok("accept", old, "--session", sb)
    repo.ok("complete", old, "--session", sb)
    pending = repo.j("request", "--session", sa, "--to", "bob", "--channel", "dev",
                     "-d", "Pending | <script>alert(1)</script> @team")["handoff_id"]
    repo.git("checkout", "-q", "-b", "feature")
    repo.ok("accept", pending, "--session", sb)
    sc = repo.session("carol", "ops")["session_id"]
    mine = repo.j("request", "--session", sc, "--to", "bob", "--channel", "ops", "-d", "Rotate the keys")["handoff_id"]
    repo.ok("reject", mine, "--session", sb, "--reason", "not my area")
    other = repo.j("request", "--session", sc, "--to", "alice", "--channel", "ops", "-d", "Check the dashboards")["handoff_id"]
    repo.ok("accept", other, "--session", sa)
    repo.ok("complete", other, "--session", sa)
    return {"repo": repo, "old": old, "pending": pending, "mine": mine, "other": other}


def test_markdown_lists_exactly_the_branch_activity(activity):
    repo = activity["repo"]
    data = repo.j("report", "--base", "main")
    assert [w["work_id"] for w in data["opened"]] == [activity["mine"], activity["other"]]
    assert {w["work_id"] for w in data["answered"]} == {activity["pending"], activity["mine"], activity["other"]}
    assert [w["work_id"] for w in data["closed"]] == [activity["mine"], activity["other"]]
    assert {w["work_id"] for w in data["work"]} == {activity["pending"], activity["mine"], activity["other"]}
    pending = next(w for w in data["work"] if w["work_id"] == activity["pending"])
    assert (pending["state_before"], pending["state"]) == ("submitted", "working")
    assert [s["agent"] for s in data["sessions"]] == ["carol"]
    per_channel = {}
    for t in data["threads"]:
        per_channel[t["channel"]] = per_channel.get(t["channel"], 0) + t["new_messages"]
    assert per_channel == {"dev": 2, "ops": 6}  # accept = receipt + trace; reject = one receipt

    md = repo.ok("report", "--markdown", "--base", "main").out
    assert md.startswith("## Handoff activity on `feature`")
    assert activity["old"] not in md  # main's own activity is not this branch's
    for wid in (activity["pending"], activity["mine"], activity["other"]):
        assert wid in md
    assert "### Opened (2)" in md and "### Closed (2)" in md and "### Answered (3)" in md
    assert "submitted → working" in md
    # untrusted text cannot break the table, inject HTML or ping people
    assert "<script>" not in md and "\\|" in md and "@team" not in md


def test_markdown_on_branch_without_activity(repo):
    repo.git("checkout", "-q", "-b", "quiet")
    md = repo.ok("report", "--markdown").out
    assert "_No handoff activity on this branch._" in md
    assert repo.j("report")["events"] == 0


def _svg_charts(page: str) -> list[str]:
    return re.findall(r'<svg class="bar-chart" id="([^"]+)"', page)


def test_html_page_is_self_contained_with_charts(activity, tmp_path):
    repo = activity["repo"]
    out = tmp_path / "report.html"
    data = repo.j("report", "--base", "main", "--html", str(out))
    page = out.read_text()
    assert data["html"] == str(out)
    assert _svg_charts(page) == ["chart-volume", "chart-accepted", "chart-success", "chart-accept-time"]
    assert page.count('<rect class="bar"') == 4 * len(data["metrics"])
    assert not re.search(r'(src|href)\s*=|@import|url\(', page)  # no external assets of any kind
    assert "<script>" not in page
    pairs = {(m["from"], m["to"]): m for m in data["metrics"]}
    assert pairs[("carol", "bob")]["rejected"] == 1 and pairs[("carol", "alice")]["success_rate"] == 1.0


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _png_pixels(data: bytes):
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, prev, rows = zlib.decompress(idat), width * bpp, bytearray(width * bpp), []
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return [(r[i], r[i + 1], r[i + 2]) for r in rows for i in range(0, stride, bpp)]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium/Chrome installed")
def test_html_opens_in_headless_chromium_and_draws_the_charts(activity, tmp_path):
    repo = activity["repo"]
    page = tmp_path / "report.html"
    repo.ok("report", "--base", "main", "--html", str(page))
    browser = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _svg_charts(dom.stdout) == ["chart-volume", "chart-accepted", "chart-success", "chart-accept-time"]
    assert dom.stdout.count('class="bar"') >= 8
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, *flags, "--hide-scrollbars", "--window-size=1000,1400",
                           f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    pixels = _png_pixels(shot.read_bytes())
    # the first chart's bars are #0969da: they are drawn, not just present in the DOM
    blue = sum(1 for r, g, b in pixels if abs(r - 0x09) < 12 and abs(g - 0x69) < 12 and abs(b - 0xda) < 12)
    assert blue > 500
