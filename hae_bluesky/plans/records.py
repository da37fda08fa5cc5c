"""Soft signals that put plan-side values (decisions, interventions) into documents.

Each stream of the adaptive experiment that is not a device reading is a
:class:`SoftRecord`: a fixed set of named ophyd signals whose types are set
by their initial values, written with :meth:`SoftRecord.put` and read into
the current event with :func:`read_record`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
from ophyd import Signal

__all__ = [
    "DECISION_FIELDS",
    "INTERVENTION_FIELDS",
    "MEASUREMENT_FIELDS",
    "SoftRecord",
    "read_record",
    "to_json",
]

#: Plan-side fields of the ``measurements`` stream, with their initial values.
MEASUREMENT_FIELDS: dict[str, Any] = {
    "step": 0, "row": 0, "column": 0, "x_nm": 0.0, "y_nm": 0.0,
    "scalarizer_value": math.nan, "seed_point": False,
}

#: Fields of the ``decisions`` stream: the decision and the agent's report.
DECISION_FIELDS: dict[str, Any] = {
    "step": 0, "patch_index": 0, "row": 0, "column": 0, "x_nm": 0.0, "y_nm": 0.0,
    "acquisition_value": math.nan, "mean": math.nan, "std": math.nan,
    "policy": "", "source": "", "scalarizer": "", "patch_size": 0,
    "n_measured": 0, "n_bad": 0, "uncertainty_mean": math.nan,
    "uncertainty_std": math.nan, "next_uncertainty": math.nan, "best_value": math.nan,
    "training_loss": math.nan, "fit_seconds": math.nan, "fallback": "",
    "off_policy": False, "agent_seconds": math.nan,
}

#: Fields of the ``interventions`` stream.
INTERVENTION_FIELDS: dict[str, Any] = {
    "step": 0, "time": 0.0, "user": "", "group": "", "parameter": "",
    "before": "", "after": "", "accepted": True, "message": "",
}


def to_json(value: Any) -> str:
    """Serialise a value (dicts, numpy scalars and arrays included) to JSON."""

    def plain(item: Any) -> Any:
        if isinstance(item, np.ndarray):
            return item.tolist()
        if isinstance(item, np.generic):
            return item.item()
        raise TypeError(f"cannot store {type(item).__name__} in a document")

    return json.dumps(value, default=plain, sort_keys=True)


class SoftRecord:
    """Named soft signals for one event stream.

    Parameters
    ----------
    fields : dict
        Field name -> initial value; the initial value fixes the type that
        ``describe()`` reports (int, float, bool or str).
    """

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._defaults = dict(fields)
        self.signals = {name: Signal(name=name, value=value) for name, value in fields.items()}

    def put(self, values: Mapping[str, Any]) -> None:
        """Set every field: missing ones go back to their initial value.

        Values are coerced to the field's type; dicts and lists become JSON
        strings in string fields; ``None`` becomes ``""`` or NaN.
        """
        unknown = set(values) - set(self._defaults)
        if unknown:
            raise KeyError(f"unknown field(s) {sorted(unknown)}; known: {sorted(self._defaults)}")
        for name, default in self._defaults.items():
            self.signals[name].put(_coerce(values.get(name, default), default))


def _coerce(value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return math.nan if value is None else float(value)
    if value is None:
        return ""
    return value if isinstance(value, str) else to_json(value)


def read_record(record: SoftRecord) -> Generator[Any, Any, None]:
    """Read every signal of ``record`` into the event being bundled.

    Yields
    ------
    Msg
        One ``read`` message per field; call between ``create`` and ``save``.
    """
    for signal in record.signals.values():
        yield from bps.read(signal)
