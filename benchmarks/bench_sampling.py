"""Sampling wall-clock per image, and the sampler's own overhead next to diffusers' schedulers.

Loops compared (all on the project's UNet (16, 32, 64), randomly initialised: cost does not depend on weights):

* ``ancestral``: ours over all T steps of the recipe's cosine schedule (T = 1000) vs diffusers' ``DDPMScheduler``
  (``variance_type="fixed_large"``, i.e. sigma_t^2 = beta_t, our default) stepping the same network T times;
* ``ddim``: ours with 50 steps vs diffusers' ``DDIMScheduler`` with 50 steps (eta = 0, ``trailing`` spacing,
  which visits exactly our steps);
* ``alg2``: cold diffusion's Algorithm 2 at the config's T (palimpsest, T = 50; blur, T = 40).

Both diffusers schedulers are built from our betas (``trained_betas``) and start from the same noise, so the
two implementations compute the same samples: the JSON records the largest pixel difference as a check.
*Sampler overhead* is the loop's time minus the network's, measured directly by running every loop with a
network that costs nothing (it returns zeros), in microseconds per step. (The loop's time with the real network
minus steps x one network call is too small a difference of large, noisy numbers to say anything.)

    python benchmarks/bench_sampling.py            # full run, JSON into benchmarks/results/
    python benchmarks/bench_sampling.py --quick    # seconds, for the tests (T = 20)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import networks  # noqa: E402
from mnist_diffusion.training.build import build_network, build_process  # noqa: E402
from mnist_diffusion.training.config import load_config  # noqa: E402
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion  # noqa: E402
from mnist_diffusion.cold import cold_sample  # noqa: E402
from mnist_diffusion.diffusion import ancestral_sample, ddim_sample  # noqa: E402
from mnist_diffusion.diffusion.common import make_generator, start_noise  # noqa: E402
from mnist_diffusion.diffusion.schedules import make_schedule  # noqa: E402

COLD_CONFIGS = {"palimpsest": common.REPO / "configs" / "cold_palimpsest.yaml",
                "blur": common.REPO / "configs" / "cold_blur.yaml"}
#: (sampler, ours case, diffusers case) whose overheads the issue compares.
PAIRS = (("ancestral", "ancestral/ours", "ancestral/diffusers"), ("ddim", "ddim/ours", "ddim/diffusers"))


class ZeroNet(nn.Module):
    """A network that costs nothing: eps_hat = 0. Timing a sampler with it leaves only the sampler's own work."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)


def diffusers_schedulers(diffusion: GaussianDiffusion) -> dict[str, Any]:
    """diffusers' schedulers on our betas, built once (as a pipeline holds its scheduler).

    ``ancestral``: DDPMScheduler with sigma_t^2 = beta_t (``fixed_large``, our default); ``ddim``: DDIMScheduler
    with ``trailing`` spacing, which visits exactly our steps. Neither clips x0.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    betas = diffusion.beta[1:].double().numpy()
    return {
        "ancestral": DDPMScheduler(num_train_timesteps=diffusion.T, trained_betas=betas, variance_type="fixed_large",
                                   clip_sample=False),
        "ddim": DDIMScheduler(num_train_timesteps=diffusion.T, trained_betas=betas, clip_sample=False,
                              set_alpha_to_one=True, timestep_spacing="trailing"),
    }


@torch.inference_mode()
def diffusers_loop(net: nn.Module, scheduler: Any, T: int, steps: int, n: int, seed: int) -> Tensor:
    """The loop of diffusers' pipelines: set the timesteps, then net + ``scheduler.step`` per step.

    diffusers counts steps from 0 (its timestep k is our t = k + 1), so the network sees (k + 1) / T.
    """
    generator = make_generator(seed, "cpu")
    z = start_noise(n, generator, "cpu")
    scheduler.set_timesteps(steps)
    for k in scheduler.timesteps:
        eps_hat = net(z, torch.full((n,), (int(k) + 1) / T))
        z = scheduler.step(eps_hat, k, z, generator=generator).prev_sample
    return z.clamp(-1, 1)


def build_cases(net: nn.Module, batch: int, T: int, ddim_steps: int) -> tuple[dict[str, Callable[[], Tensor]], dict]:
    """The timed loops for one network (real or ZeroNet), and each loop's number of network calls."""
    diffusion = GaussianDiffusion(make_schedule("cosine", T))
    theirs = diffusers_schedulers(diffusion)
    colds = {name: build_process(load_config(path)) for name, path in COLD_CONFIGS.items()}
    cases: dict[str, Callable[[], Tensor]] = {
        "ancestral/ours": lambda: ancestral_sample(net, diffusion, batch, seed=0, clip_x0=False).images,
        "ancestral/diffusers": lambda: diffusers_loop(net, theirs["ancestral"], T, T, batch, seed=0),
        "ddim/ours": lambda: ddim_sample(net, diffusion, batch, steps=ddim_steps, seed=0, clip_x0=False).images,
        "ddim/diffusers": lambda: diffusers_loop(net, theirs["ddim"], T, ddim_steps, batch, seed=0),
    }
    steps = {"ancestral/ours": T, "ancestral/diffusers": T, "ddim/ours": ddim_steps, "ddim/diffusers": ddim_steps}
    for name, cold in colds.items():
        cases[f"alg2/{name}"] = lambda cold=cold: cold_sample(net, cold, batch, algorithm="alg2", seed=0).images
        steps[f"alg2/{name}"] = cold.T
    return cases, steps


