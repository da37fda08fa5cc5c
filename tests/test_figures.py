"""Figures build from a hand-made run and a fake agent, and save as PNG."""

from __future__ import annotations

from types import SimpleNamespace

import event_model
import numpy as np
import pytest
from matplotlib.figure import Figure

from hae_bluesky.analysis.feature_space import AggregationPoint
from hae_bluesky.analysis.figures import (
    embedding_figure,
    experiment_summary_figure,
    feature_space_figure,
    haadf_image,
    save_figure,
    to_image,
)
from hae_bluesky.analysis.live import LiveExperimentView
from hae_bluesky.analysis.runs import RunRecord
from hae_bluesky.data import extract_patches

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FakeAgent:
    """The agent contract the figures use: patches, predict, acquisition, embeddings."""

    def __init__(self, image: np.ndarray, patch_size: int = 3) -> None:
        self.patches = extract_patches(image, patch_size, pixel_size_nm=0.5)
        count = len(self.patches)
        self._mean = np.linspace(0.0, 1.0, count)
        self._std = np.linspace(1.0, 0.1, count)

    def predict(self) -> SimpleNamespace:
        return SimpleNamespace(mean=self._mean, std=self._std)

    def acquisition_map(self) -> np.ndarray:
        values = self._mean + self._std
        values[0] = -np.inf
        return values

    def embeddings(self) -> np.ndarray:
        return np.column_stack([self._mean, self._std, self._mean * self._std])


@pytest.fixture
def image():
    rows, columns = np.indices((12, 10))
    return np.sin(rows / 2.0) + np.cos(columns / 3.0)


@pytest.fixture
def record(image):
    measurements = {
        "step": np.array([-2, -1, 0, 1, 2]),
        "row": np.array([2, 8, 5, 5, 6]),
        "column": np.array([2, 7, 4, 5, 5]),
        "x_nm": np.array([1.0, 3.5, 2.0, 2.5, 2.5]),
        "y_nm": np.array([1.0, 4.0, 2.5, 2.5, 3.0]),
        "scalarizer_value": np.array([0.2, np.nan, 0.5, 0.4, 0.9]),
        "seed_point": np.array([True, True, False, False, False]),
    }
    decisions = {
        "step": np.array([0, 1, 2]),
        "row": np.array([5, 5, 6]),
        "column": np.array([4, 5, 5]),
        "uncertainty_mean": np.array([0.8, 0.6, 0.5]),
        "uncertainty_std": np.array([0.2, 0.15, 0.1]),
        "next_uncertainty": np.array([0.9, 0.7, 0.4]),
        "best_value": np.array([0.2, 0.5, 0.5]),
        "policy": np.array(['{"kind": "ei"}'] * 3),
    }
    return RunRecord(
        uid="0123456789abcdef",
        start={"uid": "0123456789abcdef",
               "hae": {"patch_size": 3, "pixel_size_nm": 0.5, "policy": {"kind": "ei"}}},
        stop=None,
        streams={"haadf": {"haadf_image": image[None], "seq_num": np.array([1])},
                 "measurements": measurements, "decisions": decisions},
    )


def _panels(figure: Figure) -> list[str]:
    return [axes.get_label() for axes in figure.axes if axes.get_label() != "<colorbar>"]


def test_to_image_puts_each_value_at_its_patch_centre():
    patches = extract_patches(np.arange(20.0).reshape(4, 5), 3)

    image = to_image(np.arange(len(patches), dtype=float) * 10, patches)

    # 3 x 3 patches of a 4 x 5 image are centred on rows 1-2, columns 1-3.
    expected = np.full((4, 5), np.nan)
    expected[1, 1:4] = [0.0, 10.0, 20.0]
    expected[2, 1:4] = [30.0, 40.0, 50.0]
    np.testing.assert_array_equal(image, expected)


def test_to_image_blanks_infinite_values():
    patches = extract_patches(np.zeros((3, 3)), 1)
    values = np.zeros(9)
    values[4] = -np.inf

    image = to_image(values, patches)

    assert np.isnan(image[1, 1])
    assert np.count_nonzero(np.isnan(image)) == 1


def test_to_image_refuses_the_wrong_number_of_values():
    patches = extract_patches(np.zeros((4, 4)), 3)

    with pytest.raises(ValueError, match="got 3 values for 4 patches"):
        to_image([1.0, 2.0, 3.0], patches)


