"""The report's numbers come from the results JSON, its figures from the notebooks, and the notebooks stay thin."""

import copy
import json
import re
from pathlib import Path

import pytest

from mnist_diffusion.experiments import HEADLINES
from mnist_diffusion.reporting import report_tables as rt
from mnist_diffusion.paths import repo_root

REPO = repo_root()
DEFRESULT = re.compile(r"^\\defresult\{(?P<key>[^}]*)\}\{(?P<value>[^}]*)\}% (?P<source>.*)$")


def follow(summary: dict, path: str):
    """Value at a dotted JSON path such as ``models.ddpm_unet.evaluations.ddim-50_n10000.metrics.fid.value``;
    evaluation keys contain no dots, so splitting on dots is exact."""
    node = summary
    for part in path.split("."):
        node = node[part]
    return node


def synthetic_summary() -> dict:
    def evaluation(fid, n, sets, sampler, steps):
        metrics = {"fid": {"value": fid, "std": 0.1 * fid if sets > 1 else None, "floor": 2.6, "floor_std": 0.38},
                   "precision": {"value": 0.81234, "std": 0.004, "floor": 0.866, "floor_std": 0.002}}
        return {"sampler": sampler, "steps": steps, "n": n, "sets": sets, "sampling_seconds": [12.5] * sets,
                "metrics": metrics}

    def model(fid):
        return {"description": "x", "headline": "ddim-50_n10000",
                "training": {"steps": 14063, "train_seconds": 7200.0, "images_seen": 1800064,
                             "hardware": {"cores": 2, "torch_threads": 1}},
                "evaluations": {"ddim-50_n10000": evaluation(fid, 10000, 3, "ddim", 50),
                                "ddim-50_n2000": evaluation(fid * 1.1, 2000, 1, "ddim", 50),
                                "ancestral_n2000": evaluation(fid, 2000, 1, "ancestral", None)},
                "restoration": None,
                "curve": [{"step": 1000, "train_seconds": 600.0, "fid": fid * 3},
                          {"step": 14063, "train_seconds": 7200.0, "fid": fid}]}

    return {"format": "mnist-diffusion-summary/1", "study_steps": 1000,
            "models": {"ddpm_baseline": model(20.0), "ddpm_unet": model(4.0)},
            "study": {"study_recipe": model(9.0), "study_ema": model(12.5)},
            "floors": {"10000": {"fid": {"value": 2.603, "std": 0.381}}}}


@pytest.mark.parametrize("value, text", [(2.6031, "2.60"), (0.26113, "0.261"), (12.345, "12.3"), (1234.6, "1\\,235"), (-4888.9, "-4\\,889"),
                                         (14063, "14\\,063"), (0.0, "0"), (None, "--"), (-0.2456, "-0.246")])
def test_format_value(value, text):
    assert rt.format_value(value) == text
    if value is not None:
        assert rt.parse_value(text) == pytest.approx(value, abs=half_last_digit(text))


@pytest.mark.parametrize("value, std, texts", [
    (85.5213, 0.574, ("85.52", "0.57")), (0.58896, 0.00869, ("0.5890", "0.0087")), (0.2611, 0.672, ("0.26", "0.67")),
    (4888.9, 22.4, ("4\\,889", "22")), (297.3, 19.2, ("297", "19")), (0.5, 0.0996, ("0.50", "0.10")),
    (2.6, None, ("2.60", "--")), (0.0008, 0.0, ("0.000800", "0"))])
def test_format_with_std_rounds_the_mean_to_the_std(value, std, texts):
    assert rt.format_with_std(value, std) == texts


def half_last_digit(text: str) -> float:
    """Half a unit of the last printed digit: how far a correctly rounded print may be from the value."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals * (1 + 1e-9)


def check_results_tex(text: str, summary: dict) -> int:
    """Every \\defresult whose source is a JSON path prints that path's value; returns how many were checked."""
    checked = 0
    for line in text.splitlines():
        match = DEFRESULT.match(line)
        if not match or match["source"].startswith("formula:") or match["value"] == "--":
            continue  # comments, and derived numbers (their source is a formula, checked separately)
        expected = follow(summary, match["source"])
        assert rt.parse_value(match["value"]) == pytest.approx(expected, abs=half_last_digit(match["value"])), match["key"]
        checked += 1
    return checked


