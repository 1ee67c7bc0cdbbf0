"""CSV cells a spreadsheet will not run as formulas (OWASP, "CSV Injection").

Exports carry text from callers (unanswered questions) and from the knowledge base; a cell
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel
or WPS (``=HYPERLINK("http://…","点此")`` becomes a link on a manager's screen). Such a
cell gets a leading single quote, which spreadsheets show as text. Importing a CSV back
takes the quote off again, so an export edited and imported round-trips unchanged (the
cost: a cell that really began with a quote and then one of these characters loses its
quote on import).
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> object:
    """The value as written to an export; numbers are left alone (they are ours)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_cell(cell: str) -> str:
    """The text of a cell :func:`escape_cell` wrote."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell
