"""Generated sections of the README: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.

Generators (``benchmarks/report.py`` for ``bench``, :mod:`mnist_diffusion.reporting.report_tables` for ``results``) own
their section and nothing else in the file; a README without the markers is an error, not a silent no-op.
"""

from __future__ import annotations

import re


def markers(name: str) -> tuple[str, str]:
    """The start and end comment lines of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def wrap(name: str, body: str) -> str:
    """``body`` between the markers of section ``name`` (what :func:`replace_section` expects)."""
    start, end = markers(name)
    return f"{start}\n{body}\n{end}"


def replace_section(text: str, name: str, section: str) -> str:
    """``text`` with section ``name`` replaced by ``section`` (which includes the markers, see :func:`wrap`)."""
    start, end = markers(name)
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the README has no {start} ... {end} markers")
    return pattern.sub(lambda _: section, text, count=1)


def section(text: str, name: str) -> str | None:
    """The current section ``name`` of ``text`` (markers included), or None if it has none."""
    start, end = markers(name)
    match = re.search(re.escape(start) + ".*?" + re.escape(end), text, re.DOTALL)
    return match.group(0) if match else None
