"""A long draw of samples stopped midway (a session's end, ^C) resumes from its saved batches and ends with the
images and cache file an uninterrupted draw gives."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from mnist_diffusion import experiments as ex
from mnist_diffusion.cli import main
from mnist_diffusion.experiments import draws
from mnist_diffusion.training import sampling
from mnist_diffusion.training.build import build_network
from mnist_diffusion.training.checkpoint import FORMAT, save_atomic
from mnist_diffusion.training.config import load_config
from mnist_diffusion.paths import repo_root
from mnist_diffusion.training.sampling import generate, load_trained

N, BATCH = 10, 4  # three batches: 4 + 4 + 2


@pytest.fixture()
def weights(tmp_path, monkeypatch):
    """Untrained smoke-sized UNet weights (sampling does not care whether they were trained), batches of 4."""
    config = load_config(repo_root() / "configs" / "ddpm_unet.yaml", ["sample.steps=3"], scale=ex.SMOKE)
    torch.manual_seed(0)
    path = tmp_path / "ema.pt"
    save_atomic({"format": FORMAT, "config": asdict(config), "step": 0, "ema": build_network(config).state_dict()}, path)
    monkeypatch.setattr(sampling, "default_batch_size", lambda trained: BATCH)
    return path


def stop_after(monkeypatch, batches: int) -> None:
    """Make sampling stop (as ^C does) when it starts batch number ``batches`` (counting from 0)."""
    real, calls = sampling.sample_batch, []

    def counting(*args, **kwargs):
        if len(calls) == batches:
            raise KeyboardInterrupt
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sampling, "sample_batch", counting)


def test_a_stopped_draw_resumes_from_its_saved_batches_and_gives_the_uninterrupted_images(weights, tmp_path, monkeypatch):
    reference = generate(load_trained(weights), N, batch_size=BATCH, seed=7, progress=False, sampler="ddim", steps=3)
    monkeypatch.setattr(draws, "PARTIAL_SAVE_SECONDS", 0.0)  # save after every batch
    cache = tmp_path / "cache"
    with monkeypatch.context() as m:
        stop_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            ex.draw_samples(weights, ex.ddim(3), N, 7, cache, progress=False)
    (partial,) = cache.glob("*.partial.npz")
    with np.load(partial) as data:
        assert np.array_equal(data["images"], reference[:8])  # both finished batches were kept
    seeds = []
    real = sampling.sample_batch
    monkeypatch.setattr(sampling, "sample_batch", lambda *a, **k: seeds.append(k["seed"]) or real(*a, **k))
    images, seconds = ex.draw_samples(weights, ex.ddim(3), N, 7, cache, progress=False)
    assert seeds == [sampling.batch_seed(7, 2)]  # only the last batch was drawn again
    assert np.array_equal(images, reference) and seconds > 0
    assert not partial.exists() and len(list(cache.glob("*.npz"))) == 1
    assert np.array_equal(ex.draw_samples(weights, ex.ddim(3), N, 7, cache, progress=False)[0], reference)  # cached


def test_a_partial_draw_of_another_batch_size_is_drawn_again(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(draws, "PARTIAL_SAVE_SECONDS", 0.0)
    cache = tmp_path / "cache"
    with monkeypatch.context() as m:
        stop_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            ex.draw_samples(weights, ex.ddim(3), N, 7, cache, progress=False)
    monkeypatch.setattr(sampling, "default_batch_size", lambda trained: 5)  # e.g. resumed on another device
    images, _ = ex.draw_samples(weights, ex.ddim(3), N, 7, cache, progress=False)
    expected = generate(load_trained(weights), N, batch_size=5, seed=7, progress=False, sampler="ddim", steps=3)
    assert np.array_equal(images, expected)


def test_generate_rejects_a_done_prefix_that_is_not_whole_batches(weights):
    trained = load_trained(weights)
    with pytest.raises(ValueError, match="whole number of batches"):
        generate(trained, N, batch_size=BATCH, done=np.zeros((3, 28, 28), np.uint8), progress=False, sampler="ddim", steps=3)


def sample_command(weights, options, tmp_path) -> np.ndarray:
    """The images ``python -m mnist_diffusion sample`` draws with the evaluation's recorded ``sample_args``."""
    out = tmp_path / f"cli_{options.label()}.npz"
    assert main(["sample", "--checkpoint", str(weights), "--n", str(N), "--seed", "7", *options.sample_args(),
                 "--out", str(out), "--no-progress"]) == 0
    with np.load(out) as data:
        return data["images"]