def test_every_number_equals_its_json_source_in_a_synthetic_summary():
    summary = synthetic_summary()
    text = rt.collect(summary).tex()
    assert check_results_tex(text, summary) > 50
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, text.splitlines()) if m}
    # derived numbers, recomputed independently
    assert rt.parse_value(values["derived/ddpm_unet/fidratio"]) == pytest.approx(4.0 / 2.6, rel=5e-3)
    assert rt.parse_value(values["derived/unetreachesbaselinefraction"]) == pytest.approx(600 / 7200, rel=5e-3)
    assert rt.parse_value(values["derived/study_ema/fidchange"]) == pytest.approx(3.5, rel=5e-3)
    assert rt.parse_value(values["derived/ddpm_unet/ddimvsancestralpct"]) == pytest.approx(10.0, rel=5e-3)
    assert "derived/ddpm_unet/ddim-eta1vsancestralpct" not in values  # not evaluated in this summary
    assert rt.parse_value(values["ddpm_unet/headline/msperimage"]) == pytest.approx(1000 * 37.5 / 30000, rel=5e-3)
    assert values["ddpm_unet/train/steps"] == "14\\,063"
    # the curve's point at half the training (the first snapshot at or past step 14063 / 2) and its end
    assert (values["derived/ddpm_unet/curve/halfstep"], values["derived/ddpm_unet/curve/halffid"]) == ("14\\,063", "4.00")
    summary["models"]["ddpm_unet"]["curve"].insert(1, {"step": 7032, "train_seconds": 3600.0, "fid": 6.5})
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    assert (values["derived/ddpm_unet/curve/halfstep"], values["derived/ddpm_unet/curve/halffid"]) == ("7\\,032", "6.50")
    assert values["derived/ddpm_unet/curve/finalfid"] == "4.00"
    summary["models"]["ddpm_unet"]["evaluations"]["ddim-50_n10000"]["label_shares"] = [0.09] * 8 + [0.18, 0.10]
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    assert (values["derived/ddpm_unet/topdigit"], values["derived/ddpm_unet/topsharepct"]) == ("8", "18.0")


def test_baseline_without_a_curve_uses_its_final_evaluation_under_the_curve_protocol():
    summary = synthetic_summary()
    base = summary["models"]["ddpm_baseline"]
    base["curve"] = None
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    assert "derived/unetreachesbaselinefraction" not in values  # the evaluation's seeds are unknown: no claim
    base["evaluations"]["ddim-50_n2000"]["seeds"] = [0]
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    # the baseline's final point is its ddim-50_n2000 FID (20 * 1.1 = 22) at its 7,200 training seconds; the
    # recipe's first curve point at or below 22 is 4 * 3 = 12, after 600 s
    assert rt.parse_value(values["derived/baselinefinalfid"]) == pytest.approx(22.0, rel=5e-3)
    assert rt.parse_value(values["derived/unetreachesbaselinefraction"]) == pytest.approx(600 / 7200, rel=5e-3)
    base["evaluations"]["ddim-50_n2000"]["seeds"] = [1]  # another seed than the curve's: not comparable
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    assert "derived/baselinefinalfid" not in values


def test_a_baseline_curve_from_a_second_run_is_set_beside_the_published_run():
    summary = synthetic_summary()
    base = summary["models"]["ddpm_baseline"]
    base["curve"][-1].update(train_seconds=5400.0, fid=21.0)  # a second run: its own time and FID
    base["evaluations"]["ddim-50_n2000"]["seeds"] = [0]

    def values():
        return {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}

    # the compute comparison uses the run the curve measured: its FID (21) and its 1.5 hours
    got = values()
    assert rt.parse_value(got["derived/baselinefinalfid"]) == pytest.approx(21.0, rel=5e-3)
    assert rt.parse_value(got["derived/baselinehours"]) == pytest.approx(1.5, rel=5e-3)
    assert rt.parse_value(got["derived/unetreachesbaselinefraction"]) == pytest.approx(600 / 5400, rel=5e-3)
    assert "derived/baselinepublishedfid" not in got  # nothing says the curve is another run
    base["curve_ends_at_published_weights"] = False
    # the published weights' number under the curve's protocol (20 * 1.1), for the text to set beside 21
    assert rt.parse_value(values()["derived/baselinepublishedfid"]) == pytest.approx(22.0, rel=5e-3)
    base["curve_ends_at_published_weights"] = True
    assert "derived/baselinepublishedfid" not in values()


def with_headline_ddpm(summary: dict) -> tuple[dict, str]:
    """The synthetic summary with its recipe's record also under the headline DDPM run's name (the DDPM targets
    follow HEADLINES["ddpm"]), and that name."""
    run = HEADLINES["ddpm"][0]
    summary["models"].setdefault(run, summary["models"]["ddpm_unet"])
    return summary, run


def test_target_verdicts_follow_the_raw_numbers():
    summary, run = with_headline_ddpm(synthetic_summary())
    verdicts = {key: verdict for _, key, verdict in rt.target_verdicts(rt.collect(summary))}
    # precision 0.81234 against a floor of 0.866: 0.054 below, outside 0.05
    assert verdicts[f"derived/{run}/precisiongap"] == "missed"
    # the recipe's curve reaches 20.0 (the baseline's final FID) at 4.0 * 3 = 12 after 600 s of the baseline's 7200 s
    assert verdicts["derived/unetreachesbaselinefraction"] == "met"
    assert verdicts[f"{run}/headline/confident_share"] == "not measured"  # not in the synthetic metrics
    assert verdicts["derived/cold_palimpsest/minsharepct"] == "not measured"
    head = summary["models"]["ddpm_unet"]["evaluations"]["ddim-50_n10000"]
    head["metrics"]["precision"]["value"] = 0.83
    head["label_shares"] = [0.1] * 9 + [0.0]
    summary["models"]["cold_palimpsest"] = summary["models"]["ddpm_unet"]
    verdicts = {key: verdict for _, key, verdict in rt.target_verdicts(rt.collect(summary))}
    assert verdicts[f"derived/{run}/precisiongap"] == "met"
    assert verdicts["derived/cold_palimpsest/minsharepct"] == "missed"  # one digit never drawn
    assert (f"| DDPM headline ({rt.MODEL_LABELS[run]}): precision within 0.05 of the real data's | -0.0360 | met |"
            in rt.readme_results(summary))


