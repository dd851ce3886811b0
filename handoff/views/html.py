"""The branch report as one self-contained HTML page: tables plus inline SVG charts.

Pure.  No script, no external stylesheet, font or image: the page opens
from a file, offline, and every piece of untrusted text is escaped.  It has
every section of the Markdown report (``report.markdown``) plus the charts.

Narrow screens: the charts are SVG drawn in a ``viewBox`` and sized by CSS
(``width:100%``), so they shrink with the page instead of being cut off;
tables scroll sideways inside their own box.  Colours: a rate bar is green
when high, amber in between, red when low (``rate_color``); counts of
rejected or failed units are red; every bar also carries its number, so the
page reads the same without colour.
"""
from __future__ import annotations

from collections.abc import Callable
from html import escape

from handoff.views.report import states_walked

GREEN, AMBER, RED, BLUE, GREY, TRACK = "#1a7f37", "#9a6700", "#cf222e", "#0969da", "#6e7781", "#eaeef2"
GOOD_RATE, FAIR_RATE = 80.0, 50.0  # (percent) at or above GOOD_RATE: green; at or above FAIR_RATE: amber

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem auto;max-width:60rem;color:#1f2328;padding:0 1rem;background:#fff}
h1{font-size:1.5rem;overflow-wrap:anywhere}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;min-width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.pair{white-space:nowrap}code{font:12px ui-monospace,monospace}.muted{color:#59636e}
td.bad{color:#cf222e;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr));gap:1.5rem}
.chart{min-width:0}
svg.bar-chart{display:block;width:100%;height:auto;max-width:40rem}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
"""
VIEW_WIDTH = 400  # (SVG user units; the chart is scaled to the width of its column)


def e(text, width: int = 120) -> str:
    s = " ".join(("" if text is None else str(text)).split())
    if len(s) > width:
        s = s[: width - 1] + "…"
    return escape("".join(ch if ch.isprintable() else " " for ch in s))


def rate_color(pct: float | None) -> str:
    """The fill of a bar for a rate in percent where high is good: green, amber, red; grey when unknown."""
    if pct is None:
        return GREY
    if pct >= GOOD_RATE:
        return GREEN
    if pct >= FAIR_RATE:
        return AMBER
    return RED


def bar_chart(title: str, labels: list[str], values: list[float | None], *, unit: str = "",
              color: str | Callable[[float | None], str] = BLUE, max_value: float | None = None,
              chart_id: str = "", notes: list[str] | None = None) -> str:
    """A horizontal bar chart as an inline <svg>: per row a label and its value above a bar.

    ``color`` is one fill or a function of the value; with ``max_value`` (a scale such as 100 %) a light
    track behind each bar shows the whole scale.  ``notes`` adds text after each value ("2 of 3")."""
    row_h, bar_h, width = 40, 14, VIEW_WIDTH
    height = 26 + len(labels) * row_h
    top = max([v for v in values if v is not None] + [max_value or 0, 1e-9])
    parts = [f'<svg class="bar-chart" id="{e(chart_id)}" role="img" aria-label="{e(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">',
             f'<title>{e(title)}</title><text x="0" y="14" font-weight="600">{e(title, 60)}</text>']
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 26 + i * row_h
        w = 0.0 if not v else max(1.0, width * v / top)
        shown = "n/a" if v is None else f"{v:g}{unit}"
        if notes and notes[i]:
            shown += f" ({notes[i]})"
        fill = color(v) if callable(color) else color
        track = (f'<rect class="track" x="0" y="{y + 17}" width="{width}" height="{bar_h}" fill="{TRACK}" rx="3"/>'
                 if max_value is not None else "")
        parts.append(f'<text x="0" y="{y + 12}">{e(label, 34)}</text>'
                     f'<text x="{width}" y="{y + 12}" text-anchor="end">{e(shown, 30)}</text>{track}'
                     f'<rect class="bar" x="0" y="{y + 17}" width="{w:.1f}" height="{bar_h}" fill="{fill}" rx="3">'
                     f'<title>{e(label)}: {e(shown)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _count_cell(n: int) -> str:
    """A count of rejected or failed units: red when there are any."""
    return f'<td class="bad">{n}</td>' if n else "<td>0</td>"


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(100 * rate, 1)


def _work_rows(rows: list[dict]) -> list[list[str]]:
    return [[f"<code>{e(r['work_id'])}</code>", f"{e(r['from_agent'])} → {e(r['to_agent'])}", f"#{e(r['channel'])}",
             e(r["state"]), e(r["description"])] for r in rows]


def charts(metrics: list[dict]) -> str:
    if not metrics:
        return '<p class="muted">No work units on this branch: nothing to chart.</p>'
    labels = [f"{m['from']} → {m['to']}" for m in metrics]
    answered = [f"{m['accepted']} of {m['accepted'] + m['rejected']}" if m["success_rate"] is not None else ""
                for m in metrics]
    specs: list[tuple[str, list, dict]] = [
        ("Volume (work units)", [m["volume"] for m in metrics], {"chart_id": "chart-volume"}),
        ("Success rate: accepted of answered (%)", [_pct(m["success_rate"]) for m in metrics],
         {"unit": "%", "max_value": 100, "color": rate_color, "notes": answered, "chart_id": "chart-accepted"}),
        ("Completion rate: completed of accepted and ended (%)", [_pct(m["completion_rate"]) for m in metrics],
         {"unit": "%", "max_value": 100, "color": rate_color, "chart_id": "chart-success"}),
        # (a rejected handoff ends its work failed: the failed units include the rejected ones)
        ("Failed, rejections included (work units)", [max(m["failed"], m["rejected"]) for m in metrics],
         {"color": RED, "notes": [f"{m['rejected']} rejected" if m["rejected"] else "" for m in metrics],
          "chart_id": "chart-rejected-failed"}),
        ("Mean time to accept (s)", [m["mean_acceptance_s"] for m in metrics],
         {"unit": " s", "chart_id": "chart-accept-time"}),
    ]
    return '<div class="charts">' + "".join(
        f'<div class="chart">{bar_chart(title, labels, values, **kw)}</div>' for title, values, kw in specs) + "</div>"


def _metrics_table(metrics: list[dict]) -> str:
    def rate(r):
        return "n/a" if r is None else f"{_pct(r):g}%"
    return _table(["from → to", "volume", "accepted", "rejected", "success rate", "completed", "failed",
                   "completion rate", "mean time to accept"],
                  [[f'<td class="pair">{e(m["from"])} → {e(m["to"])}</td>', str(m["volume"]), str(m["accepted"]),
                    _count_cell(m["rejected"]), rate(m["success_rate"]), str(m["completed"]), _count_cell(m["failed"]),
                    rate(m["completion_rate"]),
                    "n/a" if m["mean_acceptance_s"] is None else f"{m['mean_acceptance_s']:g} s"] for m in metrics])


def sections(rep: dict) -> list[str]:
    """Everything below the summary line: the sections of the Markdown report, and the charts first."""
    parts = ["<h2>Per-pair metrics</h2>", charts(rep["metrics"]), _metrics_table(rep["metrics"])]
    for heading, key in (("Opened", "opened"), ("Answered", "answered"), ("Closed", "closed")):
        parts += [f"<h2>{heading} ({len(rep[key])})</h2>",
                  _table(["work", "from → to", "channel", "state", "description"], _work_rows(rep[key]))]
    parts += [f"<h2>Work units touched ({len(rep['work'])})</h2>",
              _table(["work", "state", "events on this branch"],
                     [[f"<code>{e(r['work_id'])}</code>", e(states_walked(r)), str(r["events"])] for r in rep["work"]]),
              f"<h2>Threads touched ({len(rep['threads'])})</h2>",
              _table(["channel", "container", "new messages", "senders"],
                     [[f"#{e(t['channel'])}", f"{e(t['surface'])} <code>{e(t['id'])}</code>", str(t["new_messages"]),
                       e(", ".join(t["senders"]))] for t in rep["threads"]]),
              f"<h2>Sessions opened ({len(rep['sessions'])})</h2>",
              _table(["agent", "session", "channels"],
                     [[e(s["agent"]), f"<code>{e(s['peer_id'])}</code>", e(", ".join("#" + c for c in s["channels"]))]
                      for s in rep["sessions"]]),
              f"<h2>Refused by the protocol ({len(rep['refused'])})</h2>",
              _table(["reason", "message"],
                     [[f"<code>{e(d['reason_code'])}</code>", e(d["message"])] for d in rep["refused"]])]
    return parts


def page(rep: dict) -> str:
    title = f"Handoff activity on {rep.get('branch') or rep.get('head', '')[:12]}"
    parts = [f"<h1>{e(title)}</h1>",
             f'<p class="muted">{rep["events"]} new handoff event(s) since {e(rep.get("against") or "the start of history")} '
             f'(base <code>{e(rep.get("base", "")[:12])}</code>): {len(rep["opened"])} opened, '
             f'{len(rep["answered"])} answered, {len(rep["closed"])} closed.</p>']
    parts += sections(rep) if rep["events"] else ["<p><em>No handoff activity on this branch.</em></p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>" + "".join(parts) + "</body></html>\n")
