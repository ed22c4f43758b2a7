#!/usr/bin/env python3
"""Fail the report build on layout faults that LaTeX only warns about.

Reads the LaTeX log (``report/main.log``) and the report's sources, and exits 1 listing each fault:

* an overfull box (``Overfull \\hbox`` or ``\\vbox``) more than ``--max-overfull`` points (1 pt) too wide or too high:
  the text runs into the margin or off the page;
* ``Float too large for page``: the float's bottom, its caption included, is cut off;
* floats LaTeX lost or could not place (``Float(s) lost``, ``Too many unprocessed floats``);
* a figure, table or algorithm environment without a ``\\caption`` of its own (a subfigure's caption does not count);
* a table scaled to fit (``\\resizebox``, ``\\scalebox`` or ``adjustbox`` inside a table): its text then prints at
  whatever size the scaling leaves; set it in a smaller font or split it instead;
* a figure whose text prints smaller than ``--min-font`` points (7 pt) at the size the report prints it. The sizes
  are the font sizes in the included PDF (``Tf``, as matplotlib writes them) times the scale the log reports
  (``Requested size`` over the file's own size). Sub- and superscripts (0.7 and 0.49 times a size used in the same
  figure, as matplotlib's mathtext sets them) are held to the base text's size instead, as LaTeX's own are.

Standard library only. Usage: ``check_latex_log.py [report/main.log] [--tex report/main.tex]``; the sources default
to ``main.tex`` beside the log. ``--allow-small-text NAME`` lists a figure (file name without ``.pdf``) whose small
text is known and waits for regeneration: it is reported as a note, not a fault.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

#: TeX wraps log lines at this many characters (TeX Live's max_print_line).
LOG_LINE_WIDTH = 79
#: mathtext's script scale: a superscript is 0.7 times its base, a second-level one 0.49 times.
SCRIPT_FACTORS = (0.7, 0.49)
FLOATS = ("figure", "figure*", "table", "table*", "sidewaysfigure", "sidewaystable", "algorithm", "wrapfigure",
          "wraptable")
SUBFLOATS = ("subfigure", "subtable")


@dataclass
class Report:
    faults: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def unwrap_log(text: str) -> str:
    """The log with TeX's hard wraps at 79 characters undone (a full-width line continues on the next)."""
    out: list[str] = []
    carry = ""
    for line in text.splitlines():
        if len(line) == LOG_LINE_WIDTH:
            carry += line
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return "\n".join(out)


_OVERFULL = re.compile(r"^Overfull \\(?P<box>[hv])box \((?P<pt>[\d.]+)pt too (?:wide|high)\) (?P<where>.*)$", re.M)
_FLOAT_TOO_LARGE = re.compile(r"Float too large for page by (?P<pt>[\d.]+)pt on input line (?P<line>\d+)")
_LOST = re.compile(r"^! (?:LaTeX Error: )?(Float\(s\) lost|Too many unprocessed floats)", re.M)
_FILE_OPEN = re.compile(r"\((\.{0,2}/[^\s()]+\.tex)")


def _file_at(text: str, position: int) -> str | None:
    """The source file TeX was reading at ``position`` of the (unwrapped) log: the innermost ``(./file.tex`` not yet
    closed. Parentheses inside the overfull boxes' printed contents are skipped; a best guess, for messages only."""
    stack: list[str | None] = []
    skip_until = -1
    for match in re.finditer(r"\(|\)|^Overfull .*$|^Underfull .*$", text[:position], re.M):
        if match.start() < skip_until:
            continue
        token = match.group(0)
        if token.startswith(("Overfull", "Underfull")):
            blank = text.find("\n\n", match.end())  # the box's contents end at the next empty line
            skip_until = blank if blank != -1 else position
        elif token == "(":
            opened = _FILE_OPEN.match(text, match.start())
            stack.append(opened.group(1) if opened else None)
        elif stack:
            stack.pop()
    return next((name for name in reversed(stack) if name), None)


