"""Data-parallel training under torchrun (2 CPU processes, gloo) matches one process with the same global batch."""

import json
import shutil
import sys

import pytest
from fault_helpers import assert_same_weights, final_state, run, write_config

from mnist_diffusion.training.config import load_config
from mnist_diffusion.training.loop import train


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_trajectory(mnist_root, tmp_path):
    config = write_config(tmp_path, steps=6, batch_size=16)
    single = train(load_config(config), tmp_path / "single", progress=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "mnist_diffusion", "train", "--config", str(config), "--out", str(tmp_path / "ddp"), "--no-progress"]
    result = run(command, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert losses(tmp_path / "ddp") == pytest.approx(losses(single), rel=1e-4)
    # Weights agree to float tolerance scaled by Adam: its normalised step m / sqrt(v) turns float-level
    # differences in near-zero gradient components (e.g. conv biases just before a GroupNorm) into steps of
    # up to lr = 1e-3, so 6 steps may differ by a few 1e-3 there and by ~1e-6 elsewhere.
    assert_same_weights(final_state(single), final_state(tmp_path / "ddp"), exact=False, atol=6e-3)

    # The DDP checkpoint resumes in one process (same format) and keeps following the single-process run.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ddp", resumed)
    longer = write_config(tmp_path, steps=8, batch_size=16)
    train(load_config(longer), resumed, resume=True, progress=False)
    reference = train(load_config(longer), tmp_path / "single8", progress=False)
    assert final_state(resumed)["step"] == 8
    assert losses(resumed) == pytest.approx(losses(reference), rel=1e-2)


def test_batch_must_split_evenly_across_processes():
    from mnist_diffusion.training.distributed import DistInfo, shard_bounds
    from mnist_diffusion.errors import UserError

    assert shard_bounds(16, DistInfo(1, 2, 1)) == (8, 16)
    with pytest.raises(UserError, match="divisible by the number of processes"):
        shard_bounds(15, DistInfo(0, 2, 0))
