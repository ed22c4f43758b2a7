"""scripts/run_notebooks.py (what `make figures` runs): progress per cell, executed copies, failures reported."""

import importlib.util

import nbformat
import pytest

from mnist_diffusion.paths import repo_root


def load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", repo_root() / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a title")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


@pytest.mark.slow
def test_runner_shows_each_cell_echoes_stderr_and_keeps_the_executed_copy(tmp_path, capsys):
    runner = load_runner()
    good, bad = tmp_path / "01_good.ipynb", tmp_path / "02_bad.ipynb"
    write_notebook(good, "import sys\nprint('progress 50%', file=sys.stderr)", "x = 6 * 7\nx")
    write_notebook(bad, "raise RuntimeError('broken cell')")
    out = tmp_path / "executed"
    assert runner.main([str(good), "--output-dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/1 01_good] cell 1/2: import sys" in captured.out and "[1/1 01_good] cell 2/2: x = 6 * 7" in captured.out
    assert "progress 50%" in captured.err  # the kernel's stderr, echoed live
    executed = nbformat.read(out / "01_good.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["data"]["text/plain"] == "42"
    assert nbformat.read(good, as_version=4).cells[2].outputs == []  # the source notebook is left as it was

    assert runner.main([str(good), str(bad), "--output-dir", str(out)]) == 1
    captured = capsys.readouterr()
    assert "[2/2 02_bad] FAILED" in captured.err and "broken cell" in captured.err
    assert "RuntimeError" in str(nbformat.read(out / "02_bad.ipynb", as_version=4).cells[1].outputs)


@pytest.mark.slow
def test_runner_reports_a_user_error_as_its_one_line(tmp_path, capsys):
    """A notebook stopped by a UserError (a committed result missing: run its make target) shows that line alone."""
    runner = load_runner()
    notebook = tmp_path / "03_missing.ipynb"
    write_notebook(notebook, "from mnist_diffusion.errors import UserError\n"
                             "raise UserError('results/ddpm_unet/ema.pt is missing: run `make train-unet`')")
    assert runner.main([str(notebook), "--output-dir", str(tmp_path / "executed")]) == 1
    err = capsys.readouterr().err
    assert "[1/1 03_missing] stopped: results/ddpm_unet/ema.pt is missing: run `make train-unet`" in err
    assert "Traceback" not in err and "FAILED" not in err