def test_haadf_image_is_the_field_ending_in_image(record, image):
    np.testing.assert_array_equal(haadf_image(record), image)
    assert haadf_image(RunRecord(uid="x", start={}, stop=None)) is None


def test_summary_figure_has_the_model_panels_and_the_curves(record, image):
    figure = experiment_summary_figure(record, FakeAgent(image), title="EI run")

    assert isinstance(figure, Figure)
    assert _panels(figure) == ["haadf", "mean", "uncertainty", "learning_curve",
                               "best_so_far"]
    assert figure.get_suptitle() == "EI run"


def test_summary_figure_adds_the_truth_panel_when_given(record, image):
    truth = to_image(np.linspace(0, 2, 80), extract_patches(image, 3))

    figure = experiment_summary_figure(record, FakeAgent(image), truth=truth)

    assert _panels(figure)[3] == "truth"
    assert len(_panels(figure)) == 6
    assert figure.get_suptitle() == "run 01234567, policy ei, N = 3"


def test_summary_figure_draws_seed_points_apart_and_the_best_value(record, image):
    figure = experiment_summary_figure(record, FakeAgent(image))
    haadf, best = figure.axes[0], next(
        axes for axes in figure.axes if axes.get_label() == "best_so_far")

    seeds = next(c for c in haadf.collections if c.get_label() == "seed points")
    np.testing.assert_array_equal(seeds.get_offsets(), [[2, 2], [7, 8]])
    line = next(line for line in best.lines if line.get_label() == "best measured")
    np.testing.assert_array_equal(line.get_ydata(), [0.2, 0.2, 0.5, 0.5, 0.9])


def test_summary_figure_without_an_agent_leaves_the_model_panels_empty(record):
    figure = experiment_summary_figure(record, None)

    mean_axes = figure.axes[_panels(figure).index("mean")]
    assert not mean_axes.images
    assert mean_axes.texts[0].get_text() == "no data yet"


def test_feature_space_figure_draws_trajectory_and_aggregation_points():
    latents = np.random.default_rng(0).normal(size=(50, 2))
    points = [AggregationPoint((0.0, 0.0), 1.0, 1.0, 3, (0, 1, 2))]

    figure = feature_space_figure(latents, latents[[0, 4, 9]], points)

    assert _panels(figure) == ["feature_space"]
    axes = figure.axes[0]
    trajectory = next(c for c in axes.collections if c.get_label() == "trajectory")
    assert len(trajectory.get_offsets()) == 3
    assert axes.texts[0].get_text() == "3"


def test_feature_space_figure_refuses_more_than_two_dimensions():
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        feature_space_figure(np.zeros((5, 3)), np.zeros((1, 3)))


def test_embedding_figure_draws_one_image_per_dimension(image):
    agent = FakeAgent(image)

    figure = embedding_figure(agent.embeddings(), agent.patches)

    assert _panels(figure) == ["dimension 1", "dimension 2", "dimension 3"]
    shown = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown[1, 1], 0.0)
    assert shown.mask[0, 0]


def test_save_figure_writes_a_png_and_creates_the_folder(tmp_path, record, image):
    figure = experiment_summary_figure(record, FakeAgent(image))

    path = save_figure(figure, tmp_path / "figures" / "summary")

    assert path == tmp_path / "figures" / "summary.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def _data_keys(values: dict) -> dict:
    keys = {}
    for key, value in values.items():
        shape = list(np.shape(value))
        dtype = "array" if shape else ("integer" if isinstance(value, int) else "number")
        keys[key] = {"source": "test", "dtype": dtype, "shape": shape}
    return keys