def make_network() -> nn.Module:
    """The project's sampling network: the recipe's UNet (configs/ddpm_unet.yaml), eval mode."""
    torch.manual_seed(0)
    return build_network(load_config(common.REPO / "configs" / "ddpm_unet.yaml")).eval()


def settings_for(args) -> dict[str, Any]:
    """Sizes of this run (quick mode: T = 20, 5 DDIM steps, batch 2, one repeat)."""
    T = 20 if args.quick else args.T
    return {"batch": 2 if args.quick else args.batch, "T": T, "ddim_steps": min(5 if args.quick else args.ddim_steps, T),
            "repeats": 1 if args.quick else (args.repeats or 3), "threads": torch.get_num_threads(),
            "network": "UNet (16, 32, 64) of configs/ddpm_unet.yaml"}


def measure(args) -> dict[str, Any]:
    """Time the loops with the real network and with ZeroNet (round robin), one network call, then memory."""
    started = time.perf_counter()
    s = settings_for(args)
    before = common.state_before(args)
    net = make_network()
    real, steps = build_cases(net, s["batch"], s["T"], s["ddim_steps"])
    null, _ = build_cases(ZeroNet(), s["batch"], s["T"], s["ddim_steps"])
    x, t = torch.randn(s["batch"], 1, 28, 28), torch.rand(s["batch"])

    def network_call() -> None:
        with torch.inference_mode():
            for _ in range(10):
                net(x, t)

    outputs: dict[str, Tensor] = {}  # the last images of each real loop, to compare ours with diffusers'
    calls = {name: (lambda name=name, fn=fn: outputs.__setitem__(name, fn())) for name, fn in real.items()}
    # Each zero-net call repeats its loop to about 1,000 steps, so that the short loops are timed long enough too.
    loops = {case: 1 if args.quick else max(1, 1000 // n) for case, n in steps.items()}
    calls.update({f"{k}/zero-net": (lambda fn=fn, k=k: [fn() for _ in range(loops[k])]) for k, fn in null.items()})
    calls["network x10"] = network_call
    # Warm up on the short loops only: they run the same network on the same batch as the long ancestral ones.
    for name, fn in calls.items():
        if not name.startswith("ancestral/") and common.warmup_calls(args):
            fn()
    seconds, disturbed = common.time_cases(args, calls, s["repeats"], warmup=0)
    per_call = statistics.median(seconds["network x10"]) / 10
    check = {name: (outputs[ours] - outputs[theirs]).abs().max().item() for name, ours, theirs in PAIRS}
    rows = []
    for case, n_steps in steps.items():
        loop = common.summarise(seconds[case])
        overhead = statistics.median(seconds[f"{case}/zero-net"]) / (n_steps * loops[case])
        rows.append({
            "case": case, "sampler": case.split("/")[0], "implementation": case.split("/")[1], "steps": n_steps,
            "seconds": loop, "seconds_per_image": loop["median"] / s["batch"],
            "overhead_us_per_step": 1e6 * overhead,
            "overhead_fraction": overhead * n_steps / loop["median"],
            "others_busy_max": disturbed[case],
        })
    by_case = {r["case"]: r for r in rows}
    for sampler, ours, theirs in PAIRS:  # ratios per round (both timed in it), then their median
        by_case[ours]["overhead_ratio_vs_diffusers"] = statistics.median(
            a / b for a, b in zip(seconds[f"{ours}/zero-net"], seconds[f"{theirs}/zero-net"]))
        by_case[ours]["wallclock_ratio_vs_diffusers"] = statistics.median(
            a / b for a, b in zip(seconds[ours], seconds[theirs]))
        by_case[ours]["max_abs_difference_vs_diffusers"] = check[sampler]
    if not (args.quick or args.no_memory):
        extra = ["--batch", str(s["batch"]), "--T", str(s["T"]), "--ddim-steps", str(s["ddim_steps"])]
        extra += ["--threads", str(args.threads)] if args.threads else []
        for case, mem in common.measure_memory(Path(__file__), steps, extra).items():
            by_case[case]["memory"] = mem
    document = common.payload("sampling", args, s, before, started, network_call_seconds=per_call, results=rows)
    document["targets"] = [
        {"target": f"our {sampler} sampler overhead <= diffusers' for equal steps", "value":
         round(by_case[ours]["overhead_ratio_vs_diffusers"], 3), "met": by_case[ours]["overhead_ratio_vs_diffusers"] <= 1.0}
        for sampler, ours, _ in PAIRS]
    return document


def markdown(document: dict[str, Any]) -> str:
    """The sampling table (and the targets) of a result document."""
    s = document["settings"]
    rows = []
    for r in document["results"]:
        mem = r.get("memory", {})
        ratio = r.get("overhead_ratio_vs_diffusers")
        wall = r.get("wallclock_ratio_vs_diffusers")
        rows.append([
            r["sampler"], r["implementation"], r["steps"], common.fmt(r["seconds"]["median"], 2),
            common.fmt(1e3 * r["seconds_per_image"], 1), f"{wall:.2f}x" if wall is not None else "",
            common.fmt(r["overhead_us_per_step"], 0), f"{100 * r['overhead_fraction']:.1f}%",
            f"{ratio:.2f}x" if ratio is not None else "", common.fmt(mem.get("peak_rss_mib"), 0) if mem else "",
        ])
    table = common.markdown_table(
        ["sampler", "implementation", "network calls", "s per batch", "ms per image", "time vs diffusers",
         "overhead us/step", "overhead share", "overhead vs diffusers", "peak RSS MiB"], rows)
    checks = "\n".join(f"- {'met' if c['met'] else 'MISSED'}: {c['target']}: {c['value']}" for c in document["targets"])
    diffs = ", ".join(f"{r['sampler']} {r['max_abs_difference_vs_diffusers']:.1e}" for r in document["results"]
                      if "max_abs_difference_vs_diffusers" in r)
    return (f"Sampling a batch of {s['batch']} with the {s['network']}, T = {s['T']}, median of {s['repeats']} repeats; "
            f"one network call {1e3 * document['network_call_seconds']:.1f} ms. Largest pixel difference between our "
            f"samples and diffusers' from the same noise: {diffs}.\n\n{table}\n\n{checks}")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = common.make_parser(__doc__.splitlines()[0], "sampling.json")
    parser.add_argument("--batch", type=int, default=64, help="images sampled together")
    parser.add_argument("--T", type=int, default=1000, help="DDPM steps (the recipe's T)")
    parser.add_argument("--ddim-steps", type=int, default=50)
    args = parser.parse_args(argv)

    def memory_workload():
        s = settings_for(args)
        return build_cases(make_network(), s["batch"], s["T"], s["ddim_steps"])[0][args.memory_case]

    return common.run_benchmark(args, measure, markdown, memory_workload, memory_calls=1)


if __name__ == "__main__":
    main()