def test_the_inception_budget_target_reads_the_budget_snapshot():
    """The quality-per-compute target: Inception-FID of the headline DDPM's last snapshot within the training budget,
    scored at the headline's N (curve.json's budget, in the summary as curve_budget); not measured without it."""
    summary, run = with_headline_ddpm(synthetic_summary())
    key = f"{run}/curve/budget/inception_fid"
    assert dict((k, v) for _, k, v in rt.target_verdicts(rt.collect(summary)))[key] == "not measured"
    summary["models"][run]["curve_budget"] = {"step": 30000, "train_seconds": 3.5 * 3600, "images_seen": 1, "n": 10000,
                                              "seed": 0, "fid": 3.0, "fid_floor": 2.5, "inception_fid": 5.5,
                                              "inception_floor": 1.5}
    values = rt.collect(summary).values
    assert (values[key], values[f"{key}/floor"], values[f"{run}/curve/budget/hours"]) == (5.5, 1.5, 3.5)
    assert (values[f"{run}/curve/budget/step"], values[f"{run}/curve/budget/fid/floor"]) == (30000, 2.5)
    assert dict((k, v) for _, k, v in rt.target_verdicts(rt.collect(summary)))[key] == "missed"
    summary["models"][run]["curve_budget"]["inception_fid"] = 4.9
    assert dict((k, v) for _, k, v in rt.target_verdicts(rt.collect(summary)))[key] == "met"


def test_tables_hold_no_typed_numbers(tmp_path):
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps(synthetic_summary()))
    paths = rt.write_report_tables(summary_path, tmp_path / "generated")
    for path in paths:
        assert not re.search(r"[\x00-\x08\x0b-\x1f]", path.read_text()), f"{path.name}: a control character"
        if path.name == "results.tex":
            continue
        body = path.read_text().split("\\midrule", 1)[1].split("\\bottomrule")[0]
        for row in body.strip().splitlines():
            data_cells = re.sub(r"\\res\{[^}]*\}", "", " & ".join(row.split(" & ")[1:]))  # after the row label
            assert not re.search(r"\d", data_cells), f"{path.name}: a typed number in {row!r}"


def test_committed_generated_tex_matches_committed_results(tmp_path):
    summary_path = REPO / "results" / "summary.json"  # committed: the report is built from it
    summary = json.loads(summary_path.read_text())
    committed = (REPO / "report" / "generated" / "results.tex").read_text()
    check_results_tex(committed, summary)
    fresh = rt.write_report_tables(summary_path, tmp_path)
    for path in fresh:
        assert path.read_text() == (REPO / "report" / "generated" / path.name).read_text(), \
            f"report/generated/{path.name} is stale: run make report-tables"


def test_readme_results_section_prints_the_headline_numbers(tmp_path):
    summary = synthetic_summary()
    section = rt.readme_results(summary, root=tmp_path)
    assert section.startswith("<!-- results:start -->") and section.endswith("<!-- results:end -->")
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ")[1:] for line in section.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["metric"] == ["DDPM baseline", "DDPM, our recipe", "real data (floor)"]
    for cell, (value, std) in zip(rows["classifier-FID"], [(20.0, 2.0), (4.0, 0.4), (2.603, 0.381)]):
        printed_value, printed_std = cell.split(" ± ")
        assert float(printed_value) == pytest.approx(value, abs=half_last_digit(printed_value))
        assert float(printed_std) == pytest.approx(std, abs=half_last_digit(printed_std))
    assert rows["precision"][:2] == ["0.8123 ± 0.0040"] * 2
    assert rows["precision"][2].startswith("0.866")  # no committed floor: the one recorded with the evaluation
    assert "ddim-50 (10,000 samples x 3 seeds)" in section and "![" not in section  # no key figure in tmp_path
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "fidelity_samples.png").write_bytes(b"png")
    assert f"]({rt.KEY_FIGURE})" in rt.readme_results(summary, root=tmp_path)
    empty = rt.readme_results({"models": {}, "study": {}}, root=tmp_path)
    assert "No final model has been evaluated yet" in empty and "|" not in empty