@pytest.mark.parametrize("options", [ex.ddim(3, eta=1.0), ex.SampleOptions("ddim", 3, clip=False), ex.ANCESTRAL],
                         ids=lambda options: options.label())
def test_options_draw_what_they_say_and_what_their_sample_args_draw(weights, tmp_path, options):
    """Sampler options are drawn as declared (e.g. DDIM with eta = 1: fresh noise at every step), cached apart from
    other options' draws, and ``python -m mnist_diffusion sample`` with their ``sample_args`` draws the same images."""
    expected = generate(load_trained(weights), N, batch_size=BATCH, seed=7, progress=False, **options.generate_kwargs())
    drawn, _ = ex.draw_samples(weights, options, N, 7, tmp_path, progress=False)
    assert np.array_equal(drawn, expected)
    assert np.array_equal(sample_command(weights, options, tmp_path), expected)
    assert len(list(tmp_path.glob(f"*_{options.label()}_n10_seed7{'_clip' if options.clip else ''}.npz"))) == 1
    if options.sampler == "ddim":  # eta and clipping change the images, and the cache tells them apart
        plain, _ = ex.draw_samples(weights, ex.ddim(3), N, 7, tmp_path, progress=False)
        assert not np.array_equal(plain, expected) and len(list(tmp_path.glob("*_n10_seed7*.npz"))) == 2


def test_the_mixture_prior_evaluation_draws_algorithm_2_with_mixture_traces(tmp_path, monkeypatch, mnist_root):
    """Algorithm 2 with ``prior="mixture"``: the endpoints' traces come from the fitted mixture; cached apart from
    plain Algorithm 2, and drawn alike by the sample command with the recorded ``sample_args``."""
    from mnist_diffusion.cold import trace_prior

    real_fit = trace_prior.fit_gaussian_mixture
    monkeypatch.setattr(trace_prior, "fit_gaussian_mixture", lambda z, k: real_fit(z[:2_000], k, iterations=5))
    config = load_config(repo_root() / "configs" / "cold_palimpsest_trace.yaml", scale=ex.SMOKE)
    torch.manual_seed(0)
    path = tmp_path / "ema.pt"
    save_atomic({"format": FORMAT, "config": asdict(config), "step": 0, "ema": build_network(config).state_dict()}, path)
    monkeypatch.setattr(sampling, "default_batch_size", lambda trained: BATCH)
    options = {"batch_size": BATCH, "seed": 7, "progress": False, "sampler": "alg2"}
    mixture = generate(load_trained(path), N, prior="mixture", **options)
    training = generate(load_trained(path), N, **options)
    assert not np.array_equal(mixture, training)
    mixture_prior = ex.SampleOptions("alg2", prior="mixture")
    assert np.array_equal(ex.draw_samples(path, mixture_prior, N, 7, tmp_path, progress=False)[0], mixture)
    assert np.array_equal(ex.draw_samples(path, ex.ALG2, N, 7, tmp_path, progress=False)[0], training)
    assert len(list(tmp_path.glob("*_alg2-mixtureprior_n10_seed7_clip.npz"))) == 1
    assert np.array_equal(sample_command(path, mixture_prior, tmp_path), mixture)


def test_held_out_prior_draws_are_named_by_the_selected_component_count(tmp_path, monkeypatch):
    """A new capacity selection (HELD_OUT_COMPONENTS) must not reuse draws from the old held-out prior; the
    other priors' file names do not depend on it."""
    from mnist_diffusion.cold.trace_prior import MixtureTraces

    config = load_config(repo_root() / "configs" / "cold_palimpsest_trace.yaml", scale=ex.SMOKE)
    path = tmp_path / "ema.pt"
    save_atomic({"format": FORMAT, "config": asdict(config), "step": 0, "ema": {}}, path)
    heldout, mixture = ex.SampleOptions("alg2", prior="heldout"), ex.SampleOptions("alg2", prior="mixture")
    cell = config.cold.trace_cell
    names = {}
    for components in (200, 400):
        monkeypatch.setitem(MixtureTraces.HELD_OUT_COMPONENTS, cell, components)
        names[components] = (draws.sample_file(path, heldout, 100, 0, tmp_path).name,
                             draws.sample_file(path, mixture, 100, 0, tmp_path).name)
    assert names[200][0].endswith("_alg2-heldoutprior_n100_k200_seed0_clip.npz")
    assert names[400][0].endswith("_alg2-heldoutprior_n100_k400_seed0_clip.npz")
    assert names[200][1] == names[400][1] and "_k" not in names[200][1]