def check_log(log_text: str, max_overfull: float = 1.0) -> Report:
    """Overfull boxes beyond ``max_overfull`` points, floats too large for their page, lost floats."""
    report = Report()
    text = unwrap_log(log_text)
    for match in _OVERFULL.finditer(text):
        points = float(match["pt"])
        if points <= max_overfull:
            continue
        where = match["where"].strip()
        source = _file_at(text, match.start())
        direction = "wide" if match["box"] == "h" else "high"
        report.faults.append(f"{source or 'main.tex'}: overfull \\{match['box']}box, {points:.1f} pt too {direction} "
                             f"({where})")
    for match in _FLOAT_TOO_LARGE.finditer(text):
        source = _file_at(text, match.start())
        report.faults.append(f"{source or 'main.tex'}:{match['line']}: float too large for its page by "
                             f"{float(match['pt']):.1f} pt (its bottom and caption are cut off)")
    for match in _LOST.finditer(text):
        report.faults.append(f"{match.group(1)}")
    return report


# --- sources ----------------------------------------------------------------------------------------------------

def strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def source_files(main: Path) -> list[Path]:
    """``main`` and every file it ``\\input``s or ``\\include``s, recursively (paths relative to ``main``'s folder,
    as TeX run there resolves them), in reading order; inputs that do not exist are skipped."""
    root = main.parent
    seen: list[Path] = []

    def visit(path: Path) -> None:
        if path in seen or not path.is_file():
            return
        seen.append(path)
        for name in re.findall(r"\\(?:input|include)\{([^}]+)\}", strip_comments(path.read_text(errors="replace"))):
            candidate = (root / name).resolve()
            visit(candidate if candidate.suffix == ".tex" else candidate.with_name(candidate.name + ".tex"))

    visit(main.resolve())
    return seen


def _environments(tex: str, names: tuple[str, ...]):
    """(name, start line, body) of each outermost environment of one of ``names`` in ``tex``."""
    pattern = re.compile(r"\\(begin|end)\{(" + "|".join(re.escape(n) for n in names) + r")\}")
    depth, start, opened = 0, 0, ""
    for match in pattern.finditer(tex):
        if match.group(1) == "begin":
            if depth == 0:
                start, opened = match.end(), match.group(2)
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                yield opened, tex.count("\n", 0, start) + 1, tex[start:match.start()]


def check_sources(files: list[Path], root: Path | None = None) -> Report:
    """Every float has its own caption; no table is scaled to fit."""
    report = Report()
    for path in files:
        tex = strip_comments(path.read_text(errors="replace"))
        shown = _relative(path, root)
        for name, line, body in _environments(tex, FLOATS):
            own = body
            for _, _, sub in _environments(body, SUBFLOATS):  # a subfigure's caption labels a panel, not the float
                own = own.replace(sub, "")
            if not re.search(r"\\caption(?:of)?\s*(?:\[[^\]]*\])?\s*\{", own):
                report.faults.append(f"{shown}:{line}: a {name} without a caption")
            if name.startswith("table") and re.search(r"\\resizebox|\\scalebox|\\begin\{adjustbox\}", body):
                report.faults.append(f"{shown}:{line}: a table scaled to fit (\\resizebox, \\scalebox or adjustbox): "
                                     "its text prints at an unknown size; use a smaller font or split it")
    return report


def _relative(path: Path, root: Path | None) -> str:
    return os.path.relpath(path, root) if root else str(path)


# --- figure text sizes ------------------------------------------------------------------------------------------

_INCLUDED = re.compile(r"<(?P<file>[^<>,\s]+\.pdf), id=\d+, (?P<w>[\d.]+)pt x (?P<h>[\d.]+)pt>")
_USED = re.compile(r"Package pdftex\.def Info: (?P<file>\S+\.pdf)\s+used on input line (?P<line>\d+)\.\s*"
                   r"\(pdftex\.def\)\s+Requested size: (?P<w>[\d.]+)pt x (?P<h>[\d.]+)pt\.")


