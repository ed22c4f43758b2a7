"""Where the time of a training step goes: torch.profiler over a few steps, by operator and by kind of work.

Profiles the same training step as ``bench_training.py`` (batch 128) for the recipe's UNet in both memory
formats, and reports each operator's share of the self CPU time (the time spent in the operator itself, not in
the operators it calls, so the shares add up to 100%) and the shares of a few kinds of work (convolution forward
and backward, normalisation, activations, the optimizer, the rest).

    python benchmarks/profile_training.py [--case unet-s/contiguous ...]
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_training  # noqa: E402
import common  # noqa: E402

#: Kind of work -> substrings of the aten operator names that belong to it (first match wins).
KINDS = {
    "conv backward": ("convolution_backward",),
    "conv forward": ("mkldnn_convolution", "conv2d", "_convolution", "convolution"),
    "normalisation": ("group_norm", "layer_norm"),
    "activations": ("silu", "gelu"),
    "optimizer": ("_foreach", "adam", "clip_grad", "linalg_vector_norm"),
    "linear/matmul": ("addmm", "mm", "linear"),
}
DEFAULT_CASES = ("unet-s/contiguous", "unet-s/channels_last")


def kind_of(op: str) -> str:
    """The kind of work an operator name belongs to."""
    for kind, needles in KINDS.items():
        if any(n in op for n in needles):
            return kind
    return "other"


def profile_case(case: str, batch: int, steps: int, top: int, warmup: int = 2) -> dict[str, Any]:
    """Self CPU time per operator and per kind over ``steps`` training steps (after ``warmup`` unprofiled ones)."""
    step, _ = bench_training.build_step(case, batch)
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - started) / steps
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = defaultdict(float)
    for e in events:
        kinds[kind_of(e.key)] += e.self_cpu_time_total / total
    ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "case": case, "batch": batch, "steps": steps, "wall_seconds_per_step_profiled": wall,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "top_ops": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps,
                     "ms_per_step": e.self_cpu_time_total / steps / 1e3} for e in ops],
    }


def markdown(document: dict[str, Any]) -> str:
    """Per case: the kinds of work and the top operators, as tables."""
    parts = []
    for r in document["results"]:
        kinds = common.markdown_table(["kind of work", "share of self CPU time"],
                                      [[k, f"{100 * v:.1f}%"] for k, v in r["kinds"].items()])
        ops = common.markdown_table(["operator", "share", "ms/step", "calls/step"],
                                    [[f"`{o['op']}`", f"{100 * o['share']:.1f}%", common.fmt(o["ms_per_step"]),
                                      common.fmt(o["calls_per_step"], 0)] for o in r["top_ops"]])
        parts.append(f"Profile of `{r['case']}` (batch {r['batch']}, {r['steps']} steps, "
                     f"{1e3 * r['wall_seconds_per_step_profiled']:.0f} ms/step under the profiler):\n\n{kinds}\n\n{ops}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.make_parser(__doc__.splitlines()[0], "profile.json")
    parser.add_argument("--case", action="append", default=None, help="network/format (repeatable)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    return common.run_benchmark(args, measure, markdown, memory_workload=None)


def measure(args) -> dict[str, Any]:
    """Profile each case and return the result document."""
    started = time.perf_counter()
    before = common.state_before(args)
    batch, steps = (8, 1) if args.quick else (args.batch, args.steps)
    warmup = 2 * common.warmup_calls(args)
    cases = args.case or (DEFAULT_CASES[:1] if args.quick else DEFAULT_CASES)
    results = [profile_case(case, batch, steps, args.top, warmup) for case in cases]
    return common.payload("profile", args, {"batch": batch, "steps": steps, "threads": torch.get_num_threads()},
                          before, started, results=results)


if __name__ == "__main__":
    main()
