"""Command line of mnist-diffusion: ``python -m mnist_diffusion COMMAND [options]``.

Every subcommand lives in this module (``python -m mnist_diffusion COMMAND --help`` for each one's options):

* ``train``: train a model from a YAML config (``--config``, ``--set KEY=VALUE``, ``--resume``, ``--profile smoke``).
* ``sample``: draw images from a checkpoint into an npz (``images``: uint8 [N, 28, 28] in [0, 255]).
* ``restore``: cold diffusion, conditional mode: degrade real test images to step t, then restore them.
* ``data``: ``data fetch`` gets the four MNIST files, ``data verify`` checks their sizes and md5 sums.
* ``experiment``: the report's named runs: ``train``, ``evaluate``, ``curve``, ``summary``, ``list``.
* ``report-tables``: write ``report/generated/*.tex`` from ``results/summary.json``.
* ``evaluate``: fidelity metrics of sample files (one per seed) beside the real-data floors, or ``--floors``.
* ``train-classifier``: train the MNIST feature classifier that ``evaluate`` uses (training split only).

Each subcommand has an ``_add_<name>(sub)`` that declares its options and a ``run_<name>(args)`` that does the
work (importing what it needs when it runs); :func:`main` dispatches. Problems the user can fix (UserError) are
printed as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mnist_diffusion.errors import UserError


def _add_train(sub: argparse._SubParsersAction) -> None:
    """``train --config YAML [--set KEY=VALUE ...] [--resume] [--profile full|smoke] [--out DIR]``."""
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", required=True, help="YAML file, e.g. configs/ddpm_unet.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run folder")
    p.add_argument("--profile", choices=("full", "smoke"), default=None,
                   help="smoke: tiny data/steps, written to a scratch folder ($MNIST_DIFFUSION_RUNS, else a temporary "
                        "one) (default: $MNIST_DIFFUSION_PROFILE or full)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<name>, or <name> in the smoke "
                                                           "scratch folder)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_sample(sub: argparse._SubParsersAction) -> None:
    """``sample --checkpoint PATH [--n N] [--sampler ...] [--steps S] [--seed S] [--out X.npz] [--grid X.png]``."""
    from mnist_diffusion.cold import COLD_SAMPLERS, TRACE_PRIORS
    from mnist_diffusion.diffusion import SAMPLERS, VARIANCES

    p = sub.add_parser("sample", help="draw images from a checkpoint into an npz (images: uint8 [N, 28, 28])")
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt checkpoint, ema.pt, or a run folder")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--sampler", choices=(*SAMPLERS, *COLD_SAMPLERS), default=None,
                   help="DDPM: ancestral | ddim (default) | dpmpp2m | dpmpp2msde (DPM-Solver++ 2M, ODE or SDE); "
                        "cold diffusion: alg2 (default) | alg1 | direct")
    p.add_argument("--steps", type=int, default=50,
                   help="DDIM and DPM-Solver++ steps = network calls (ancestral always uses all T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise scale (0 = deterministic)")
    p.add_argument("--variance", choices=VARIANCES, default="beta", help="ancestral sigma_t^2")
    p.add_argument("--clip-x0", action=argparse.BooleanOptionalAction, default=True,
                   help="clip the estimate of x to [-1, 1] at every step (default; --no-clip-x0 turns it off)")
    p.add_argument("--prior", choices=TRACE_PRIORS, default=None,
                   help="cold palimpsest_trace only: draw the endpoint's trace from a training digit (default), "
                        "from a 10-component Gaussian mixture fitted to the training traces (mixture), or from the "
                        "mixture whose size held-out likelihood chose (heldout; its first use fits it: minutes)")
    p.add_argument("--perturb", type=float, default=0.0,
                   help="cold diffusion only: add Gaussian noise of this standard deviation to the endpoint x_T "
                        "(Bansal et al.'s symmetry breaking; default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 on a CPU, 1000 on a GPU (fastest per image)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--out", type=Path, default=Path("samples.npz"))
    p.add_argument("--grid", type=Path, default=None, help="also save the first 64 images as a PNG grid")
    p.add_argument("--no-progress", action="store_true")


def _add_restore(sub: argparse._SubParsersAction) -> None:
    """``restore --checkpoint PATH [--n N] [--t T] [--sampler alg2|alg1|direct] [--out X.npz] [--grid X.png]``."""
    from mnist_diffusion.cold import COLD_SAMPLERS

    p = sub.add_parser("restore", help="cold diffusion, conditional mode: degrade real test images to step t, then restore them")
    p.add_argument("--checkpoint", required=True, type=Path, help="a cold-diffusion checkpoint, ema.pt, or run folder")
    p.add_argument("--n", type=int, default=64, help="number of test images (the first n of the test split)")
    p.add_argument("--t", type=int, default=None, help="degradation step to start from (default: T)")
    p.add_argument("--sampler", choices=COLD_SAMPLERS, default="alg2")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation's random state")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("restored.npz"))
    p.add_argument("--grid", type=Path, default=None, help="also save rows of target / degraded / restored as a PNG")


def _add_data(sub: argparse._SubParsersAction) -> None:
    """``data {fetch,verify} [--root DIR]``."""
    p = sub.add_parser("data", help="get or check the MNIST files")
    p.add_argument("action", choices=("fetch", "verify"))
    p.add_argument("--root", type=Path, default=None, help="data root (default: $MNIST_DIFFUSION_DATA or <repo>/data)")


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    """``experiment {train,evaluate,curve,summary,list} [NAME ...] [--only KEY ...] [--inception]``."""
    from mnist_diffusion.experiments import EXPERIMENTS, GROUPS

    p = sub.add_parser("experiment", help="the report's named runs: train, evaluate, curve, summary (see results/)")
    p.add_argument("action", choices=("train", "evaluate", "curve", "summary", "list"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"experiments ({', '.join(EXPERIMENTS)}), or a group: {' / '.join(GROUPS)}")
    p.add_argument("--only", nargs="+", default=None, metavar="KEY",
                   help="evaluate: only these evaluations, e.g. ddim-50_n10000 ancestral_n2000 "
                        "(with --inception, 'inception' alone adds Inception-FID to the evaluated headline)")
    p.add_argument("--inception", action="store_true",
                   help="evaluate: also Inception-FID of the headline's seed-0 set (needs the inception extra; "
                        "about 3 N images through Inception-v3, hours on a CPU); curve: also the Inception-FID target's "
                        "budget point, the last snapshot within 4 training hours at the headline's N (seed 0)")
    p.add_argument("--profile", choices=("full", "smoke"), default=None)
    p.add_argument("--no-progress", action="store_true")


def _add_report_tables(sub: argparse._SubParsersAction) -> None:
    """``report-tables [--summary results/summary.json] [--out report/generated/]``."""
    p = sub.add_parser("report-tables", help="write report/generated/*.tex (numbers and tables) from results/summary.json")
    p.add_argument("--summary", type=Path, default=None, help="default: results/summary.json")
    p.add_argument("--out", type=Path, default=None, help="default: report/generated/")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``evaluate --samples X.npz [Y.npz ...] [--n N] [--inception] [--out metrics.json]`` or ``evaluate --floors``."""
    p = sub.add_parser("evaluate", help="fidelity metrics of sample files (one per seed) beside real-data floors")
    p.add_argument("--samples", type=Path, nargs="+", default=[], metavar="NPZ",
                   help="npz files from 'sample' (key images: uint8 [N, 28, 28]); several = several seeds, mean ± std")
    p.add_argument("--n", type=int, default=None,
                   help="images per file (the first N); default: the smallest file, at most 10000")
    p.add_argument("--inception", action="store_true", help="add Inception-FID (needs the 'inception' extra; slow on CPU)")
    p.add_argument("--floors", action="store_true",
                   help="without --samples: compute the floors at --n (default 10000) "
                        "and write results/floors/<hash>_n<N>.json")
    p.add_argument("--out", type=Path, default=None, help="write the metrics (or floors) JSON here")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (where the networks run)")
    p.add_argument("--no-progress", action="store_true")


