"""Training-step throughput on the CPU: images/s, achieved GFLOP/s and its share of the measured matmul peak.

One training step is what ``mnist_diffusion.training.loop`` does per batch, minus logging and the EMA: the DDPM loss
(t and eps drawn, z_t formed, the network run), backward, gradient clipping at 1.0 and an Adam step, on a
batch of 128 images. Each network is timed in both memory formats (contiguous NCHW, the CPU default, and
channels_last). FLOPs per step are counted with ``torch.utils.flop_counter`` (convolutions and matmuls, forward
and backward); the peak is the GFLOP/s of a 1024^3 fp32 matmul timed in the same round robin as the steps.

    python benchmarks/bench_training.py            # full run (~6 min on 2 cores), JSON into benchmarks/results/
    python benchmarks/bench_training.py --quick    # seconds, for the tests
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
import networks  # noqa: E402
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion  # noqa: E402
from mnist_diffusion.diffusion.schedules import make_schedule  # noqa: E402

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
PEAK_CASE = "matmul-peak"
#: The comparisons the issue sets targets for: (ours, diffusers at a matched parameter count).
PAIRS = {"unet-s": "diffusers-s", "unet-m": "diffusers-m"}
THROUGHPUT_TARGET = 1.3  # ours / diffusers
UTILISATION_TARGET = 0.40  # achieved GFLOP/s / matmul peak


def case_names(quick: bool) -> list[str]:
    """Every network in every memory format (quick: the small ones only), each of ours next to its diffusers match
    in the same format, so that the two are timed seconds apart in every round."""
    if quick:
        return ["cnn/contiguous", "unet-s/contiguous", "diffusers-s/contiguous", "unet-s/channels_last"]
    names = [f"cnn/{fmt}" for fmt in FORMATS]
    for ours, theirs in PAIRS.items():
        names += [f"{net}/{fmt}" for fmt in FORMATS for net in (ours, theirs)]
    return names


def build_step(case: str, batch: int, seed: int = 0) -> tuple[Callable[[], None], torch.nn.Module]:
    """A callable running one training step of the case's network (``"<network>/<memory format>"``), and the network."""
    name, fmt = case.split("/")
    memory_format = FORMATS[fmt]
    net = networks.build_network(name, seed).to(memory_format=memory_format).train()
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, 1, 28, 28, generator=generator) * 2 - 1).contiguous(memory_format=memory_format)

    def step() -> None:
        loss = diffusion.loss(net, x, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

    return step, net


def settings_for(args) -> dict[str, Any]:
    """Sizes of this run: the issue's batch of 128, or tiny ones in quick mode."""
    return {"batch": 8 if args.quick else args.batch, "steps_per_repeat": 1 if args.quick else args.steps,
            "repeats": 1 if args.quick else (args.repeats or 7), "threads": torch.get_num_threads()}


def measure(args) -> dict[str, Any]:
    """Time every case round robin with the matmul peak, count FLOPs, then the memory subprocesses."""
    started = time.perf_counter()
    settings = settings_for(args)
    before = common.state_before(args)
    cases = case_names(args.quick)
    calls: dict[str, Callable[[], Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for case in cases:
        step, net = build_step(case, settings["batch"])
        rows[case] = {"case": case, **networks.describe(case.split("/")[0], net), "memory_format": case.split("/")[1],
                      "flops_per_step": common.count_flops(step)}
        calls[case] = common.repeat(step, settings["steps_per_repeat"])
    peak_call, peak_flops = common.matmul_peak_call(256 if args.quick else 1024)
    calls[PEAK_CASE] = peak_call
    seconds, disturbed = common.time_cases(args, calls, settings["repeats"])

    peak_values = [peak_flops / s / 1e9 for s in seconds.pop(PEAK_CASE)]
    peak = {"matrix": 256 if args.quick else 1024, **common.summarise(peak_values), "others_busy_max": disturbed[PEAK_CASE]}
    images = settings["batch"] * settings["steps_per_repeat"]
    for case, values in seconds.items():
        row = rows[case]
        per_step = [v / settings["steps_per_repeat"] for v in values]
        row["seconds_per_step"] = common.summarise(per_step)
        row["others_busy_max"] = disturbed[case]
        row["images_per_s"] = common.summarise([images / v for v in values])
        row["gflops_per_s"] = row["flops_per_step"] / row["seconds_per_step"]["median"] / 1e9
        row["fraction_of_peak"] = row["gflops_per_s"] / peak["median"]
        # Ratio per repeat (the two were timed in the same round), then the median of the ratios.
        partner = PAIRS.get(row["network"])
        partner_case = f"{partner}/{row['memory_format']}"
        if partner_case in seconds:
            row["speedup_vs_diffusers"] = common.summarise([b / a for a, b in zip(values, seconds[partner_case])])
    if not (args.quick or args.no_memory):
        extra = ["--batch", str(settings["batch"])] + (["--threads", str(args.threads)] if args.threads else [])
        for case, mem in common.measure_memory(Path(__file__), cases, extra).items():
            rows[case]["memory"] = mem
    document = common.payload("training", args, settings, before, started, matmul_peak_gflops=peak,
                              results=list(rows.values()))
    document["targets"] = targets(document)
    return document


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, checked against this run (in each memory format)."""
    rows = {r["case"]: r for r in document["results"]}
    checks = []
    for fmt in FORMATS:
        for ours in PAIRS:
            row = rows.get(f"{ours}/{fmt}")
            if row is None:
                continue
            if "speedup_vs_diffusers" in row:
                value = row["speedup_vs_diffusers"]["median"]
                checks.append({"target": f"{ours} training throughput >= {THROUGHPUT_TARGET}x diffusers ({fmt})",
                               "value": round(value, 3), "met": value >= THROUGHPUT_TARGET})
            value = row["fraction_of_peak"]
            checks.append({"target": f"{ours} training GFLOP/s >= {UTILISATION_TARGET:.0%} of matmul peak ({fmt})",
                           "value": round(value, 3), "met": value >= UTILISATION_TARGET})
    return checks


def markdown(document: dict[str, Any]) -> str:
    """The training table (and the targets) of a result document."""
    peak = document["matmul_peak_gflops"]
    rows = []
    for r in document["results"]:
        ips = r["images_per_s"]
        mem = r.get("memory", {})
        speedup = r.get("speedup_vs_diffusers")
        rows.append([
            r["network"], r["implementation"], "x".join(map(str, r["widths"])), f"{r['parameters']:,}",
            r["memory_format"], common.fmt(ips["median"]), f"{common.fmt(ips['min'])}-{common.fmt(ips['max'])}",
            common.fmt(r["flops_per_step"] / document["settings"]["batch"] / 1e6),
            common.fmt(r["gflops_per_s"]), f"{100 * r['fraction_of_peak']:.0f}%",
            f"{speedup['median']:.2f}x" if speedup else "",
            common.fmt(mem.get("peak_rss_mib"), 0) if mem else "", common.fmt(mem.get("workload_rss_mib"), 0) if mem else "",
        ])
    table = common.markdown_table(
        ["network", "implementation", "widths", "parameters", "format", "img/s (median)", "img/s (min-max)",
         "MFLOP/img", "GFLOP/s", "of peak", "vs diffusers", "peak RSS MiB", "step RSS MiB"], rows)
    checks = "\n".join(f"- {'met' if c['met'] else 'MISSED'}: {c['target']}: {c['value']}" for c in document["targets"])
    s = document["settings"]
    return (f"Training step, batch {s['batch']}, median of {s['repeats']} repeats of {s['steps_per_repeat']} steps. "
            f"Matmul peak (fp32 {peak['matrix']}^3): {common.fmt(peak['median'])} GFLOP/s "
            f"(min {common.fmt(peak['min'])}, max {common.fmt(peak['max'])}).\n\n{table}\n\n{checks}")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = common.make_parser(__doc__.splitlines()[0], "training.json")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed repeat")
    args = parser.parse_args(argv)
    return common.run_benchmark(args, measure, markdown, lambda: build_step(args.memory_case, args.batch)[0])


if __name__ == "__main__":
    main()
