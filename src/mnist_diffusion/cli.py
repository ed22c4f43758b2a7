"""Command line: ``python -m mnist_diffusion {train,sample,data} ...``.

Problems the user can fix (UserError) are printed as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation import commands as evaluation_commands


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", required=True, help="YAML file, e.g. configs/ddpm_unet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run folder")
    p.add_argument("--profile", choices=("full", "smoke"), default=None,
                   help="smoke: tiny data/steps, writes under runs/smoke/ (default: $MNIST_DIFFUSION_PROFILE or full)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<name> or runs/smoke/<name>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw images from a checkpoint into an npz (images: uint8 [N, 28, 28])")
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt checkpoint, ema.pt, or a run folder")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--sampler", choices=("ancestral", "ddim", "alg2", "alg1", "direct"), default=None,
                   help="DDPM: ancestral | ddim (default); cold diffusion: alg2 (default) | alg1 | direct")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (ancestral always uses all T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise scale (0 = deterministic)")
    p.add_argument("--variance", choices=("beta", "posterior"), default="beta", help="ancestral sigma_t^2")
    p.add_argument("--clip-x0", action=argparse.BooleanOptionalAction, default=True,
                   help="clip the estimate of x to [-1, 1] at every step (default; --no-clip-x0 turns it off)")
    p.add_argument("--prior", choices=("training", "mixture"), default=None,
                   help="cold palimpsest_trace only: draw the endpoint's trace from a training digit (default) "
                        "or from a Gaussian mixture fitted to the training traces")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 on a CPU, 1000 on a GPU (fastest per image)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--out", type=Path, default=Path("samples.npz"))
    p.add_argument("--grid", type=Path, default=None, help="also save the first 64 images as a PNG grid")
    p.add_argument("--no-progress", action="store_true")


def _add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="cold diffusion, conditional mode: degrade real test images to step t, then restore them")
    p.add_argument("--checkpoint", required=True, type=Path, help="a cold-diffusion checkpoint, ema.pt, or run folder")
    p.add_argument("--n", type=int, default=64, help="number of test images (the first n of the test split)")
    p.add_argument("--t", type=int, default=None, help="degradation step to start from (default: T)")
    p.add_argument("--sampler", choices=("alg2", "alg1", "direct"), default="alg2")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation's random state")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("restored.npz"))
    p.add_argument("--grid", type=Path, default=None, help="also save rows of target / degraded / restored as a PNG")


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="get or check the MNIST files")
    p.add_argument("action", choices=("fetch", "verify"))
    p.add_argument("--root", type=Path, default=None, help="data root (default: $MNIST_DIFFUSION_DATA or <repo>/data)")


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    from mnist_diffusion.experiments import EXPERIMENTS

    p = sub.add_parser("experiment", help="the report's named runs: train, evaluate, curve, summary (see results/)")
    p.add_argument("action", choices=("train", "evaluate", "curve", "summary", "list"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"experiments ({', '.join(EXPERIMENTS)}), or 'study' / 'final' for a group")
    p.add_argument("--only", nargs="+", default=None, metavar="KEY",
                   help="evaluate: only these evaluations, e.g. ddim-50_n10000 ancestral_n2000 "
                        "(with --inception, 'inception' alone adds Inception-FID to the evaluated headline)")
    p.add_argument("--inception", action="store_true",
                   help="evaluate: also Inception-FID of the headline's seed-0 set (needs the inception extra; "
                        "about 3 N images through Inception-v3, hours on a CPU)")
    p.add_argument("--profile", choices=("full", "smoke"), default=None)
    p.add_argument("--no-progress", action="store_true")


def _add_report_tables(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report-tables", help="write report/generated/*.tex (numbers and tables) from results/summary.json")
    p.add_argument("--summary", type=Path, default=None, help="default: results/summary.json")
    p.add_argument("--out", type=Path, default=None, help="default: report/generated/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_diffusion", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sample(sub)
    _add_restore(sub)
    _add_data(sub)
    _add_experiment(sub)
    _add_report_tables(sub)
    evaluation_commands.add_evaluate(sub)
    evaluation_commands.add_train_classifier(sub)
    return parser


def run_train(args: argparse.Namespace) -> None:
    from mnist_diffusion.training.config import load_config
    from mnist_diffusion.paths import active_profile
    from mnist_diffusion.training.loop import train

    profile = active_profile(args.profile)
    config = load_config(args.config, args.overrides, profile=profile)
    run_dir = train(config, args.out, resume=args.resume, profile=profile, progress=not args.no_progress)
    print(f"run folder: {run_dir}  (EMA weights: {run_dir / 'ema.pt'})")


def run_sample(args: argparse.Namespace) -> None:
    from mnist_diffusion.reporting.grids import save_grid
    from mnist_diffusion.training.sampling import default_batch_size, default_sampler, generate, load_trained, save_samples

    trained = load_trained(args.checkpoint, use_ema=not args.no_ema, device=args.device)
    batch_size = args.batch_size or default_batch_size(trained)
    sampler = args.sampler or default_sampler(trained.config)
    relevant = {"ddim": ("steps", "eta", "clip_x0"), "ancestral": ("variance", "clip_x0")}.get(sampler, ())
    options = {"sampler": sampler, **{name: getattr(args, name) for name in relevant}}  # recorded in the npz meta
    if args.prior is not None:
        options["prior"] = args.prior
    started = time.perf_counter()
    images = generate(trained, args.n, batch_size=batch_size, seed=args.seed, progress=not args.no_progress, **options)
    seconds = time.perf_counter() - started
    meta = {"checkpoint": str(trained.path), "checkpoint_step": trained.step, "weights": trained.weights,
            "config_name": trained.config.name, "method": trained.config.method, "n": args.n, "seed": args.seed,
            "batch_size": batch_size,
            "sampling_seconds": round(seconds, 3), **options}
    save_samples(args.out, images, meta)
    if args.grid:
        save_grid(images[:64], args.grid)
    print(f"wrote {args.n} images to {args.out} in {seconds:.1f} s ({json.dumps(options)})")


def run_restore(args: argparse.Namespace) -> None:
    from mnist_diffusion.training.sampling import load_trained, restore_test_images, save_samples

    trained = load_trained(args.checkpoint, device=args.device)
    result = restore_test_images(trained, args.n, t_start=args.t, algorithm=args.sampler, seed=args.seed)
    meta = {"mode": "restore-test", "checkpoint": str(trained.path), "checkpoint_step": trained.step,
            "config_name": trained.config.name, "n": args.n, "t_start": result["t_start"], "sampler": args.sampler,
            "seed": args.seed, "l1_restored": result["l1_restored"], "l1_degraded": result["l1_degraded"]}
    save_samples(args.out, result["images"], meta, degraded=result["degraded"], targets=result["targets"])
    if args.grid:
        from mnist_diffusion.reporting.grids import save_grid

        rows = min(args.n, 16)
        triples = [result[key][:rows] for key in ("targets", "degraded", "images")]
        save_grid(np.concatenate(triples), args.grid, ncol=rows)
    print(f"restored {args.n} test images from t={result['t_start']} with {args.sampler}: "
          f"mean |restored - target| = {result['l1_restored']:.4f} (degraded: {result['l1_degraded']:.4f}) -> {args.out}")


def run_data(args: argparse.Namespace) -> None:
    from mnist_diffusion import data

    if args.action == "fetch":
        raw = data.fetch(args.root)
        print(f"MNIST ready and verified in {raw}")
    else:
        raw = data.verify(args.root)
        print(f"MNIST verified: the four files in {raw} have the expected sizes and md5 sums")


def run_experiment(args: argparse.Namespace) -> None:
    from mnist_diffusion import experiments as ex
    from mnist_diffusion.paths import active_profile

    profile, progress = active_profile(args.profile), not args.no_progress
    if args.action == "list":
        for name, e in ex.EXPERIMENTS.items():
            print(f"{name:18s} {e.group:6s} configs/{e.config} {' '.join(e.overrides)}  # {e.description}")
        return
    if args.action == "summary":
        print(f"wrote {ex.summarise(profile)}")
        return
    if not args.names:
        raise UserError(f"name the experiments to {args.action} (or 'study' / 'final'); see 'experiment list'")
    grouped = {n for name in args.names if name in ("study", "final") for n in ex.experiment_names(name)}
    names = [n for name in args.names for n in (ex.experiment_names(name) if name in ("study", "final") else [name])]
    for name in names:
        ex.get_experiment(name)  # every name checked before any work starts
    for name in dict.fromkeys(names):
        if args.action == "evaluate" and name in grouped and not (ex.results_dir(profile) / name / "ema.pt").is_file():
            print(f"{name}: skipped (no weights in {ex.results_dir(profile) / name}; train it first)")
        elif args.action == "train":
            print(f"{name}: results in {ex.train_experiment(name, profile, progress)}")
        elif args.action == "evaluate":
            print(f"{name}: wrote {ex.evaluate_experiment(name, profile, progress, only=args.only, inception=args.inception)}")
        else:
            print(f"{name}: wrote {ex.curve_experiment(name, profile, progress=progress)}")


def run_report_tables(args: argparse.Namespace) -> None:
    from mnist_diffusion.reporting.report_tables import write_report_tables

    for path in write_report_tables(args.summary, args.out):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "sample": run_sample, "restore": run_restore, "data": run_data,
                "experiment": run_experiment, "report-tables": run_report_tables}
    handlers.update({"evaluate": evaluation_commands.run_evaluate, "train-classifier": evaluation_commands.run_train_classifier})
    try:
        handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume training with --resume", file=sys.stderr)
        return 130
    return 0