def _add_train_classifier(sub: argparse._SubParsersAction) -> None:
    """``train-classifier [--seed S] [--epochs E] [--out PATH]``."""
    from mnist_diffusion.evaluation.classifier import DEFAULT_WEIGHTS, ClassifierRecipe

    d = ClassifierRecipe()
    p = sub.add_parser("train-classifier", help="train the MNIST feature classifier used by 'evaluate' (training split only)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--holdout", type=int, default=d.holdout, help="training images held out to choose the best epoch")
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS,
                   help="weights file (default: the committed one; a training record .json is written beside it)")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand listed in the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m mnist_diffusion", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sample(sub)
    _add_restore(sub)
    _add_data(sub)
    _add_experiment(sub)
    _add_report_tables(sub)
    _add_evaluate(sub)
    _add_train_classifier(sub)
    return parser


def run_train(args: argparse.Namespace) -> None:
    """Train from the config (with overrides and profile) and print the run folder."""
    from mnist_diffusion.training.config import load_config
    from mnist_diffusion.scale import resolve_scale
    from mnist_diffusion.training.loop import train

    scale = resolve_scale(args.profile)
    config = load_config(args.config, args.overrides, scale=scale)
    run_dir = train(config, args.out, resume=args.resume, scale=scale, progress=not args.no_progress)
    print(f"run folder: {run_dir}  (EMA weights: {run_dir / 'ema.pt'})")