def test_report_tables_rewrite_only_the_readme_results_section(tmp_path):
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps(synthetic_summary()))
    readme = tmp_path / "README.md"
    readme.write_text("# t\n\nbefore\n<!-- results:start -->\nSTALE TEXT\n<!-- results:end -->\nafter\n")
    rt.write_report_tables(summary_path, tmp_path / "generated", readme_path=readme)
    text = readme.read_text()
    assert text.startswith("# t\n\nbefore\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\nafter\n")
    assert "STALE TEXT" not in text and "| classifier-FID |" in text
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- results:start -->"):
        rt.write_report_tables(summary_path, tmp_path / "generated", readme_path=readme)


def test_committed_readme_results_section_is_up_to_date():
    from mnist_diffusion.reporting import readme

    summary_path = REPO / "results" / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"models": {}, "study": {}}
    assert readme.section((REPO / "README.md").read_text(), "results") == rt.readme_results(summary), \
        "the README's results section is stale: run make report-tables"


def report_sources() -> str:
    """The hand-written LaTeX of the report, comments removed."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "report").rglob("*.tex")) if "generated" not in p.parts)
    return re.sub(r"(?<!\\)%.*", "", text)


def figure_names_saved_by_notebooks() -> set[str]:
    names = set()
    for notebook in sorted((REPO / "notebooks").glob("[0-9]*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            names.update(re.findall(r'save_figure\(\w+, "([a-z0-9_]+)"\)', "".join(cell["source"])))
    return names


def test_every_report_figure_is_saved_by_a_notebook():
    used = set(re.findall(r"\\fig\{([a-z0-9_]+)\}", report_sources()))
    assert used, "the report includes no figures"
    missing = used - figure_names_saved_by_notebooks()
    assert not missing, f"figures the report includes but no notebook saves: {sorted(missing)}"


def test_every_report_figure_exists_and_every_run_is_in_the_summary():
    summary = json.loads((REPO / "results" / "summary.json").read_text())
    assert set(summary["models"]) >= set(rt.MODEL_LABELS) and len(summary["study"]) == 6
    used = set(re.findall(r"\\fig\{([a-z0-9_]+)\}", report_sources()))
    missing = [name for name in used if not (REPO / "figures" / f"{name}.pdf").is_file()]
    assert not missing, f"figures not generated (make figures): {missing}"
    keys = set(re.findall(r"\\res\{([^}]*)\}", report_sources()))
    keys |= {k for p in (REPO / "report" / "generated").glob("*.tex") for k in re.findall(r"\\res\{([^}]*)\}", p.read_text())}
    defined = set(re.findall(r"\\defresult\{([^}]*)\}", (REPO / "report" / "generated" / "results.tex").read_text()))
    assert keys <= defined, f"numbers the report prints but results.tex lacks: {sorted(keys - defined)}"


def test_notebooks_are_thin_and_clean():
    notebooks = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
    assert [p.name[:2] for p in notebooks] == ["01", "02", "03", "04"]
    for notebook in notebooks:
        cells = json.loads(notebook.read_text())["cells"]
        assert cells[0]["cell_type"] == "markdown"
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            lines = [line for line in "".join(cell["source"]).splitlines() if line.strip() and not line.strip().startswith("#")]
            assert len(lines) <= 15, f"{notebook.name}: a code cell of {len(lines)} lines belongs in the package"
            assert not cell["outputs"], f"{notebook.name}: commit notebooks without outputs (make figures runs them)"


def cold_rows(table: str) -> dict[str, list[str]]:
    """The cold table's body as {row label: data cells}."""
    body = table.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    rows = [row.strip().removesuffix("\\\\").strip() for row in body.split("\\addlinespace")]
    return {row.split(" & ")[0]: row.split(" & ")[1:] for row in rows if row}


def test_cold_table_shows_the_endpoint_spread_when_measured():
    summary = synthetic_summary()
    cold = {**summary["models"]["ddpm_unet"], "endpoint": {"n": 256, "estimates": 0.02138, "test_images": 0.5512}}
    summary["models"]["cold_palimpsest"] = summary["models"]["cold_blur"] = summary["models"]["ddpm_unet"]
    results = rt.collect(summary)
    assert "endpoint" not in rt.cold_table(results, summary)
    summary["models"]["cold_palimpsest"] = cold
    results = rt.collect(summary)
    table = rt.cold_table(results, summary)
    assert "\\makecell[b]{spread\\\\$N = \\res{cold_palimpsest/endpoint/n}$}" in table  # the group names its N
    rows = cold_rows(table)
    assert rows["palimpsest"][-1] == ("\\makecell[r]{\\res{cold_palimpsest/endpoint/estimates}\\\\"
                                      "(\\res{cold_palimpsest/endpoint/testimages})}")
    assert rows["blur"][-1] == "--"  # the blur model has no endpoint record
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, results.tex().splitlines()) if m}
    assert (values["cold_palimpsest/endpoint/estimates"], values["cold_palimpsest/endpoint/testimages"]) == ("0.0214", "0.551")


