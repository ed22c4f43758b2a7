"""Execute notebooks top to bottom with nbconvert, showing progress in the terminal (what `make figures` runs).

``jupyter nbconvert --execute`` is silent until a notebook finishes. This runner uses the same nbconvert
executor (``ExecutePreprocessor``) but prints each code cell as it starts, echoes the kernel's stderr live (the
package's progress bars) and the time each cell took, and writes the executed copy of every notebook into
``--output-dir`` (the committed notebooks stay without outputs). A notebook stopped by a problem the user can fix
(a :class:`~mnist_diffusion.errors.UserError`, e.g. a committed result that is missing, with the make target that
produces it) is reported as that one line; other failures with their traceback.

    python scripts/run_notebooks.py notebooks/01_ddpm.ipynb ... --output-dir runs/notebooks
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError
from nbconvert.preprocessors import ExecutePreprocessor


class ProgressExecutor(ExecutePreprocessor):
    """nbconvert's executor, which also copies the kernel's stderr stream to this process's stderr as it arrives."""

    def output(self, outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        content = msg.get("content", {})
        if msg.get("msg_type") == "stream" and content.get("name") == "stderr":
            sys.stderr.write(content.get("text", ""))
            sys.stderr.flush()
        return super().output(outs, msg, display_id, cell_index)


def first_line(source: str, width: int = 70) -> str:
    line = next((s for s in source.splitlines() if s.strip() and not s.lstrip().startswith("#")), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def run_notebook(path: Path, output_dir: Path, label: str, log=print) -> float:
    """Execute ``path`` in its own folder, write the executed copy to ``output_dir``; returns the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    started = time.perf_counter()
    cell_started: dict[str, float] = {}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell_index not in code:  # the hooks also see markdown cells
            return
        cell_started["t"] = time.perf_counter()
        log(f"{label} cell {code.index(cell_index) + 1}/{len(code)}: {first_line(cell.source)}")

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell_index in code:
            log(f"{label}   done in {time.perf_counter() - cell_started['t']:.1f} s")

    executor = ProgressExecutor(timeout=None, kernel_name="python3", on_cell_start=on_cell_start,
                                on_cell_executed=on_cell_executed)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        executor.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    finally:
        nbformat.write(nb, output_dir / path.name)  # also when a cell failed: the traceback is in the copy
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/notebooks"))
    args = parser.parse_args(argv)
    total = time.perf_counter()
    for i, path in enumerate(args.notebooks, 1):
        label = f"[{i}/{len(args.notebooks)} {path.stem}]"
        print(f"{label} start", flush=True)
        try:
            seconds = run_notebook(path, args.output_dir, label, log=lambda s: print(s, flush=True))
        except CellExecutionError as error:
            copy = args.output_dir / path.name
            if error.ename == "UserError":
                print(f"{label} stopped: {error.evalue} (executed copy: {copy})", file=sys.stderr)
            else:
                print(f"{label} FAILED; the executed copy with the traceback is {copy}\n{error}", file=sys.stderr)
            return 1
        print(f"{label} finished in {seconds / 60:.1f} min", flush=True)
    print(f"all {len(args.notebooks)} notebooks in {(time.perf_counter() - total) / 60:.1f} min; "
          f"executed copies in {args.output_dir}/", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
