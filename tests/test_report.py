"""``hae report`` on a short real run on the Cu/ZnO recording."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hae_bluesky import cli
from hae_bluesky.analysis.metrics import distance_travelled, top_fraction_found
from hae_bluesky.analysis.report import format_summary, summarise_run
from hae_bluesky.analysis.runs import RunRecord, load_run
from hae_bluesky.catalog import open_catalog
from hae_bluesky.data import scalarizer_preset
from hae_bluesky.experiment import candidate_truth, run_simulated_experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("summary", "learning_curve", "trajectory", "feature_space", "embedding")
FAST = {"model_settings": {"initial_iterations": 30, "warm_iterations": 5}}


@pytest.fixture(scope="module")
def stored_run(cuzn, tmp_path_factory):
    """A finished run in a closed catalog: (catalog folder, read-back record)."""
    folder = tmp_path_factory.mktemp("report-catalog")
    with open_catalog(folder) as catalog:
        result = run_simulated_experiment(
            cuzn, catalog, scalarizer=scalarizer_preset("cu_l23"),
            policy={"kind": "mu"}, n_seeds=3, budget=5, seed=2, agent_options=FAST)
        record = load_run(result.uid, catalog=catalog)
    return folder, record


@pytest.fixture(scope="module")
def report(stored_run, tmp_path_factory):
    folder, record = stored_run
    out = tmp_path_factory.mktemp("report")
    status = cli.main(["report", record.uid[:8], "--catalog", str(folder), "--out",
                       str(out), "--feature-space", "--rvae-epochs", "5"])
    return status, out


def test_report_writes_every_figure_and_the_summary(report):
    status, out = report

    assert status == 0
    for name in FIGURES:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figures"] == [f"{name}.png" for name in FIGURES]
    text = (out / "summary.txt").read_text()
    assert text.startswith("run: ")
    assert "trap detector: " in text


def test_report_distance_equals_distance_travelled_of_the_read_back_run(report, stored_run):
    _, out = report
    _, record = stored_run
    measurements = record.stream("measurements")
    pixel = record.start["hae"]["pixel_size_nm"]

    expected = distance_travelled(measurements["row"], measurements["column"], pixel)
    summary = json.loads((out / "summary.json").read_text())

    assert summary["distance"]["pixels"] == pytest.approx(expected.total_pixels)
    assert summary["distance"]["nm"] == pytest.approx(expected.total_nm)
    assert (f"distance travelled: {expected.total_pixels:.2f} px = "
            f"{expected.total_nm:.2f} nm") in (out / "summary.txt").read_text()


def test_report_numbers_are_those_of_the_run(report, stored_run, cuzn):
    _, out = report
    _, record = stored_run
    measurements, decisions = record.stream("measurements"), record.stream("decisions")
    summary = json.loads((out / "summary.json").read_text())
    best = int(np.argmax(measurements["scalarizer_value"]))
    truth = candidate_truth(cuzn, scalarizer_preset("cu_l23"), 5)

    assert summary["measurements"] == {"count": 8, "seed_points": 3, "ended_by": "budget"}
    assert summary["best"]["value"] == pytest.approx(measurements["scalarizer_value"][best])
    assert (summary["best"]["row"], summary["best"]["column"]) == (
        measurements["row"][best], measurements["column"][best])
    assert summary["learning_curve"]["first"] == pytest.approx(decisions["uncertainty_mean"][0])
    assert summary["learning_curve"]["last"] == pytest.approx(
        decisions["uncertainty_mean"][-1])
    assert summary["top_fraction_found"] == pytest.approx(top_fraction_found(
        measurements["row"], measurements["column"], truth, 5.0)[-1])
    assert summary["trap"]["trapped"] is False
    assert summary["trap"]["steps"] == 5
    assert "too few to judge" in summary["trap"]["last_window"]
    assert summary["policy"] == {"kind": "mu"}


@pytest.mark.parametrize("run", ["", "   "])
def test_report_without_a_run_id_says_what_to_give(stored_run, run, capsys):
    folder, _ = stored_run

    status = cli.main(["report", run, "--catalog", str(folder)])

    assert status == 1
    assert capsys.readouterr().err == ("hae: error: no run given: give a run uid, a uid "
                                       "prefix, or -1 for the latest run\n")


def _learning_curve_line(uncertainty_mean: list[float]) -> str:
    """The summary's learning-curve line of a run with these mean uncertainties."""
    record = RunRecord(uid="run", start={"plan_name": "adaptive_experiment"},
                       stop={"reason": "budget"},
                       streams={"decisions": {"uncertainty_mean": np.array(uncertainty_mean)}})
    (line,) = [line for line in format_summary(summarise_run(record)).splitlines()
               if line.startswith("learning curve: ")]
    return line


def test_summary_says_the_uncertainty_fell_when_it_fell():
    line = _learning_curve_line([0.5, 0.4, 0.2])

    assert line.endswith("0.5 at step 0 -> 0.2 at step 2 (scalarizer units; fell by 0.3, "
                         "60.0% of the first)")


def test_summary_says_the_uncertainty_rose_when_it_rose():
    line = _learning_curve_line([800.0, 1200.0, 3657.58])

    assert line.endswith("800 at step 0 -> 3657.58 at step 2 (scalarizer units; rose by "
                         "2857.58, 357.2% of the first)")