def test_cold_table_restores_each_model_from_its_own_half_and_full_T():
    summary = synthetic_summary()

    def restoration(T):
        return {f"t{t}": {"t_start": t, "n": 2000, "l1_degraded": 0.3 + t / 1000, "l1_restored": 0.01 * t}
                for t in (T // 2, T)}
    summary["models"]["cold_palimpsest"] = {**copy.deepcopy(summary["models"]["ddpm_unet"]), "restoration": restoration(50)}
    summary["models"]["cold_blur"] = {**copy.deepcopy(summary["models"]["ddpm_unet"]), "restoration": restoration(40)}
    table = rt.cold_table(rt.collect(summary), summary)
    rows = cold_rows(table)
    assert list(rows) == ["palimpsest", "blur"]
    assert rows["palimpsest"][-2:] == [
        f"\\makecell[r]{{\\res{{cold_palimpsest/restore/t{t}/l1restored}}\\\\(\\res{{cold_palimpsest/restore/t{t}/l1degraded}})}}"
        for t in (25, 50)]
    assert "t20/l1restored" in rows["blur"][-2] and "t40/l1restored" in rows["blur"][-1]
    assert "$T = 50$ for palimpsest, $T = 40$ for blur" in table
    assert "\\makecell[b]{restoration $\\ell_1$\\\\$N = 2{,}000$}" in table
    assert "mixture prior" not in table  # no model has that evaluation
    summary["models"]["cold_palimpsest"]["evaluations"]["alg2-mixtureprior_n10000"] = \
        summary["models"]["cold_palimpsest"]["evaluations"]["ddim-50_n10000"]
    rows = cold_rows(rt.cold_table(rt.collect(summary), summary))  # the copies have no other generation column
    assert "\\res{cold_palimpsest/alg2-mixtureprior_n10000/fid}" in rows["palimpsest"][0]
    assert rows["blur"][0] == "--"


def test_no_column_of_the_cold_table_mixes_sample_sizes():
    """Every data column holds numbers at one N, and the column group above it says which."""
    summary = json.loads((REPO / "results" / "summary.json").read_text())
    table = rt.cold_table(rt.collect(summary), summary)
    group_line = table.split("\\toprule\n", 1)[1].split("\n", 1)[0].removesuffix(" \\\\")
    named = []  # the N each data column's group names
    for group in group_line.split(" & ")[1:]:
        width = re.match(r"\\multicolumn\{(\d+)\}", group)
        named += [re.search(r"N = ([^$]*)\$", group)[1]] * (int(width[1]) if width else 1)
    for label, cells in cold_rows(table).items():
        assert len(cells) == len(named), label
        for cell, n in zip(cells, named):
            sizes = set()
            for key in re.findall(r"\\res\{([^}]*)\}", cell):
                run, *rest = key.split("/")
                if rest[0] == "restore":
                    sizes.add(summary["models"][run]["restoration"][rest[1]]["n"])
                elif rest[0] == "endpoint":
                    sizes.add(summary["models"][run]["endpoint"]["n"])
                else:
                    sizes.add(summary["models"][run]["evaluations"][rest[0]]["n"])
            assert len(sizes) <= 1, (label, cell)
            if sizes:
                printed = n if "\\res{" not in n else str(summary["models"][run]["endpoint"]["n"])
                assert printed.split(" \\times")[0].replace("{,}", "") == str(sizes.pop()), (label, cell, n)


def test_models_table_has_a_row_per_final_model_with_its_budget():
    summary = synthetic_summary()
    results = rt.collect(summary)
    table = rt.models_table(results, summary)
    body = table.split("\\midrule", 1)[1].split("\\bottomrule")[0].strip().splitlines()
    assert [row.split(" & ")[0] for row in body] == ["DDPM baseline", "DDPM, our recipe"]
    assert body[1] == ("DDPM, our recipe & \\res{ddpm_unet/params} & \\res{ddpm_unet/train/steps} & "
                       "\\res{ddpm_unet/train/images} & \\res{ddpm_unet/train/hours} & \\res{ddpm_unet/train/threads} \\\\")
    values = {m["key"]: m for m in map(DEFRESULT.match, results.tex().splitlines()) if m}
    assert values["ddpm_unet/train/threads"]["source"] == "models.ddpm_unet.training.hardware.torch_threads"
    assert "study_recipe/params" not in values  # the study's runs are not final models


def test_parameter_count_equals_the_published_weights():
    """The report's parameter count (built from the run's config) against an independent count: the numbers of
    the published EMA weights' tensors (every tensor of the UNet's state dict is a trainable parameter)."""
    import torch

    weights = torch.load(REPO / "results" / "ddpm_unet" / "ema.pt", map_location="cpu", weights_only=True)
    independent = sum(tensor.numel() for tensor in weights["ema"].values())
    assert independent == pytest.approx(367_000, abs=500)  # the UNet 16/32/64: 367k parameters
    summary = json.loads((REPO / "results" / "summary.json").read_text())
    results = rt.collect(summary)
    assert results.values["ddpm_unet/params"] == independent
    assert rt.parse_value(results.entries["ddpm_unet/params"][0]) == independent
    # the baseline's state dict also holds its (non-trainable) time-encoding frequencies
    base = torch.load(REPO / "results" / "ddpm_baseline" / "ema.pt", map_location="cpu", weights_only=True)["ema"]
    assert results.values["ddpm_baseline/params"] == sum(t.numel() for k, t in base.items() if k != "frequencies")


def test_class_shares_are_derived_for_the_headline_and_other_evaluations_at_n_10000():
    summary = synthetic_summary()
    run = summary["models"]["ddpm_unet"]
    shares = [0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15]
    extra = copy.deepcopy(run["evaluations"]["ddim-50_n10000"])
    extra.update({"label_shares": shares})
    extra["metrics"]["label_max_gap"] = {"value": 0.0412, "std": 0.001, "floor": 0.01, "floor_std": 0.001}
    run["evaluations"]["alg2-mixtureprior_n10000"] = extra
    values = {m["key"]: m["value"] for m in map(DEFRESULT.match, rt.collect(summary).tex().splitlines()) if m}
    prefix = "derived/ddpm_unet/alg2-mixtureprior"  # the evaluation's sampler label, from its key
    assert (values[f"{prefix}/topdigit"], values[f"{prefix}/topsharepct"]) == ("9", "15.0")
    assert values[f"{prefix}/minsharepct"] == "5.00"
    assert values[f"{prefix}/maxgappct"] == "4.12"
    assert values[f"{prefix}/precisiongap"] == rt.format_value(0.81234 - 0.866)
    assert "derived/ddpm_unet/ddim/topdigit" not in values  # N = 2,000 evaluations get none


def test_inception_fid_floor_comes_from_its_evaluation_when_the_committed_floors_lack_it():
    summary = synthetic_summary()
    head = summary["models"]["ddpm_unet"]["evaluations"]["ddim-50_n10000"]
    head["metrics"]["inception_fid"] = {"value": 16.5, "std": None, "floor": 1.55, "floor_std": None}
    results = rt.collect(summary)
    row = next(line for line in rt.headline_table(results, summary).splitlines() if line.startswith("Inception-FID"))
    assert row == ("Inception-FID & -- & \\res{ddpm_unet/headline/inception_fid} & "
                   "\\res{ddpm_unet/headline/inception_fid/floor} \\\\")
    fid_row = next(line for line in rt.headline_table(results, summary).splitlines() if line.startswith("classifier-FID"))
    # a mean with its std below it (\\makecell), so that the table fits the text width
    assert fid_row.endswith("\\makecell[r]{\\res{floor/10000/fid}\\\\$\\pm$\\,\\res{floor/10000/fid/std}} \\\\")


def test_prose_words_counts_running_text_only():
    tex = ("Our model (\\res{a/b}) beats $x_t = 1$ by far~\\citep{ho}.% a comment\n"
           "\\begin{figure}\\caption{many words here}\\end{figure}\n"
           "\\begin{equation*} a + b \\end{equation*}\\paragraph{Two words.} 10\\% of \\emph{it}.")
    # Our model w beats w by far w | Two words 10 of it
    assert rt.prose_words(tex) == 8 + 5


def test_the_main_text_is_within_the_word_limit():
    words = rt.main_text_words()
    assert 1_000 < words <= rt.MAIN_TEXT_LIMIT, f"{words} words of main text"


def test_steps_table_marks_times_taken_with_another_thread_count():
    summary = synthetic_summary()
    for run in ("ddpm_baseline", "ddpm_unet"):
        for evaluation in summary["models"][run]["evaluations"].values():
            evaluation["threads"] = 1
    table = rt.steps_table(rt.collect(summary), summary)
    assert "$^{*}$" not in table and "threads" not in table
    summary["models"]["ddpm_unet"]["evaluations"]["ancestral_n2000"]["threads"] = 2
    table = rt.steps_table(rt.collect(summary), summary)
    row = next(line for line in table.splitlines() if line.startswith("ancestral"))
    assert row.endswith("\\res{ddpm_unet/ancestral_n2000/msperimage}$^{*}$ \\\\")
    assert row.count("$^{*}$") == 1  # the baseline's ancestral row was timed like the rest
    assert "with 1 thread; $^{*}$: timed with 2 threads instead" in table


# --- layout: scripts/check_latex_log.py fails `make report` on what LaTeX only warns about ------------------------

def latex_checker():
    """scripts/check_latex_log.py as a module (scripts/ is not a package)."""
    import importlib.util
    import sys

    if "check_latex_log" not in sys.modules:
        spec = importlib.util.spec_from_file_location("check_latex_log", REPO / "scripts" / "check_latex_log.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["check_latex_log"]


def test_header_cells_break_after_commas_and_long_words_never_inside_maths():
    assert rt._header_cell("ms/image", "r") == "ms/image"
    assert rt._header_cell("DDPM, our recipe", "r") == "\\makecell[br]{DDPM,\\\\our recipe}"
    assert rt._header_cell("cold, palimpsest with trace", "r") == "\\makecell[br]{cold,\\\\palimpsest\\\\with trace}"
    assert rt._header_cell("$a, b + c + d$ and so on", "l") == "\\makecell[bl]{$a, b + c + d$\\\\and so on}"


def test_generated_tables_stack_each_std_below_its_mean():
    table = rt.study_table(rt.collect(synthetic_summary()), synthetic_summary())
    assert "\\makecell[r]{\\res{study_recipe/headline/fid}\\\\$\\pm$\\,\\res{study_recipe/headline/fid/std}}" in table
    assert "\\,$\\pm$\\," not in table and "\\addlinespace" in table


LOG = """(./main.tex
LaTeX2e <2022-11-01>
(./sections/ddpm.tex
Overfull \\hbox (20.03859pt too wide) detected at line 29
[][][]\\OML/cmm/m/it/10.95 q\\OT1/cmr/m/n/10.95 (\\OT1/cmr/bx/n/10.95 z[] \\OMS/cms
 []

[1] (./generated/headline.tex
Overfull \\hbox (102.70235pt too wide) in paragraph at lines 5--23
 [][]
 []

Overfull \\hbox (0.5pt too wide) in paragraph at lines 30--31
 []

) (./sections/cold_results.tex
<../figures//cold_samplers.pdf, id=476, 452.4102pt x 331.48506pt>
LaTeX Warning: Float too large for page by 177.09785pt on input line 58.

Overfull \\vbox (3.0pt too high) has occurred while \\output is active
[]

))
"""


def test_checker_reports_overfull_boxes_wider_than_a_point_and_floats_too_large():
    checker = latex_checker()
    faults = checker.check_log(LOG).faults
    assert len(faults) == 4, faults
    assert faults[0].startswith("./sections/ddpm.tex: overfull \\hbox, 20.0 pt too wide")
    assert faults[1] == "./generated/headline.tex: overfull \\hbox, 102.7 pt too wide (in paragraph at lines 5--23)"
    assert "overfull \\vbox, 3.0 pt too high" in faults[2]
    assert faults[3].startswith("./sections/cold_results.tex:58: float too large for its page by 177.1 pt")
    assert checker.check_log(LOG, max_overfull=200).faults == [faults[3]]  # the float is a fault at any size
    assert checker.check_log("Overfull \\hbox (1.0pt too wide) in paragraph at lines 1--2\n").faults == []


def test_checker_undoes_the_logs_line_wrapping():
    checker = latex_checker()
    line = "LaTeX Warning: Float too large for page by 12.5pt on input line 7."
    wrapped = f"{'x' * 60}{line}"
    log = "\n".join(wrapped[i:i + 79] for i in range(0, len(wrapped), 79)) + "\n"
    assert any(len(part) == 79 for part in log.splitlines())  # TeX breaks its log lines after 79 characters
    assert [f.split(": ", 1)[1] for f in checker.check_log(log).faults] == [
        "float too large for its page by 12.5 pt (its bottom and caption are cut off)"]


def test_checker_requires_a_caption_on_every_float_and_no_scaled_tables(tmp_path):
    checker = latex_checker()
    (tmp_path / "sections").mkdir()
    (tmp_path / "main.tex").write_text("\\begin{document}\n\\input{sections/body}\n% \\input{sections/gone}\n"
                                       "\\input{missing}\n\\end{document}\n")
    (tmp_path / "sections" / "body.tex").write_text(
        "\\begin{figure}\\includegraphics{a}\\caption{Captioned.}\\end{figure}\n"
        "\\begin{figure}\n  \\includegraphics{b}\n  % \\caption{commented out}\n\\end{figure}\n"
        "\\begin{figure}\\begin{subfigure}{x}\\caption{a panel}\\end{subfigure}\\end{figure}\n"
        "\\begin{table}\\caption{Scaled.}\\resizebox{\\linewidth}{!}{\\begin{tabular}{l}x\\end{tabular}}\\end{table}\n"
        "\\begin{table}[ht]\\centering\\begin{tabular}{l}x\\end{tabular}\\end{table}\n"
        "\\begin{algorithm}\\caption[short]{Long.}\\end{algorithm}\n"
        "\\begin{minipage}{x}\\captionof{table}{Not a float.}\\end{minipage}\n")
    files = checker.source_files(tmp_path / "main.tex")
    assert [f.name for f in files] == ["main.tex", "body.tex"]
    faults = checker.check_sources(files, tmp_path.resolve()).faults
    assert faults == ["sections/body.tex:2: a figure without a caption",
                      "sections/body.tex:6: a figure without a caption",
                      "sections/body.tex:7: a table scaled to fit (\\resizebox, \\scalebox or adjustbox): its text "
                      "prints at an unknown size; use a smaller font or split it",
                      "sections/body.tex:8: a table without a caption"]


def write_figure_pdf(path: Path, sizes: list[float]) -> None:
    """A PDF whose one (Flate-compressed) content stream sets text at ``sizes``, as matplotlib writes it."""
    import zlib

    content = "".join(f"BT /F1 {size:g} Tf 1 0 0 1 10 10 Tm (x) Tj ET\n" for size in sizes).encode()
    stream = zlib.compress(content)
    head = f"%PDF-1.4\n1 0 obj << /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
    path.write_bytes(head + stream + b"\nendstream\nendobj\n%%EOF\n")


def test_checker_measures_figure_text_at_its_printed_size(tmp_path):
    checker = latex_checker()
    (tmp_path / "figures").mkdir()
    (tmp_path / "report").mkdir()
    write_figure_pdf(tmp_path / "figures" / "plot.pdf", [8, 7, 4.9])  # 4.9: a superscript of the 7 pt ticks

    def log(requested_width: float) -> str:
        return ("<../figures//plot.pdf, id=5, 200.0pt x 100.0pt>\nFile: ../figures//plot.pdf Graphic file (type pdf)\n"
                "<use ../figures//plot.pdf>\nPackage pdftex.def Info: ../figures//plot.pdf  used on input line 13.\n"
                f"(pdftex.def)             Requested size: {requested_width}pt x 50.0pt.\n")

    assert checker.check_figure_text(log(200.0), tmp_path / "report").faults == []  # printed at its own size
    assert checker.check_figure_text(log(210.0), tmp_path / "report").faults == []
    faults = checker.check_figure_text(log(150.0), tmp_path / "report").faults  # 7 pt scaled by 0.75
    assert len(faults) == 1 and faults[0].startswith("plot.pdf (input line 13): text printed at 5.2 pt < 7 pt")
    allowed = checker.check_figure_text(log(150.0), tmp_path / "report", allowed=frozenset({"plot"}))
    assert allowed.faults == [] and len(allowed.notes) == 1
    assert checker.base_sizes([8, 7, 5.6, 4.9, 3.43]) == [7, 8]  # 5.6 = 0.7 x 8; 4.9 = 0.7 x 7; 3.43 = 0.49 x 7


def test_the_report_sources_caption_every_float_and_scale_no_table():
    checker = latex_checker()
    report = (REPO / "report").resolve()
    files = checker.source_files(report / "main.tex")
    assert report / "sections" / "appendix.tex" in files and report / "generated" / "headline.tex" in files
    assert checker.check_sources(files, report).faults == []


def test_appendix_b_shows_the_profile_of_the_recipes_unet_in_its_training_format():
    performance = REPO / "benchmarks" / "results" / "performance.tex"  # committed (make bench)
    text = performance.read_text()
    # the appendix keeps the first table that names "kind of work": its caption says it is our recipe's UNet
    # (unet-s) in the default (contiguous) memory format that training uses
    before = text[:text.index("kind of work")]
    assert "unet-s/contiguous" in before.rsplit("\\begin{table}", 1)[0][-300:]


@pytest.mark.parametrize("maker", ["image_rows", "metric_panels", "label_histograms"])
def test_figures_stay_within_the_width_they_are_printed_at(maker, tmp_path, monkeypatch):
    import numpy as np

    from mnist_diffusion.reporting import plots

    monkeypatch.setattr(plots, "figures_dir", lambda profile=None: tmp_path)
    long = "cold, palimpsest with trace: nearest"
    rng = np.random.default_rng(0)
    if maker == "image_rows":
        fig = plots.image_rows(rng.integers(0, 255, (4, 8, 28, 28), dtype=np.uint8), [f"t = {t}" for t in range(8)],
                               [long, "a", "b", long])
    elif maker == "metric_panels":
        fig = plots.metric_lines({f"{long}, {k}": [(1, 2.0), (10, 3.0)] for k in range(6)}, "x", "y", floor=1.0)
    else:
        fig = plots.label_histograms({f"{long} {k}": np.full(10, 0.1) for k in range(5)}, np.full(10, 0.1))
    pdf, _ = plots.save_figure(fig, "width")
    checker = latex_checker()
    width = float(re.search(rb"/MediaBox \[\s*[\d.]+ [\d.]+ ([\d.]+)", pdf.read_bytes()).group(1))
    target = fig.get_size_inches()[0] * 72
    assert width <= target + 2 * 0.02 * 72 + 0.5, f"{maker}: {width:.1f} pt wide for {target:.1f} pt"
    assert min(checker.base_sizes(checker.pdf_font_sizes(pdf.read_bytes()))) >= 7


def report_check_flags() -> list[str]:
    """The checker's arguments in the Makefile's report recipe (figures allowed small text until regenerated)."""
    recipe = re.search(r"scripts/check_latex_log\.py report/main\.log(.*)", (REPO / "Makefile").read_text())
    return recipe.group(1).split()


@pytest.mark.slow
def test_the_built_report_has_no_layout_faults(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("latexmk"):
        pytest.skip("latexmk is not installed (make report installs TeX Live)")
    build = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-quiet",
                            f"-outdir={tmp_path}", "main.tex"], cwd=REPO / "report", capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:]
    checker = latex_checker()
    assert checker.main([str(tmp_path / "main.log"), "--tex", str(REPO / "report" / "main.tex"),
                         *report_check_flags()]) == 0
