"""Silver and gold: every table declared once (`declarations`), run full or incrementally (`runner`).

The transforms are pure (`silver`, `gold`); `quality` holds the rules checked before a table is written.
"""