def run_sample(args: argparse.Namespace) -> None:
    """Sample ``--n`` images (uint8 [N, 28, 28]) into an npz with a JSON ``meta``; optionally a PNG grid."""
    from mnist_diffusion.diffusion import DPM_SOLVERS
    from mnist_diffusion.reporting.grids import save_grid
    from mnist_diffusion.training.sampling import default_batch_size, default_sampler, generate, load_trained, save_samples

    trained = load_trained(args.checkpoint, use_ema=not args.no_ema, device=args.device)
    batch_size = args.batch_size or default_batch_size(trained)
    sampler = args.sampler or default_sampler(trained.config)
    relevant = {"ddim": ("steps", "eta", "clip_x0"), "ancestral": ("variance", "clip_x0"),
                **{solver: ("steps", "clip_x0") for solver in DPM_SOLVERS}}.get(sampler, ())
    options = {"sampler": sampler, **{name: getattr(args, name) for name in relevant}}  # recorded in the npz meta
    if args.prior is not None:
        options["prior"] = args.prior
    if args.perturb < 0:
        raise UserError(f"--perturb must be >= 0 (a standard deviation), got {args.perturb}")
    if args.perturb:
        options["perturb"] = args.perturb
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
    """Degrade the first ``--n`` test images to step t and restore them; save all three sets and the L1 errors."""
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
    """``data fetch``: get the MNIST files (:func:`mnist_diffusion.data.fetch`); ``data verify``: check them."""
    from mnist_diffusion import data

    if args.action == "fetch":
        raw = data.fetch(args.root)
        print(f"MNIST ready and verified in {raw}")
    else:
        raw = data.verify(args.root)
        print(f"MNIST verified: the four files in {raw} have the expected sizes and md5 sums")


def run_experiment(args: argparse.Namespace) -> None:
    """Run one action of the named experiments (or of the groups in ``experiments.GROUPS``), or list them."""
    from mnist_diffusion import experiments as ex
    from mnist_diffusion.scale import resolve_scale

    scale, progress = resolve_scale(args.profile), not args.no_progress
    if args.action == "list":
        for name, e in ex.EXPERIMENTS.items():
            print(f"{name:18s} {e.group:6s} configs/{e.config} {' '.join(e.overrides)}  # {e.description}")
        return
    if args.action == "summary":
        print(f"wrote {ex.summarise(scale)}")
        return
    if not args.names:
        raise UserError(f"name the experiments to {args.action} (or a group: {' / '.join(ex.GROUPS)}); "
                        "see 'experiment list'")
    grouped = {n for name in args.names if name in ex.GROUPS for n in ex.experiment_names(name)}
    names = [n for name in args.names for n in (ex.experiment_names(name) if name in ex.GROUPS else [name])]
    for name in names:
        ex.get_experiment(name)  # every name checked before any work starts
    for name in dict.fromkeys(names):
        if args.action == "evaluate" and name in grouped and not ex.published_weights(name, scale).is_file():
            print(f"{name}: skipped (no weights at {ex.published_weights(name, scale)}; train it first)")
        elif args.action == "train":
            print(f"{name}: results in {ex.train_experiment(name, scale, progress)}")
        elif args.action == "evaluate":
            print(f"{name}: wrote {ex.evaluate_experiment(name, scale, progress, only=args.only, inception=args.inception)}")
        else:
            print(f"{name}: wrote {ex.curve_experiment(name, scale, progress=progress, inception=args.inception)}")


def run_report_tables(args: argparse.Namespace) -> None:
    """Write the report's generated LaTeX tables and print their paths."""
    from mnist_diffusion.reporting.report_tables import write_report_tables

    for path in write_report_tables(args.summary, args.out):
        print(f"wrote {path}")


def run_evaluate(args: argparse.Namespace) -> None:
    """Print the metrics table of the sample files (optionally write its JSON), or compute the real-data floors."""
    from mnist_diffusion.evaluation.api import evaluate, floors, metrics_table, write_metrics
    from mnist_diffusion.evaluation.classifier import load_classifier
    from mnist_diffusion.evaluation.features import load_sample_file
    from mnist_diffusion.evaluation.reference import write_committed_floors

    progress = not args.no_progress
    if not args.samples:
        if not args.floors:
            raise UserError("nothing to evaluate: pass --samples FILE.npz [...] "
                            "(or --floors to compute the real-data floors)")
        n = 10_000 if args.n is None else args.n
        result = floors(n, inception=args.inception, device=args.device, progress=progress)
        print(metrics_table(result))
        path = write_committed_floors(result, load_classifier(), args.out)
        print(f"wrote {path}")
        return
    files = [load_sample_file(path) for path in args.samples]
    result = evaluate([f.images for f in files], n=args.n, seeds=[f.seed for f in files], inception=args.inception,
                      device=args.device, progress=progress)
    result["samples"] = [str(f.path) for f in files]
    print(metrics_table(result))
    if args.out:
        print(f"wrote {write_metrics(result, args.out)}")


def run_train_classifier(args: argparse.Namespace) -> None:
    """Train the evaluation classifier with the given recipe; write its weights and a training record beside them."""
    from mnist_diffusion.evaluation.classifier import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              holdout=args.holdout)
    out = Path(args.out)
    result = train_classifier(recipe, out=out, record=out.with_suffix(".json"), progress=not args.no_progress)
    print(f"classifier: test accuracy {result['test_accuracy']:.4f} after {result['training_seconds']:.0f} s; "
          f"weights {out} (sha256 {result['sha256']})")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand; return the exit status (0, 2 or 130)."""
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "sample": run_sample, "restore": run_restore, "data": run_data,
                "experiment": run_experiment, "report-tables": run_report_tables, "evaluate": run_evaluate,
                "train-classifier": run_train_classifier}
    try:
        handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume training with --resume", file=sys.stderr)
        return 130
    return 0
