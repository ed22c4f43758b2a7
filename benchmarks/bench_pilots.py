"""Training CPU time of the pilot study: seconds per training step of the control and of each pilot, at one thread.

The pilots (``experiments.registry.PILOTS``) each change one factor of the project's recipe (``PILOT_CONTROL``) and
train for the same training FLOPs, so they take different numbers of steps of different cost. Their recorded
wall-clock seconds are not comparable (they ran two at a time on a shared CPU, one was paused); this script times
what each would cost on its own. Every run's network and process are built from its config
(``experiments.experiment_config``) with the package's builders (``training.build``), and one step is what
``training.loop`` does per batch: setting the step's learning rate, the loss of the config's process (its
prediction target and min-SNR weighting), backward, gradient clipping at ``optim.grad_clip``, the optimizer step,
the EMA update and reading the loss; on a batch of the config's size, in its memory format, with one torch thread.
Left out: drawing the batch (indexing a tensor held in memory), logging and checkpoints. The batch is fixed random
pixels in [-1, 1] (the cost does not depend on the pixels). The runs are timed round robin (one repeat of every run,
then the next), so that load from other processes hits all of them alike; the median over repeats after a warm-up
repeat is recorded.

Per run the JSON records the seconds per step, the run's steps (``train.steps``), the estimated training minutes
``estimated_minutes = steps x seconds per step / 60`` (CPU-minutes, at the default of one thread), the torch
threads, the CPU, and the FLOPs of a step (``torch.utils.flop_counter``) with the run's total, which should be
the pilot budget (``PILOT_BUDGET_TFLOP``) for every run. ``figures/hparams_pilots`` (notebook 02,
``reporting.plots.pilot_cpu_figure``) plots classifier-FID against ``estimated_minutes``.

    python benchmarks/bench_pilots.py            # full run (~4 min, idle machine), JSON into benchmarks/results/
    python benchmarks/bench_pilots.py --quick    # seconds, for the tests (batch 2: not a measurement)

The full run takes 1 warm-up and 7 timed repeats of 2 steps of each of the ten runs, plus one counted step each:
17 steps per run. One step of all ten takes ~10 s at one thread (the control ~0.45 s, the width-64 pilot, 16 times
its FLOPs per step, about half of the round), so 3-4 min in all; longer when other processes disturb timed calls,
which are then redone after waiting for a quiet machine (``--wait-quiet SECONDS`` first waits for one).
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
from mnist_diffusion.experiments import FULL, PILOT_BUDGET_TFLOP, PILOT_CONTROL, PILOTS  # noqa: E402
from mnist_diffusion.experiments import experiment_config, get_experiment  # noqa: E402
from mnist_diffusion.models import count_parameters  # noqa: E402
from mnist_diffusion.training.loop import build_trainee, learning_rate, optimisation_step  # noqa: E402

#: Batch of every run in quick mode (the test suite's smoke run; its timings mean nothing).
QUICK_BATCH = 2


def run_names() -> list[str]:
    """The control first, then every pilot in the registry's order."""
    return [PILOT_CONTROL, *(pilot.name for pilot in PILOTS)]


def build_step(name: str, batch: int | None = None) -> tuple[Callable[[], None], dict[str, Any]]:
    """A callable running one training step of run ``name`` as ``training.loop`` does (see the module docstring),
    and the run's description. ``batch``: images per step (default: the config's ``train.batch_size``)."""
    config = experiment_config(name, FULL)  # the report's run, whatever $MNIST_DIFFUSION_PROFILE says
    tc, device = config.train, torch.device("cpu")
    batch = batch or tc.batch_size
    trainee, process = build_trainee(config, device)
    pixels = torch.Generator().manual_seed(tc.seed)
    noise_generator = torch.Generator(device=device).manual_seed(tc.seed + 1)
    x = (torch.rand(batch, 1, 28, 28, generator=pixels) * 2 - 1).contiguous(memory_format=trainee.memory_format)
    trainee.model.train()
    state = {"step": 0}

    def step() -> None:
        loss = optimisation_step(config, state["step"], learning_rate(config, state["step"]), trainee, process, x,
                                 noise_generator)
        state["step"] += 1
        loss.item()

    m, d = config.model, config.diffusion
    info = {"run": name, "description": get_experiment(name).description, "control": name == PILOT_CONTROL,
            "arch": m.arch, "channels": list(m.channels), "attention": m.attention, "prediction": d.prediction,
            "min_snr_gamma": d.min_snr_gamma, "lr_decay": config.optim.decay, "ema_decay": tc.ema_decay,
            "parameters": count_parameters(trainee.model), "config_batch": tc.batch_size, "batch": batch, "steps": tc.steps}
    return step, info