def _experiment_documents(image: np.ndarray, decisions: int):
    """Documents of an adaptive run: HAADF, 2 seed points, then decide-and-measure steps."""
    run = event_model.compose_run(metadata={"hae": {"patch_size": 3, "pixel_size_nm": 0.5}})
    yield "start", run.start_doc

    haadf = run.compose_descriptor(name="haadf", data_keys=_data_keys({"haadf_image": image}))
    yield "descriptor", haadf.descriptor_doc
    yield "event", haadf.compose_event(data={"haadf_image": image},
                                       timestamps={"haadf_image": 0.0})

    measured = {"step": 0, "row": 0, "column": 0, "scalarizer_value": 0.0,
                "seed_point": 0}
    measurements = run.compose_descriptor(name="measurements",
                                          data_keys=_data_keys(measured))
    chosen = {"step": 0, "row": 0, "column": 0, "uncertainty_mean": 0.0,
              "uncertainty_std": 0.0, "next_uncertainty": 0.0}
    decision_stream = run.compose_descriptor(name="decisions", data_keys=_data_keys(chosen))
    yield "descriptor", measurements.descriptor_doc
    yield "descriptor", decision_stream.descriptor_doc

    def measure(step, row, column, seed):
        data = {"step": step, "row": row, "column": column,
                "scalarizer_value": 0.1 * (step + 3), "seed_point": seed}
        return measurements.compose_event(data=data, timestamps=dict.fromkeys(data, 0.0))

    yield "event", measure(-2, 2, 2, 1)
    yield "event", measure(-1, 8, 7, 1)
    for step in range(decisions):
        row, column = 1 + step % 10, 1 + (3 * step) % 8
        data = {"step": step, "row": row, "column": column,
                "uncertainty_mean": 1.0 / (step + 1), "uncertainty_std": 0.1,
                "next_uncertainty": 0.5 / (step + 1)}
        yield "event", decision_stream.compose_event(data=data,
                                                     timestamps=dict.fromkeys(data, 0.0))
        yield "event", measure(step, row, column, 0)
    yield "stop", run.compose_stop()


def test_live_view_writes_a_snapshot_every_k_decisions(tmp_path, image):
    agent = FakeAgent(image)
    view = LiveExperimentView(lambda: agent, every=3, directory=tmp_path / "live")

    documents = list(_experiment_documents(image, decisions=7))
    for name, doc in documents:
        view(name, doc)

    uid = documents[0][1]["uid"][:8]
    expected = [tmp_path / "live" / f"{uid}_{name}.png"
                for name in ("step_0002", "step_0005", "final")]
    assert view.snapshots == expected
    assert sorted((tmp_path / "live").iterdir()) == sorted(expected)
    assert all(path.read_bytes()[:8] == PNG_SIGNATURE for path in expected)


def test_live_view_marks_the_next_position_before_it_is_measured(image):
    agent = FakeAgent(image)
    view = LiveExperimentView(lambda: agent, every=2)

    documents = list(_experiment_documents(image, decisions=2))
    # Stop right after the decision of step 1, before its measurement.
    for name, doc in documents[:-2]:
        view(name, doc)

    assert _panels(view.figure) == ["haadf", "mean", "uncertainty", "acquisition",
                                    "learning_curve", "best_so_far"]
    haadf = view.figure.axes[0]
    upcoming = next(c for c in haadf.collections if c.get_label() == "next")
    # Decision of step 1 chose (row 2, column 4); measured so far: 2 seeds + step 0.
    np.testing.assert_array_equal(upcoming.get_offsets(), [[4, 2]])
    last = next(c for c in haadf.collections if c.get_label() == "last")
    np.testing.assert_array_equal(last.get_offsets(), [[1, 1]])
    acquisition = view.figure.axes[_panels(view.figure).index("acquisition")]
    assert acquisition.images[0].get_array().mask[1, 1]


def test_live_view_without_an_agent_draws_only_the_documents(image):
    view = LiveExperimentView(lambda: None, every=1)

    for name, doc in _experiment_documents(image, decisions=1):
        view(name, doc)

    mean_axes = view.figure.axes[_panels(view.figure).index("mean")]
    assert mean_axes.texts[0].get_text() == "no data yet"
    curve = view.figure.axes[_panels(view.figure).index("learning_curve")]
    assert curve.lines[0].get_ydata().tolist() == [1.0]
    assert view.snapshots == []


def test_live_view_in_interactive_mode_draws_into_a_pyplot_figure(image):
    from matplotlib import pyplot

    agent = FakeAgent(image)
    view = LiveExperimentView(lambda: agent, every=1, interactive=True)
    try:
        for name, doc in _experiment_documents(image, decisions=1):
            view(name, doc)
        assert pyplot.fignum_exists(view.figure.number)
        assert len(_panels(view.figure)) == 6
    finally:
        pyplot.close(view.figure)


def test_live_view_refuses_a_zero_interval():
    with pytest.raises(ValueError, match="at least 1 decision"):
        LiveExperimentView(lambda: None, every=0)
