"""`handoff report`: a branch's handoff activity as Markdown and as a self-contained HTML page."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from handoff.views import html as html_view


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


CHART_IDS = ["chart-volume", "chart-accepted", "chart-success", "chart-rejected-failed", "chart-accept-time"]


def _svg_charts(page: str) -> list[str]:
    return re.findall(r'<svg class="bar-chart" id="([^"]+)"', page)


def _bar_fills(page: str, chart_id: str) -> list[str]:
    svg = page.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    return re.findall(r'<rect class="bar"[^>]* fill="([^"]+)"', svg)


def test_html_page_is_self_contained_with_charts(activity, tmp_path):
    repo = activity["repo"]
    out = tmp_path / "report.html"
    data = repo.j("report", "--base", "main", "--html", str(out))
    page = out.read_text()
    assert data["html"] == str(out)
    assert _svg_charts(page) == CHART_IDS
    assert page.count('<rect class="bar"') == len(CHART_IDS) * len(data["metrics"])
    assert not re.search(r'(src|href)\s*=|@import|url\(', page)  # no external assets of any kind
    assert "<script>" not in page
    pairs = {(m["from"], m["to"]): m for m in data["metrics"]}
    assert pairs[("carol", "bob")]["rejected"] == 1 and pairs[("carol", "alice")]["success_rate"] == 1.0
    # responsive: a viewport, charts that scale to their column, tables that scroll inside their own box
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in page
    assert not re.search(r'<svg[^>]* width="\d', page) and 'viewBox="0 0 400 ' in page
    assert page.count('<div class="scroll"><table>') == page.count("<table>")


def _text(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace folded."""
    import html
    body = page.split("<body>", 1)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _markdown_headings(md: str) -> list[str]:
    return [line.lstrip("#").strip().replace("`", "") for line in md.splitlines() if line.startswith("#")]


def test_html_has_every_section_of_the_markdown(activity, tmp_path):
    repo = activity["repo"]
    # a race merged into the branch: one terminal wins, the other is refused (the "Refused" section)
    sessions = {s["agent"]: s["session_id"] for s in repo.j("session", "list")["sessions"]}
    sc, sa = sessions["carol"], sessions["alice"]
    race = repo.j("request", "--session", sc, "--to", "alice", "--channel", "ops", "-d", "Race")["handoff_id"]
    repo.ok("accept", race, "--session", sa)
    repo.git("checkout", "-q", "-b", "side")
    repo.ok("complete", race, "--session", sa)
    repo.git("checkout", "-q", "feature")
    repo.ok("cancel", race, "--session", sc)
    repo.git("merge", "-q", "--no-edit", "side")

    md = repo.ok("report", "--markdown", "--base", "main").out
    headings = _markdown_headings(md)
    assert headings[0] == "Handoff activity on feature"
    assert {h.split(" (")[0] for h in headings[1:]} == {
        "Opened", "Answered", "Closed", "Work units touched", "Threads touched", "Sessions opened",
        "Refused by the protocol"}  # every section the Markdown can have is exercised here
    out = tmp_path / "report.html"
    repo.ok("report", "--base", "main", "--html", str(out))
    text = _text(out.read_text())
    for heading in headings:
        assert heading in text, heading
    assert "carol" in text.split("Sessions opened", 1)[1] and "work_closed" in text


def test_html_of_a_quiet_branch_says_so_like_the_markdown(repo, tmp_path):
    repo.git("checkout", "-q", "-b", "quiet")
    md = repo.ok("report", "--markdown").out
    out = tmp_path / "quiet.html"
    repo.ok("report", "--html", str(out))
    text = _text(out.read_text())
    for heading in _markdown_headings(md):
        assert heading in text
    assert "No handoff activity on this branch." in text


def test_rate_color_reads_high_as_good():
    assert html_view.rate_color(100) == html_view.rate_color(80) == html_view.GREEN
    assert html_view.rate_color(79.9) == html_view.rate_color(50) == html_view.AMBER
    assert html_view.rate_color(49.9) == html_view.rate_color(0) == html_view.RED
    assert html_view.rate_color(None) == html_view.GREY


def test_full_success_is_a_green_bar_and_rejections_are_red(activity, tmp_path):
    repo = activity["repo"]
    out = tmp_path / "report.html"
    data = repo.j("report", "--base", "main", "--html", str(out))
    page = out.read_text()
    pairs = [(m["from"], m["to"]) for m in data["metrics"]]
    alice = pairs.index(("carol", "alice"))  # accepted 1 of 1, completed 1 of 1
    bob = pairs.index(("carol", "bob"))  # rejected 1 of 1
    assert _bar_fills(page, "chart-success")[alice] == html_view.GREEN
    assert _bar_fills(page, "chart-accepted")[alice] == html_view.GREEN
    assert _bar_fills(page, "chart-accepted")[bob] == html_view.RED
    assert set(_bar_fills(page, "chart-rejected-failed")) == {html_view.RED}
    # and without colour: each bar says its number
    assert "100% (1 of 1)" in page and "0% (0 of 1)" in page and "1 (1 rejected)" in page
    assert '<td class="bad">1</td>' in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser() -> str:
    """Chromium, or a skip on a developer machine without one; in CI (env CI set) a missing one fails."""
    path = _chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set and no Chromium is installed (.ci/run installs Debian's chromium package)")
        pytest.skip("no Chromium/Chrome installed (with CI set this is a failure)")
    return path


BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars"]


def _png_pixels(data: bytes) -> list[list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) with the standard library: rows of (r, g, b)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", chunk[:13])
            assert depth == 8 and color in (2, 6) and interlace == 0
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
        rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)])
        prev = line
    return rows


def _near(pixel: tuple[int, int, int], hex_color: str, tol: int = 14) -> bool:
    want = bytes.fromhex(hex_color.lstrip("#"))
    return all(abs(p - w) <= tol for p, w in zip(pixel, want))


def _screenshot(browser: str, page, tmp_path, width: int, height: int) -> list[list[tuple[int, int, int]]]:
    shot = tmp_path / f"shot-{width}.png"
    proc = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / f'profile-{width}'}",
                           f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    rows = _png_pixels(shot.read_bytes())
    assert (len(rows[0]), len(rows)) == (width, height)
    return rows


def test_html_draws_in_headless_chromium_narrow_and_wide(browser, activity, tmp_path):
    repo = activity["repo"]
    page = tmp_path / "report.html"
    repo.ok("report", "--base", "main", "--html", str(page))
    dom = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _svg_charts(dom.stdout) == CHART_IDS
    for width, height in ((390, 1800), (1200, 1400)):
        rows = _screenshot(browser, page, tmp_path, width, height)
        pixels = [p for row in rows for p in row]
        # not blank: text, rules and bars in many shades
        assert len(set(pixels)) > 200, width
        assert sum(1 for p in pixels if min(p) < 235) > len(pixels) // 50, width
        # the bars are painted: green for 100 % rates, red for the rejection, blue for volume
        for color in (html_view.GREEN, html_view.RED, html_view.BLUE):
            assert sum(1 for p in pixels if _near(p, color)) > 300, (width, color)
        # nothing runs off the right edge: the page's right margin stays background all the way down
        # (a fixed-width chart or an unboxed wide table would paint there, or beyond the window)
        margin = [p for row in rows for p in row[width - 10:]]
        assert all(min(p) >= 245 for p in margin), width
