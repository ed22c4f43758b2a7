"""The copying check: distributions of distances, and the source digits of samples started from training traces."""

from types import SimpleNamespace

import numpy as np
import torch

from mnist_diffusion.cold.degradations.palimpsest import TracedPalimpsest
from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.cold.trace_prior import MixtureTraces, TrainingTraces
from mnist_diffusion.experiments.copying import BINS, distribution, source_digits
from mnist_diffusion.experiments.registry import SampleOptions
from mnist_diffusion.diffusion.common import make_generator
from mnist_diffusion.training.sampling import batch_seed, generate


def test_distribution_counts_quantiles_and_clips_into_the_bins():
    values = np.array([0.1, 0.2, 5.0, 5.1, 100.0])
    d = distribution(values)
    assert d["n"] == 5 and d["mean"] == values.mean() and d["quantiles"]["q50"] == 5.0 and set(d["quantiles"]) == {"q5", "q25", "q50", "q75", "q95"}
    assert sum(d["counts"]) == 5 and d["counts"][-1] == 1  # 100 lands in the last bin
    assert d["counts"][np.searchsorted(BINS, 5.0, side="right") - 1] == 2


def test_source_digits_are_the_training_digits_whose_traces_started_each_sample():
    """Redrawn without the network, the states give the same endpoints x_T that generation's restorer saw."""
    torch.manual_seed(0)
    traces = torch.rand(50, 1, 4, 4)  # 50 distinct "training" traces
    cold = ColdDiffusion(TracedPalimpsest(T=3, prior=TrainingTraces(traces)))
    seen = []

    def restorer(x, t):
        if t[0] == 1.0:  # t / T = 1: the first call of each batch sees x_T
            seen.append(x.clone())
        return torch.zeros_like(x)

    trained = SimpleNamespace(network=restorer, process=cold)
    generate(trained, 10, batch_size=4, seed=2, progress=False, sampler="alg2")
    sources = source_digits(trained, SampleOptions("alg2"), 10, seed=2, batch_size=4)
    assert sources.shape == (10,) and sources.dtype == np.int64 and len(set(sources.tolist())) > 1
    redrawn = []
    for index, start in enumerate(range(0, 10, 4)):  # generation's batches, each state drawn first from its seed
        state = cold.degradation.sample_state(min(4, 10 - start), make_generator(batch_seed(2, index), "cpu"))
        assert np.array_equal(state["source"].numpy(), sources[start : start + 4])
        assert torch.equal(state["trace"], traces[state["source"]])
        redrawn.append(cold.degradation.endpoint(state))
    assert torch.equal(torch.cat(redrawn), torch.cat(seen))  # the x_T generation's restorer was handed
    # a prior that uses no training image has no source digits
    mixture = cold.degradation.with_prior(MixtureTraces.fit(traces, components=2))
    no_source = SimpleNamespace(network=restorer, process=ColdDiffusion(mixture))
    assert source_digits(no_source, SampleOptions("alg2"), 10, seed=2, batch_size=4) is None


def test_the_copying_check_uses_the_samples_the_notebooks_show():
    from mnist_diffusion import experiments as ex
    from mnist_diffusion.experiments.registry import COPYING_N

    assert COPYING_N == ex.SHOWN_SAMPLES
    traced = ex.get_experiment("cold_palimpsest_trace").copying_options()
    assert traced[0] == ex.ALG2 and all(o.sampler == "alg2" for o in traced) and len(traced) == len(set(traced)) > 1
    heldout = SampleOptions("alg2", prior="heldout")
    # the smoke scale checks only what it evaluates: not the selection seed's held-out prior (a fit of minutes)
    assert heldout in traced and heldout not in ex.get_experiment("cold_palimpsest_trace").copying_options(ex.SMOKE)
    assert ex.get_experiment("ddpm_unet").copying_options() == [ex.get_experiment("ddpm_unet").evaluations[0].options]
    assert ex.get_experiment("study_lr").copying_options() == []


def test_distance_histograms_plot_each_distributions_shares_in_one_colour_across_panels():
    from mnist_diffusion.reporting import plots

    counts = {"a": [1, 3, 0, 0], "b": [0, 2, 2, 0]}
    fig = plots.distance_histograms({"left": counts, "right": {"b": [0, 0, 1, 1]}}, np.linspace(0, 4, 5), "distance",
                                    threshold=1.5)
    left, right = fig.axes
    heights = {line.get_label(): line.get_ydata() for line in left.get_lines() if not line.get_label().startswith("_")}
    assert list(heights["a"]) == [0.25, 0.75, 0.0, 0.0] and list(heights["b"]) == [0.0, 0.5, 0.5, 0.0]
    colour = lambda ax, name: next(l.get_color() for l in ax.get_lines() if l.get_label() == name)  # noqa: E731
    assert colour(left, "b") == colour(right, "b") != colour(left, "a")
    assert any(list(line.get_xdata()) == [1.5, 1.5] for line in right.get_lines())  # the threshold in each panel


def test_copying_panels_put_every_check_beside_the_test_digits_and_the_source_panel_apart():
    from mnist_diffusion.reporting.figures import copying_panels

    check = lambda counts, **extra: {"nearest": {"counts": counts}, "test_nearest": {"counts": [9]}, "threshold": 1.2,  # noqa: E731
                                     **extra}
    checks = {"ddpm_unet": {"ddim-50": check([1])},
              "cold_palimpsest_trace": {"alg2": check([2], source={"counts": [3]}), "alg2-heldoutprior": check([4])}}
    panels, threshold = copying_panels(checks, {"ddpm_unet": "DDPM", "cold_palimpsest_trace": "trace"})
    assert threshold == 1.2
    assert panels["nearest training image"] == {"test digits": [9], "DDPM": [1], "trace, from training traces": [2],
                                                "trace, held-out mixture prior": [4]}
    assert panels["from training traces"] == {"test digits": [9], "trace, from training traces": [2],
                                              "its source digit": [3]}
    assert copying_panels({"ddpm_unet": checks["ddpm_unet"]}, {"ddpm_unet": "DDPM"}) is None
