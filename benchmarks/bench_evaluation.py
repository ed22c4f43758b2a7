"""Evaluation throughput: images/s of the fidelity metrics suite, ``mnist_diffusion.evaluation.evaluate``.

The evaluated "samples" are the first N MNIST training images (uint8 [N, 28, 28]): the metrics' cost depends on
N, not on what the images show. The floors are left out (``with_floors=False``: they are computed once per
classifier and cached, not per evaluation). The first call is timed on its own, since it also loads the
classifier and builds whatever reference statistics the on-disk cache (``$MNIST_DIFFUSION_CACHE``, else
``.cache/``) does not hold yet; the throughput is the median of the calls after it.

When the evaluation package or what it needs (the classifier weights, the MNIST files) is missing, the script
still writes its JSON, with ``"status": "skipped"`` and the reason, and exits 0.

    python benchmarks/bench_evaluation.py            # N = 10,000 (the project's evaluation size)
    python benchmarks/bench_evaluation.py --quick    # N = 10, for the tests
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CASE = "evaluate"


def build_workload(n: int) -> Callable[[], dict[str, Any]]:
    """``evaluate`` of n real images, as a callable; raises (ImportError, UserError, ...) when it cannot run."""
    from mnist_diffusion.data import mnist_tensors
    from mnist_diffusion.evaluation import evaluate

    images = mnist_tensors("train")[0][:n].numpy()
    return lambda: evaluate(images, n=n, with_floors=False)


def settings_for(args) -> dict[str, Any]:
    """Sizes of this run."""
    return {"n": 10 if args.quick else args.n, "repeats": 1 if args.quick else (args.repeats or 3),
            "threads": torch.get_num_threads(), "with_floors": False}


def measure(args) -> dict[str, Any]:
    """Time the first call and the warm calls; a missing prerequisite becomes a 'skipped' document."""
    started = time.perf_counter()
    s = settings_for(args)
    before = common.state_before(args)
    try:
        workload = build_workload(s["n"])
        first_started = time.perf_counter()
        workload()
        first = time.perf_counter() - first_started
    except Exception as exc:  # noqa: BLE001 - any failure to run is reported, not raised
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return common.payload("evaluation", args, s, before, started, status="skipped", reason=reason, results=[])
    timings, disturbed = common.time_cases(args, {CASE: workload}, s["repeats"])
    seconds = timings[CASE]
    row: dict[str, Any] = {"case": CASE, "n": s["n"], "first_call_seconds": first, "others_busy_max": disturbed[CASE],
                           "seconds": common.summarise(seconds),
                           "images_per_s": common.summarise([s["n"] / v for v in seconds])}
    if not (args.quick or args.no_memory):
        extra = ["--n", str(s["n"])] + (["--threads", str(args.threads)] if args.threads else [])
        row["memory"] = common.measure_memory(Path(__file__), [CASE], extra)[CASE]
    return common.payload("evaluation", args, s, before, started, status="ok", results=[row])


def markdown(document: dict[str, Any]) -> str:
    """The evaluation table of a result document (or why it was skipped)."""
    if document.get("status") != "ok":
        return f"Evaluation throughput: not measured ({document.get('reason')})."
    rows = []
    for r in document["results"]:
        mem = r.get("memory", {})
        ips = r["images_per_s"]
        rows.append([r["n"], common.fmt(r["first_call_seconds"], 2), common.fmt(r["seconds"]["median"], 2),
                     common.fmt(ips["median"], 0), f"{common.fmt(ips['min'], 0)}-{common.fmt(ips['max'], 0)}",
                     common.fmt(mem.get("peak_rss_mib"), 0) if mem else ""])
    table = common.markdown_table(["images", "first call s", "s (median)", "img/s (median)", "img/s (min-max)",
                                   "peak RSS MiB"], rows)
    return f"Metrics suite (`evaluate`, floors excluded), median of {document['settings']['repeats']} calls.\n\n{table}"


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = common.make_parser(__doc__.splitlines()[0], "evaluation.json")
    parser.add_argument("--n", type=int, default=10_000, help="images per evaluation")
    args = parser.parse_args(argv)
    return common.run_benchmark(args, measure, markdown, lambda: build_workload(args.n), memory_calls=1)


if __name__ == "__main__":
    main()
