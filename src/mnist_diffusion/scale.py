"""How big a run of the pipeline is and where its files go: the full scale or the smoke scale.

A :class:`Scale` is passed wherever size or place matters (configs, training, evaluations, curves, figures)
instead of a profile name. :data:`FULL` is the report's scale: runs in ``runs/``, results in ``results/``
(committed), figures in ``figures/``; its read accessors load what is committed and never compute it.
:data:`SMOKE` shrinks everything to seconds (tests, ``make test-notebooks``) and writes only into a scratch
folder outside the repository: ``$MNIST_DIFFUSION_RUNS`` when set, else ``<system temp>/mnist-diffusion/smoke``;
its results and figures go to ``results/`` and ``figures/`` inside that folder, and its read accessors may
train and evaluate what is missing.

:func:`resolve_scale` turns the ``--profile`` flag or ``$MNIST_DIFFUSION_PROFILE`` (``full`` | ``smoke``) into
one of them; the rest of the package passes the object.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import repo_root

#: Environment variable naming the scale (``full`` or ``smoke``) when no ``--profile`` is given.
PROFILE_ENV = "MNIST_DIFFUSION_PROFILE"
#: Environment variable naming the smoke scale's scratch folder (tests and ``make test-notebooks`` set it).
RUNS_ENV = "MNIST_DIFFUSION_RUNS"

#: The config values the smoke scale sets: tiny data, steps and sampling so a whole run takes seconds.
SMOKE_OVERRIDES: dict[str, Any] = {
    "data.subset": 512,
    "train.steps": 20,
    "train.batch_size": 32,
    "train.log_every": 5,
    "train.sample_every": 10,
    "train.checkpoint_every": 10,
    "sample.steps": 5,
    "sample.n_grid": 16,
    "diffusion.T": 100,  # fewer ancestral steps and cold steps: sampling in smoke runs takes seconds
    "cold.T": 10,
}


@dataclass(frozen=True)
class Scale:
    """How big and where: the sizes that override an experiment's own, and the folders its files go to.

    A size left at None keeps what the experiment declares (evaluation N and seeds, the curve's N, the
    restoration check's and the endpoint spread's number of images, the samples a notebook asks for).
    """

    name: str
    #: ``section.key=value`` overrides applied before a config's own (``train --profile``: the user's ``--set`` wins).
    config_overrides: tuple[str, ...] = ()
    #: For the report's runs, ``config_overrides`` and then these are applied after an experiment's own (the
    #: scale's sizes win over the experiment's steps and snapshots).
    experiment_overrides: tuple[str, ...] = ()
    evaluation_n: int | None = None
    evaluation_sets: int | None = None
    curve_n: int | None = None
    restoration_n: int | None = None
    endpoint_n: int | None = None
    max_samples: int | None = None
    #: Whether the selection studies run (evaluations on their own seed, e.g. the sampler study: dozens of draws
    #: that choose a setting at full scale and mean nothing at the smoke scale's sizes).
    selection_studies: bool = True
    #: Whether evaluations may fit and draw from large trace priors: the held-out prior's mixture (up to 200
    #: components on 50,000 traces, minutes to fit) and its capacity selection; else they are left out or shrunk.
    large_priors: bool = True
    #: Whether the read accessors (``experiments.trained`` / ``metrics`` / ``curve`` / ``summary``) may train
    #: and evaluate what is missing. False: they load what is committed or stop with the make target to run.
    may_compute: bool = False
    #: Whether every file of this scale is scratch, outside the repository: runs start afresh instead of
    #: resuming, and runs, results and figures all go under :meth:`runs_root`.
    scratch: bool = False
    #: The scratch folder, when given here rather than by ``$MNIST_DIFFUSION_RUNS`` (scratch scales only).
    scratch_root: Path | None = None

    def with_scratch_root(self, root: str | os.PathLike) -> Scale:
        """This scale writing into ``root`` (e.g. a test's temporary folder)."""
        if not self.scratch:
            raise ValueError(f"the {self.name} scale writes into the repository, not a scratch folder")
        return dataclasses.replace(self, scratch_root=Path(root))

    def runs_root(self) -> Path:
        """Training runs (and sample caches): ``runs/``, or the scratch folder."""
        if not self.scratch:
            return repo_root() / "runs"
        if self.scratch_root is not None:
            return self.scratch_root
        env = os.environ.get(RUNS_ENV)
        return Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "mnist-diffusion" / "smoke"

    def results_root(self) -> Path:
        """Published weights, metrics, curves and summary: ``results/``, or ``results/`` in the scratch folder."""
        return self.runs_root() / "results" if self.scratch else repo_root() / "results"

    def figures_root(self) -> Path:
        """Figures (PDF and PNG): ``figures/``, or ``figures/`` in the scratch folder."""
        return self.runs_root() / "figures" if self.scratch else repo_root() / "figures"


#: The report's scale: everything as declared; accessors load what is committed.
FULL = Scale("full")
#: Seconds-sized runs in a scratch folder; accessors train and evaluate what is missing.
SMOKE = Scale(
    "smoke",
    config_overrides=tuple(f"{key}={value}" for key, value in SMOKE_OVERRIDES.items()),
    experiment_overrides=("train.snapshot_steps=[10, 20]", "train.sample_every=0"),  # one sample grid, at the end
    evaluation_n=100, evaluation_sets=1, curve_n=100, restoration_n=100, endpoint_n=16, max_samples=32,
    selection_studies=False, large_priors=False, may_compute=True, scratch=True,
)
SCALES: dict[str, Scale] = {scale.name: scale for scale in (FULL, SMOKE)}


def resolve_scale(scale: Scale | str | None = None) -> Scale:
    """The scale: ``scale`` itself, the one it names (``full`` | ``smoke``), else ``$MNIST_DIFFUSION_PROFILE``,
    else :data:`FULL`."""
    if isinstance(scale, Scale):
        return scale
    chosen = scale or os.environ.get(PROFILE_ENV) or FULL.name
    if chosen not in SCALES:
        raise UserError(f"unknown profile {chosen!r}; choose one of {', '.join(SCALES)}")
    return SCALES[chosen]