def pdf_font_sizes(data: bytes) -> list[float]:
    """The font sizes (``Tf`` operands) in a PDF's content streams, compressed (Flate) or not."""
    sizes: list[float] = []
    for match in re.finditer(rb"stream\r?\n", data):
        end = data.find(b"endstream", match.end())
        if end == -1:
            break
        raw = data[match.end():end]
        try:
            content = zlib.decompress(raw)
        except zlib.error:
            content = raw
        sizes += [float(size) for size in re.findall(rb"/[^\s/]+\s+(\d+(?:\.\d*)?|\.\d+)\s+Tf\b", content)]
    return sizes


def base_sizes(sizes: list[float]) -> list[float]:
    """The sizes that are not a script of another size present (0.7 or 0.49 times it, to 1%)."""
    present = set(sizes)

    def is_script(size: float) -> bool:
        return any(abs(size - factor * other) <= 0.01 * size for other in present if other > size
                   for factor in SCRIPT_FACTORS)

    return sorted({s for s in present if not is_script(s)})


def check_figure_text(log_text: str, tex_dir: Path, min_font: float = 7.0, allowed: frozenset[str] = frozenset()) \
        -> Report:
    """Each included PDF figure's smallest (non-script) text at the size the report prints it."""
    report = Report()
    text = unwrap_log(log_text)
    natural = {m["file"]: (float(m["w"]), float(m["h"])) for m in _INCLUDED.finditer(text)}
    for match in _USED.finditer(text):
        name = match["file"]
        if name not in natural:
            continue
        path = (tex_dir / name).resolve()
        if not path.is_file():
            continue
        sizes = base_sizes(pdf_font_sizes(path.read_bytes()))
        if not sizes:
            continue  # no text in the figure
        scale = float(match["w"]) / natural[name][0]
        printed = min(sizes) * scale
        stem = path.stem
        if printed + 0.005 >= min_font:
            if stem in allowed:
                report.notes.append(f"{stem}.pdf now prints its text at {printed:.1f} pt: "
                                    f"drop --allow-small-text {stem}")
            continue
        source = _file_at(text, match.start())
        where = f"{source}:{match['line']}" if source else f"input line {match['line']}"
        message = (f"{stem}.pdf ({where}): text printed at {printed:.1f} pt < {min_font:g} pt "
                   f"({min(sizes):g} pt in the file, scaled {scale:.2f}); print it larger or regenerate it larger")
        (report.notes if stem in allowed else report.faults).append(message)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", type=Path, default=Path("report/main.log"))
    parser.add_argument("--tex", type=Path, default=None, help="the main source (default: main.tex beside the log)")
    parser.add_argument("--max-overfull", type=float, default=1.0, help="points an overfull box may have (1)")
    parser.add_argument("--min-font", type=float, default=7.0, help="smallest printed figure text in points (7)")
    parser.add_argument("--allow-small-text", action="append", default=[], metavar="NAME",
                        help="a figure (file stem) whose small text is known; noted, not failed (repeatable)")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"{args.log}: no LaTeX log; build the report first (make report)", file=sys.stderr)
        return 2
    main_tex = args.tex or args.log.with_suffix(".tex")
    log_text = args.log.read_text(errors="replace")
    results = [check_log(log_text, args.max_overfull),
               check_sources(source_files(main_tex), main_tex.parent.resolve()),
               check_figure_text(log_text, main_tex.parent, args.min_font, frozenset(args.allow_small_text))]
    faults = [fault for result in results for fault in result.faults]
    for note in (note for result in results for note in result.notes):
        print(f"note (allowed): {note}")
    if faults:
        print(f"{args.log}: {len(faults)} layout fault{'s' * (len(faults) != 1)}:", file=sys.stderr)
        for fault in faults:
            print(f"  {fault}", file=sys.stderr)
        return 1
    allowed = sum(1 for result in results for note in result.notes if "pt <" in note)
    print(f"{args.log}: no layout faults (overfull boxes <= {args.max_overfull:g} pt, every float fits and has a "
          f"caption, figure text >= {args.min_font:g} pt{f' but in {allowed} allowed figures' if allowed else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
