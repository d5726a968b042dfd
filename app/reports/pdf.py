"""The PDF of a compliance report, with ReportLab (BSD, maintained since 2000): its platypus layout splits
long tables across pages and repeats their header row, which is most of what a report needs.

The PDF is for reading: the summary, every configuration / key / user change, logins and who did what,
and the first `limit` calculations (the CSV has every row). It uses the standard PDF fonts, which cover
Latin-1 (WinAnsi); a character outside it (a broker name in another script) is drawn as "?" here and kept
exactly in the CSV.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus.flowables import Flowable

from app.reports.content import Collected

STYLES = getSampleStyleSheet()
CELL = STYLES["BodyText"].clone("cell", fontSize=7, leading=8.5)
TABLE = TableStyle([
    ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 7),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa5b1")),
])


def _latin1(value: Any) -> str:
    """What the standard fonts can draw: Latin-1, anything else as "?"."""
    return str(value).encode("latin-1", "replace").decode("latin-1")


def _text(value: Any) -> str:
    """For a Paragraph: Latin-1 and markup-escaped (Paragraph reads a little HTML)."""
    return escape(_latin1(value))


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _table(header: list[str], rows: list[list[Any]], widths: list[float]) -> LongTable:
    data = [header] + [[Paragraph(_text(c), CELL) for c in row] for row in rows]
    table = LongTable(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TABLE)
    return table


def _section(story: list[Flowable], title: str, note: str | None = None) -> None:
    story.append(Spacer(1, 5 * mm))
    story.append(Paragraph(_text(title), STYLES["Heading2"]))
    if note:
        story.append(Paragraph(_text(note), STYLES["BodyText"]))


def _capped(total: int, shown: int, what: str) -> str | None:
    return f"The first {shown} of {total} {what} are listed here; the CSV has all of them." if total > shown else None


def render(path: Path, *, broker: str, report_id: str, period: tuple[date, date], generated: datetime,
           seen: Collected) -> None:
    story: list[Flowable] = [
        Paragraph(_text(f"Compliance report: {broker}"), STYLES["Title"]),
        Paragraph(_text(f"Period {period[0].isoformat()} to {period[1].isoformat()} (UTC days, both included). "
                        f"Generated {_when(generated)} UTC. Report {report_id}."), STYLES["BodyText"]),
    ]
    s = seen.summary()
    _section(story, "Summary")
    rows = [["Calculations", s["calculations"]["total"]], ["Calculations with flags", s["calculations"]["flagged"]],
            ["Audit entries", s["auditEntries"]], ["Actors", s["actors"]]]
    rows += [[f"Calculations: {k}", v] for k, v in s["calculations"]["byKind"].items()]
    rows += [[f"Flag: {k}", v] for k, v in s["calculations"]["byFlag"].items()]
    rows += [[f"Logins: {k}", v] for k, v in s["logins"].items()]
    rows += [[f"Changes: {k}", v] for k, v in s["changes"].items()]
    story.append(_table(["What", "Count"], rows, [120, 30]))

    changes = sum(seen.changes.values())
    _section(story, "Configuration, key and user changes", _capped(changes, len(seen.change_rows), "changes"))
    story.append(_table(["When (UTC)", "Action", "Actor", "Target", "Details"],
                        [[_when(r[0]), *r[1:]] for r in seen.change_rows], [30, 32, 55, 55, 95]))

    logins = sum(seen.logins.values())
    _section(story, "Logins", _capped(logins, len(seen.login_rows), "login events"))
    story.append(_table(["When (UTC)", "Event", "Actor", "IP", "Request id"],
                        [[_when(r[0]), *r[1:]] for r in seen.login_rows], [30, 40, 80, 40, 60]))

    _section(story, "Who did what")
    story.append(_table(["Actor type", "Actor", "Action", "Times"],
                        [[t, i, a, n] for (t, i, a), n in sorted(seen.by_actor.items())], [25, 80, 60, 20]))

    _section(story, "Calculations", _capped(seen.calculations, len(seen.calc_rows), "calculations"))
    story.append(_table(["When (UTC)", "Calculation id", "Kind", "By", "Flags"],
                        [[_when(r[0]), *r[1:]] for r in seen.calc_rows], [30, 62, 28, 70, 77]))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.setFont("Helvetica", 7)
        canvas.drawRightString(doc.pagesize[0] - 12 * mm, 8 * mm, f"{_latin1(broker)} - page {doc.page}")

    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=14 * mm, title=f"Compliance report {report_id}",
                            author="ForexRisk")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
