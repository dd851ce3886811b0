"""The branch report as one self-contained HTML page: tables plus inline SVG charts.

Pure.  No script, no external stylesheet, font or image: the page opens
from a file, offline, and every piece of untrusted text is escaped.
"""
from __future__ import annotations

from html import escape

from handoff.views.report import states_walked

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font:12px ui-monospace,monospace}.muted{color:#59636e}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.chart{flex:1 1 26rem}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
"""
COLORS = ("#0969da", "#1a7f37", "#cf222e", "#8250df", "#bf8700")


def e(text, width: int = 120) -> str:
    s = " ".join(("" if text is None else str(text)).split())
    if len(s) > width:
        s = s[: width - 1] + "…"
    return escape("".join(ch if ch.isprintable() else " " for ch in s))


def bar_chart(title: str, labels: list[str], values: list[float | None], *, unit: str = "", color: str = COLORS[0],
              max_value: float | None = None, chart_id: str = "") -> str:
    """A horizontal bar chart as an inline <svg> element."""
    bar_h, gap, left, width = 22, 8, 180, 560
    height = 30 + len(labels) * (bar_h + gap)
    top = max([v for v in values if v is not None] + [max_value or 0, 1e-9])
    parts = [f'<svg class="bar-chart" id="{e(chart_id)}" role="img" aria-label="{e(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<title>{e(title)}</title><text x="0" y="16" font-weight="600">{e(title)}</text>']
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 28 + i * (bar_h + gap)
        w = 0 if v is None else max(1.0, (width - left - 70) * v / top)
        shown = "n/a" if v is None else (f"{v:g}{unit}")
        parts.append(f'<text x="0" y="{y + 15}">{e(label, 26)}</text>'
                     f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" rx="3">'
                     f'<title>{e(label)}: {e(shown)}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 15}">{e(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _work_rows(rows: list[dict]) -> list[list[str]]:
    return [[f"<code>{e(r['work_id'])}</code>", f"{e(r['from_agent'])} → {e(r['to_agent'])}", f"#{e(r['channel'])}",
             e(r["state"]), e(r["description"])] for r in rows]


def charts(metrics: list[dict]) -> str:
    if not metrics:
        return '<p class="muted">No work units on this branch: nothing to chart.</p>'
    labels = [f"{m['from']} → {m['to']}" for m in metrics]
    pct = [None if m["success_rate"] is None else round(100 * m["success_rate"], 1) for m in metrics]
    ok = [None if m["completion_rate"] is None else round(100 * m["completion_rate"], 1) for m in metrics]
    specs = [("Volume (work units)", [m["volume"] for m in metrics], "", None, "chart-volume"),
             ("Success rate: accepted of answered (%)", pct, "%", 100, "chart-accepted"),
             ("Completion rate: completed of accepted and ended (%)", ok, "%", 100, "chart-success"),
             ("Mean time to accept (s)", [m["mean_acceptance_s"] for m in metrics], " s", None, "chart-accept-time")]
    return '<div class="charts">' + "".join(
        f'<div class="chart">{bar_chart(t, labels, v, unit=u, max_value=mx, color=COLORS[i % len(COLORS)], chart_id=cid)}</div>'
        for i, (t, v, u, mx, cid) in enumerate(specs)) + "</div>"


def page(rep: dict) -> str:
    title = f"Handoff activity on {rep.get('branch') or rep.get('head', '')[:12]}"
    parts = [f"<h1>{e(title)}</h1>",
             f'<p class="muted">{rep["events"]} new event(s) since {e(rep.get("against") or "the start of history")} '
             f'(base <code>{e(rep.get("base", "")[:12])}</code>): {len(rep["opened"])} opened, '
             f'{len(rep["answered"])} answered, {len(rep["closed"])} closed.</p>',
             "<h2>Per-pair metrics</h2>", charts(rep["metrics"]),
             _table(["from → to", "volume", "accepted", "rejected", "completed", "failed", "mean time to accept"],
                    [[f"{e(m['from'])} → {e(m['to'])}", str(m["volume"]), str(m["accepted"]), str(m["rejected"]),
                      str(m["completed"]), str(m["failed"]),
                      "n/a" if m["mean_acceptance_s"] is None else f"{m['mean_acceptance_s']:g} s"] for m in rep["metrics"]])]
    for heading, key in (("Opened", "opened"), ("Answered", "answered"), ("Closed", "closed")):
        parts += [f"<h2>{heading} ({len(rep[key])})</h2>",
                  _table(["work", "from → to", "channel", "state", "description"], _work_rows(rep[key]))]
    parts += [f"<h2>Work units touched ({len(rep['work'])})</h2>",
              _table(["work", "state", "events on this branch"],
                     [[f"<code>{e(r['work_id'])}</code>", e(states_walked(r)), str(r["events"])] for r in rep["work"]]),
              f"<h2>Threads touched ({len(rep['threads'])})</h2>",
              _table(["channel", "container", "new messages", "senders"],
                     [[f"#{e(t['channel'])}", f"{e(t['surface'])} <code>{e(t['id'])}</code>", str(t["new_messages"]),
                       e(", ".join(t["senders"]))] for t in rep["threads"]])]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>" + "".join(parts) + "</body></html>\n")