def settings_for(args) -> dict[str, Any]:
    """Sizes of this run: each config's own batch, or tiny ones in quick mode."""
    return {"batch": QUICK_BATCH if args.quick else "config", "steps_per_repeat": 1 if args.quick else args.steps,
            "repeats": 1 if args.quick else (args.repeats or 7), "warmup_repeats": common.warmup_calls(args),
            "threads": torch.get_num_threads()}


def measure(args) -> dict[str, Any]:
    """Build every run's step, count its FLOPs, then time all of them round robin."""
    started = time.perf_counter()
    settings = settings_for(args)
    before = common.state_before(args)
    calls: dict[str, Callable[[], Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name in run_names():
        step, info = build_step(name, QUICK_BATCH if args.quick else None)
        flops = common.count_flops(step)
        rows[name] = {**info, "flops_per_step": flops, "training_tflop": info["steps"] * flops / 1e12}
        calls[name] = common.repeat(step, settings["steps_per_repeat"])
    seconds, disturbed = common.time_cases(args, calls, settings["repeats"])
    threads, cpu = torch.get_num_threads(), common.cpu_model()
    for name, values in seconds.items():
        row = rows[name]
        row["seconds_per_step"] = common.summarise([v / settings["steps_per_repeat"] for v in values])
        row["estimated_minutes"] = row["steps"] * row["seconds_per_step"]["median"] / 60
        row.update(threads=threads, cpu=cpu, others_busy_max=disturbed[name])
    return common.payload("pilots", args, settings, before, started, budget_tflop=PILOT_BUDGET_TFLOP,
                          results=list(rows.values()))


def markdown(document: dict[str, Any]) -> str:
    """The table of a result document: per run its step time and the estimated training minutes."""
    rows = []
    for r in document["results"]:
        s = r["seconds_per_step"]
        rows.append([r["description"] + (" (control)" if r["control"] else ""), r["batch"], f"{r['steps']:,}",
                     f"{r['parameters']:,}", common.fmt(r["flops_per_step"] / 1e9), common.fmt(r["training_tflop"]),
                     common.fmt(s["median"], 3), f"{common.fmt(s['min'], 3)}-{common.fmt(s['max'], 3)}",
                     common.fmt(r["estimated_minutes"])])
    table = common.markdown_table(
        ["run", "batch", "steps", "parameters", "GFLOP/step", "TFLOP", "s/step (median)", "s/step (min-max)",
         "est. minutes"], rows)
    st = document["settings"]
    return (f"One training step per run at {st['threads']} torch thread(s), median of {st['repeats']} repeats of "
            f"{st['steps_per_repeat']} steps; est. minutes = steps x s/step / 60 (budget {document['budget_tflop']} "
            f"TFLOP per run).\n\n{table}\n\n_Measured on {common.machine_line(document)}._")


def parse_args(argv: list[str] | None = None):
    """The command line: the common options, ``--steps``, and one torch thread unless ``--threads`` says otherwise."""
    parser = common.make_parser(__doc__.splitlines()[0], "pilots.json")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed repeat")
    parser.set_defaults(threads=1)  # CPU-minutes at one thread, as the pilots were trained
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    return common.run_benchmark(parse_args(argv), measure, markdown, None)


if __name__ == "__main__":
    main()
