"""The trap detector on trajectories that circle one spot and ones that roam."""

from __future__ import annotations

import logging

import event_model
import numpy as np
import pytest

from hae_bluesky.analysis.live import LiveTrapAlert
from hae_bluesky.analysis.trap import TrapDetector, detect_traps


def _raster(steps: int, row_offset: int = 0, column_offset: int = 0):
    """A sweep across a 50 x 40 map: 5 columns 8 px apart, rows 3 px apart."""
    rows = [5 + row_offset + 3 * (step // 5) for step in range(steps)]
    columns = [5 + column_offset + 8 * (step % 5) for step in range(steps)]
    return rows, columns


def _loop(steps: int, row: int, column: int):
    """Round and round the 2 x 2 pixel square whose corner is (row, column)."""
    ring = [(0, 0), (0, 1), (1, 1), (1, 0)]
    return ([row + ring[step % 4][0] for step in range(steps)],
            [column + ring[step % 4][1] for step in range(steps)])


def _roaming_then_circling():
    """15 raster steps, then 20 steps around pixel (20, 30)."""
    raster_rows, raster_columns = _raster(15)
    loop_rows, loop_columns = _loop(20, 20, 30)
    return np.array(raster_rows + loop_rows), np.array(raster_columns + loop_columns)


def test_circling_trajectory_is_flagged_when_it_keeps_returning():
    rows, columns = _roaming_then_circling()
    uncertainty = np.full(rows.size, 0.3)

    alerts = detect_traps(rows, columns, uncertainty, pixel_size_nm=0.5)

    # The loop starts at step 15. From step 18 on, each position is a
    # 4-neighbour of one chosen at least 2 steps before (step 18 (21, 30)
    # touches step 15 (20, 30)); the sixth revisit is step 23.
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.step == 23
    assert (alert.row, alert.column) == (rows[23], columns[23])
    assert alert.evidence.revisits == 6
    assert alert.evidence.revisiting
    assert not alert.evidence.confined
    assert alert.evidence.uncertainty_stalled
    assert alert.reason == "revisiting"
    assert "step 23" in alert.message()
    assert "6 revisits" in alert.message()


def test_circling_trajectory_is_confined_once_the_window_holds_only_the_loop():
    rows, columns = _roaming_then_circling()

    alerts = detect_traps(rows, columns, revisit_radius=0.0, min_revisits=10,
                          pixel_size_nm=0.5)

    # Exact returns begin at step 19 and fill the window only at step 28;
    # the window holds loop positions alone from step 24.
    assert [alert.step for alert in alerts] == [24]
    evidence = alerts[0].evidence
    assert evidence.confined and not evidence.revisiting
    assert evidence.radius_pixels == pytest.approx(np.hypot(0.5, 0.5), abs=0.1)
    assert alerts[0].radius_nm == pytest.approx(0.5 * evidence.radius_pixels)
    assert alerts[0].reason == "confined"


def test_roaming_trajectory_raises_no_alert():
    rng = np.random.default_rng(3)
    rows = rng.integers(2, 48, size=60)
    columns = rng.integers(2, 38, size=60)

    detector = TrapDetector()
    alerts = [detector.update(row, column, 0.2)
              for row, column in zip(rows, columns, strict=True)]

    assert alerts == [None] * 60
    assert detector.alerts == []
    assert detector.latest is not None and not detector.latest.trapped
    assert detector.latest.radius_pixels > 10


def test_a_loop_whose_uncertainty_still_falls_is_not_a_trap():
    rows, columns = _roaming_then_circling()
    uncertainty = 0.9 ** np.arange(rows.size)

    alerts = detect_traps(rows, columns, uncertainty)

    assert alerts == []


def test_an_alert_fires_once_per_trap_and_again_after_a_clear_window():
    parts = [_raster(15), _loop(15, 20, 30), _raster(15, 1, 4), _loop(15, 40, 10)]
    rows = np.concatenate([part[0] for part in parts])
    columns = np.concatenate([part[1] for part in parts])

    alerts = detect_traps(rows, columns)

    # First trap at step 23 (see above); the condition clears at step 34,
    # re-arms 10 clear steps later, and the second loop (from step 45) has
    # its sixth revisit at step 53.
    assert [alert.step for alert in alerts] == [23, 53]


def test_creeping_to_a_neighbour_is_not_a_revisit():
    detector = TrapDetector(window=3, max_radius=0.1)

    for step in range(3):
        detector.update(10, 10 + step)

    assert detector.latest.revisits == 0
    assert not detector.latest.trapped


def test_default_revisit_count_follows_a_small_window():
    assert TrapDetector(window=5).min_revisits == 3
    assert TrapDetector().min_revisits == 6


def test_detector_refuses_a_window_too_short_to_judge():
    with pytest.raises(ValueError, match="at least 3 steps"):
        TrapDetector(window=2)


def _decision_documents(rows, columns, uncertainty=None, pixel_size_nm=0.5):
    """Start, descriptors and one decision event per step (plus ignored measurements)."""
    run = event_model.compose_run(metadata={"hae": {"pixel_size_nm": pixel_size_nm}})
    yield "start", run.start_doc
    keys = {key: {"source": "test", "dtype": "number", "shape": []}
            for key in ("step", "row", "column", "next_uncertainty")}
    decisions = run.compose_descriptor(name="decisions", data_keys=keys)
    measurements = run.compose_descriptor(name="measurements", data_keys=keys)
    yield "descriptor", decisions.descriptor_doc
    yield "descriptor", measurements.descriptor_doc
    for step, (row, column) in enumerate(zip(rows, columns, strict=True)):
        value = 0.3 if uncertainty is None else uncertainty[step]
        data = {"step": step, "row": int(row), "column": int(column),
                "next_uncertainty": value}
        stamps = dict.fromkeys(data, 0.0)
        yield "event", decisions.compose_event(data=data, timestamps=stamps)
        # The same position measured again must not count as another step.
        yield "event", measurements.compose_event(data=data, timestamps=stamps)
    yield "stop", run.compose_stop()


def test_live_alert_warns_once_at_the_step_the_trap_begins(caplog):
    rows, columns = _roaming_then_circling()
    received = []
    callback = LiveTrapAlert(on_trap=received.append)

    with caplog.at_level(logging.WARNING, logger="hae_bluesky.analysis.live"):
        for name, doc in _decision_documents(rows, columns):
            callback(name, doc)

    assert [alert.step for alert in received] == [23]
    assert callback.alert is received[0]
    assert callback.alert.pixel_size_nm == 0.5
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "trapped at step 23" in warnings[0].getMessage()


def test_live_alert_stays_silent_on_a_roaming_run(caplog):
    rows, columns = _raster(35)
    received = []
    callback = LiveTrapAlert(on_trap=received.append)

    with caplog.at_level(logging.WARNING, logger="hae_bluesky.analysis.live"):
        for name, doc in _decision_documents(rows, columns):
            callback(name, doc)

    assert received == []
    assert callback.alert is None
    assert caplog.records == []


def test_live_alert_reports_later_episodes_only_when_asked():
    parts = [_raster(15), _loop(15, 20, 30), _raster(15, 1, 4), _loop(15, 40, 10)]
    rows = np.concatenate([part[0] for part in parts])
    columns = np.concatenate([part[1] for part in parts])
    first_only, every = [], []
    callbacks = [LiveTrapAlert(on_trap=first_only.append),
                 LiveTrapAlert(on_trap=every.append, every_episode=True)]

    for name, doc in _decision_documents(rows, columns):
        for callback in callbacks:
            callback(name, doc)

    assert [alert.step for alert in first_only] == [23]
    assert [alert.step for alert in every] == [23, 53]


def test_live_alert_starts_afresh_with_each_run():
    rows, columns = _roaming_then_circling()
    received = []
    callback = LiveTrapAlert(on_trap=received.append, window=10)

    for _ in range(2):
        for name, doc in _decision_documents(rows, columns, pixel_size_nm=0.25):
            callback(name, doc)

    assert [alert.step for alert in received] == [23, 23]
    assert callback.detector.pixel_size_nm == 0.25
