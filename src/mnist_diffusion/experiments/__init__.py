"""The report's experiments as named, resumable runs: what each trains, how it is evaluated, where results go.

Every number in the report comes from one of these runs. A run is a config file plus ``--set`` style overrides;
training writes to ``runs/<name>/`` (scratch, resumable), evaluation to ``results/<name>/`` (committed):

- ``ema.pt``: the final weights the evaluations used (EMA weights; the baseline keeps none, so its raw weights),
  with ``log.jsonl`` (the training log) and ``config.yaml``;
- ``metrics.json``: ``{"name", "config", "training": {steps, train_seconds, images_seen, hardware}, "headline",
  "evaluations": {key: evaluate()'s result + options, sample_args, sampling seconds}}``, keyed by
  :func:`evaluation_key` of each evaluation's sampler options (e.g. ``ddim-50_n10000``, ``ddim-50-eta1_n2000``);
  ``sample_args`` are the ``python -m mnist_diffusion sample`` arguments that draw its samples;
- ``curve.json`` (final DDPM runs): classifier-FID at N = 2,000 of the snapshots kept during training, against
  training seconds and images seen (quality per compute). ``ends_at_published_weights`` says whether the last
  snapshot is ``ema.pt``; where it is not (a second run of the recipe drew the curve), ``curve_run_log.jsonl`` is
  that run's training log.

``results/summary.json`` gathers the headline numbers, the hyperparameter study and the curves for the notebooks
and the report. The package is split by what each part does:

- :mod:`.registry`: what each run is (:class:`Experiment`, :data:`EXPERIMENTS`, the study, the evaluations as
  :class:`SampleOptions` with N and seeds) and where its files live;
- :mod:`.running`: the code that writes (train, evaluate, curve, summarise), run by the make targets;
- :mod:`.results`: read-only access for the notebooks and the report (:func:`trained`, :func:`metrics`,
  :func:`curve`, :func:`summary`, ...), which never computes hours of work unless asked to;
- :mod:`.draws`: samples drawn from a run's weights, cached and resumable.

Everything takes a :class:`~mnist_diffusion.scale.Scale` (or its name; default ``$MNIST_DIFFUSION_PROFILE``):
under the smoke scale everything shrinks to seconds and goes to a scratch folder outside the repository.
"""

from mnist_diffusion.experiments.draws import PARTIAL_SAVE_SECONDS, draw_samples, sample_file, weights_digest
from mnist_diffusion.experiments.registry import (
    ALG1, ALG2, ANCESTRAL, COLD_EVALUATIONS, CURVE_METRICS, CURVE_N, CURVE_SEED, CURVE_STEPS, DIRECT, ENDPOINT_N,
    EXPERIMENTS, FINAL_DDPM_EVALUATIONS, GROUPS, HEADLINES, PILOT_BUDGET_TFLOP, PILOT_CONTROL, PILOT_EVALUATIONS, PILOTS,
    RESTORATION_N, SAMPLER_STUDY_CALLS, SAMPLER_STUDY_EVALUATIONS, SELECTION_SEED, TRAINING_NOISE, VARIANT_EVALUATIONS,
    VARIANTS,
    STOCHASTIC_DDIM_EVALUATIONS, STUDY_EVALUATIONS,
    STUDY_FACTORS, STUDY_START, STUDY_STEPS, TRACE_PRIOR_EVALUATIONS, UNET_CURVE_STEPS, Evaluation, Experiment,
    SampleOptions, data_free, ddim, dpm_solver, evaluation_key, experiment_config, experiment_names, get_experiment,
    key_seed, parse_evaluation_key,
    published_weights, results_dir, run_dir,
)
from mnist_diffusion.experiments.results import (
    SHOWN_SAMPLES, curve, curve_label, curve_options, fid_by_steps, final_curve_point, metrics, sampler_label,
    samples, summary, trained, training_log,
)
from mnist_diffusion.experiments.running import (
    INCEPTION_KEY, curve_experiment, endpoint_spread, evaluate_experiment, hardware, inception_fid_row,
    publish_weights, require_inception, restoration, same_ema_weights, summarise, take_snapshot, train_experiment,
    weights_path,
)
from mnist_diffusion.scale import FULL, SMOKE, Scale, resolve_scale

__all__ = [
    "ALG1", "ALG2", "ANCESTRAL", "COLD_EVALUATIONS", "CURVE_METRICS", "CURVE_N", "CURVE_SEED", "CURVE_STEPS",
    "DIRECT", "ENDPOINT_N", "EXPERIMENTS", "FINAL_DDPM_EVALUATIONS", "FULL", "GROUPS", "HEADLINES", "INCEPTION_KEY",
    "PILOT_BUDGET_TFLOP", "PILOT_CONTROL", "PILOT_EVALUATIONS", "PILOTS", "TRAINING_NOISE", "VARIANT_EVALUATIONS",
    "VARIANTS",
    "PARTIAL_SAVE_SECONDS", "RESTORATION_N", "SAMPLER_STUDY_CALLS", "SAMPLER_STUDY_EVALUATIONS", "SELECTION_SEED",
    "SHOWN_SAMPLES", "SMOKE", "STOCHASTIC_DDIM_EVALUATIONS",
    "STUDY_EVALUATIONS", "STUDY_FACTORS", "STUDY_START", "STUDY_STEPS", "TRACE_PRIOR_EVALUATIONS",
    "UNET_CURVE_STEPS", "Evaluation", "Experiment", "SampleOptions", "Scale", "curve", "curve_experiment",
    "curve_label", "curve_options", "data_free", "ddim", "dpm_solver", "draw_samples", "endpoint_spread",
    "evaluate_experiment",
    "evaluation_key",
    "experiment_config", "experiment_names", "fid_by_steps", "final_curve_point", "get_experiment", "hardware",
    "inception_fid_row", "key_seed", "metrics", "parse_evaluation_key", "publish_weights", "published_weights",
    "require_inception", "resolve_scale", "restoration", "results_dir", "run_dir", "same_ema_weights",
    "sample_file", "sampler_label", "samples", "summarise", "summary", "take_snapshot", "train_experiment",
    "trained", "training_log", "weights_digest", "weights_path",
]
