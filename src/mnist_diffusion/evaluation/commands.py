"""The ``evaluate`` and ``train-classifier`` subcommands (wired into :mod:`mnist_diffusion.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_evaluate(sub: argparse._SubParsersAction) -> None:
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


def add_train_classifier(sub: argparse._SubParsersAction) -> None:
    """``train-classifier [--seed S] [--epochs E] [--out PATH]``."""
    from mnist_diffusion.evaluation.classifier import DEFAULT_WEIGHTS
    from mnist_diffusion.evaluation.classifier_training import ClassifierRecipe

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


def run_evaluate(args: argparse.Namespace) -> None:
    from mnist_diffusion.errors import UserError
    from mnist_diffusion.evaluation.api import evaluate, floors
    from mnist_diffusion.evaluation.classifier import load_classifier
    from mnist_diffusion.evaluation.real_floors import write_committed_floors
    from mnist_diffusion.evaluation.images import load_sample_file
    from mnist_diffusion.evaluation.report import metrics_table, write_metrics

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
    from mnist_diffusion.evaluation.classifier_training import ClassifierRecipe, train_classifier

    recipe = ClassifierRecipe(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              holdout=args.holdout)
    out = Path(args.out)
    result = train_classifier(recipe, out=out, record=out.with_suffix(".json"), progress=not args.no_progress)
    print(f"classifier: test accuracy {result['test_accuracy']:.4f} after {result['training_seconds']:.0f} s; "
          f"weights {out} (sha256 {result['sha256']})")
