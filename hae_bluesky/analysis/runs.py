"""Read Bluesky runs back from Tiled into plain Python and numpy.

A run written by :func:`hae_bluesky.catalog.subscribe_tiled_writer` is a Tiled
node with one child per stream (``"haadf"``, ``"measurements"``,
``"decisions"``, ``"interventions"``, ...). The functions here turn it into
dictionaries and numpy arrays, so that analysis code needs no Tiled, xarray or
pandas:

- :func:`read_start` / :func:`read_stop`: the start and stop documents;
- :func:`read_stream`: one stream as ``{data key: array}``, one row per event
  (spectra come back as ``(n_events, nE)``, images as ``(n_events, ny, nx)``);
- :func:`read_configuration`: the device configuration of a stream
  (for example ``eels_energy_axis``);
- :func:`load_run`: all of it at once, as a :class:`RunRecord`.

Each function takes a run node, or a run uid together with ``catalog=``.
A stream that is missing reads as ``{}``; a stream that was declared but has
no events reads as zero-length arrays of the declared shapes and dtypes.
A run may be read while it is still running.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "RunRecord",
    "get_run",
    "load_run",
    "read_configuration",
    "read_start",
    "read_stop",
    "read_stream",
    "stream_names",
]

logger = logging.getLogger(__name__)

#: Per-event columns every stream has besides its data keys.
EVENT_COLUMNS = ("time", "seq_num")
_TIMESTAMP_PREFIX = "ts_"


@dataclass
class RunRecord:
    """A run read back from Tiled, in plain Python and numpy.

    Attributes
    ----------
    uid : str
        Start document uid.
    start : dict
        Start document (the experiment's metadata).
    stop : dict or None
        Stop document; None while the run is still running.
    streams : dict
        ``{stream name: {data key: array}}``, as :func:`read_stream` returns.
    configuration : dict
        ``{stream name: {configuration key: value}}``, as
        :func:`read_configuration` returns.
    """

    uid: str
    start: dict[str, Any]
    stop: dict[str, Any] | None
    streams: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    configuration: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stream(self, name: str) -> dict[str, np.ndarray]:
        """The stream ``name``, or ``{}`` if the run has no such stream."""
        return self.streams.get(name, {})


def get_run(run: Any, *, catalog: Any = None) -> Any:
    """Return the run node for a run node or a uid.

    Parameters
    ----------
    run : str or BlueskyRun
        A run node of a Tiled client, or the uid (or unique uid prefix) of
        its start document.
    catalog : Catalog or tiled Container, optional
        Where to look up a uid; required when ``run`` is a string.

    Raises
    ------
    ValueError
        If ``run`` is a uid and no catalog is given.
    KeyError
        If the catalog has no run with that uid.
    """
    if not isinstance(run, str):
        return run
    if catalog is None:
        raise ValueError(f"run {run!r} is a uid: pass catalog= to look it up")
    client = getattr(catalog, "client", catalog)
    try:
        return client[run]
    except KeyError:
        raise KeyError(f"no run with uid {run!r} in the catalog") from None


def read_start(run: Any, *, catalog: Any = None) -> dict[str, Any]:
    """The start document of a run, as a plain dict."""
    return _plain(get_run(run, catalog=catalog).metadata["start"])


def read_stop(run: Any, *, catalog: Any = None) -> dict[str, Any] | None:
    """The stop document of a run as a plain dict; None while the run is running."""
    stop = get_run(run, catalog=catalog).metadata.get("stop")
    return None if stop is None else _plain(stop)


def stream_names(run: Any, *, catalog: Any = None) -> list[str]:
    """Names of the streams of a run, sorted."""
    return sorted(get_run(run, catalog=catalog))


def read_stream(
    run: Any,
    name: str,
    *,
    fields: Iterable[str] | None = None,
    include_timestamps: bool = False,
    catalog: Any = None,
) -> dict[str, np.ndarray]:
    """Read one stream of a run as ``{data key: numpy array}``, one row per event.

    Parameters
    ----------
    run : str or BlueskyRun
        The run, or its uid together with ``catalog``.
    name : str
        Stream name, for example ``"measurements"``.
    fields : iterable of str, optional
        Data keys to read; default all. ``"time"`` (event time, s since the
        epoch) and ``"seq_num"`` (1-based event number) are always included.
    include_timestamps : bool
        Also return ``"ts_<key>"``: the time each value was read, s since the
        epoch.
    catalog : Catalog or tiled Container, optional
        Where to look up ``run`` when it is a uid.

    Returns
    -------
    dict of str to numpy.ndarray
        Every array has the number of events as first dimension: a scalar
        key gives ``(n,)``, a spectrum ``(n, nE)``, an image ``(n, ny, nx)``.
        ``{}`` when the run has no stream ``name``; zero-length arrays of the
        declared shapes when the stream was declared but has no events.

    Raises
    ------
    KeyError
        If a requested field is not a data key of the stream.

    Notes
    -----
    A running experiment may be read between the writes of one event (its
    arrays and its table row are written separately); the result is cut to
    the events present in every field.
    """
    node = get_run(run, catalog=catalog)
    if name not in node:
        logger.debug("run has no stream %r; reading it as empty", name)
        return {}
    stream = node[name]
    data_keys = dict(stream.metadata.get("data_keys", {}))

    wanted = set(data_keys) if fields is None else set(fields)
    unknown = wanted - set(data_keys) - set(EVENT_COLUMNS)
    if unknown:
        raise KeyError(
            f"stream {name!r} has no data key(s) {sorted(unknown)}; "
            f"it has {sorted(data_keys)}"
        )
    wanted |= set(EVENT_COLUMNS)
    if include_timestamps:
        wanted |= {_TIMESTAMP_PREFIX + key for key in wanted - set(EVENT_COLUMNS)}

    present = set(stream)
    if not present:
        return _empty_stream(data_keys, wanted)
    missing = wanted - present
    if missing - {_TIMESTAMP_PREFIX + key for key in data_keys}:
        logger.debug("stream %r has no values yet for %s", name, sorted(missing))

    arrays = _read_variables(stream, sorted(wanted & present))
    arrays.update(_empty_stream(data_keys, missing))
    return _common_length(arrays)


def read_configuration(run: Any, name: str, *, catalog: Any = None) -> dict[str, Any]:
    """Device configuration of one stream, as ``{configuration key: value}``.

    Arrays (for example ``eels_energy_axis`` in eV) come back as numpy
    arrays, scalars as Python numbers or strings. The values are those read
    when the stream began; ``{}`` when the run has no stream ``name``.
    """
    node = get_run(run, catalog=catalog)
    if name not in node:
        return {}
    configuration: dict[str, Any] = {}
    for device in node[name].metadata.get("configuration", {}).values():
        for key, value in device.get("data", {}).items():
            value = _plain(value)
            configuration[key] = np.asarray(value) if isinstance(value, list) else value
    return configuration


def load_run(
    run: Any, *, catalog: Any = None, streams: Iterable[str] | None = None
) -> RunRecord:
    """Read a whole run (or the named streams of it) into a :class:`RunRecord`.

    Parameters
    ----------
    run : str or BlueskyRun
        The run, or its uid together with ``catalog``.
    catalog : Catalog or tiled Container, optional
        Where to look up ``run`` when it is a uid.
    streams : iterable of str, optional
        Streams to read; default all. A name the run lacks reads as ``{}``.
    """
    node = get_run(run, catalog=catalog)
    start = read_start(node)
    names = stream_names(node) if streams is None else list(streams)
    return RunRecord(
        uid=start["uid"],
        start=start,
        stop=read_stop(node),
        streams={name: read_stream(node, name) for name in names},
        configuration={name: read_configuration(node, name) for name in names},
    )


def _read_variables(stream: Any, keys: list[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` of a stream node; key by key if the stream is mid-event."""
    try:
        with warnings.catch_warnings():
            # A square image has two axes of one length, which xarray names
            # alike; the values are taken as plain arrays, so the names do
            # not matter.
            warnings.filterwarnings("ignore", "Duplicate dimension names", UserWarning)
            dataset = stream.read(variables=keys)
    except ValueError as error:
        # xarray refuses fields of different lengths: an array already holds
        # an event whose table row is not written yet.
        logger.debug("reading %s key by key (%s)", stream.item["id"], error)
        return {key: np.asarray(stream.read(variables=[key])[key].values) for key in keys}
    return {key: np.asarray(dataset[key].values) for key in dataset.variables}


def _empty_stream(data_keys: Mapping[str, Any], keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Zero-length arrays of the declared shape and dtype for ``keys``."""
    empty: dict[str, np.ndarray] = {}
    for key in keys:
        if key == "time":
            empty[key] = np.zeros(0, dtype="<f8")
        elif key == "seq_num":
            empty[key] = np.zeros(0, dtype="<i8")
        elif key.startswith(_TIMESTAMP_PREFIX) and key not in data_keys:
            empty[key] = np.zeros(0, dtype="<f8")
        else:
            data_key = data_keys[key]
            shape = tuple(data_key.get("shape") or ())
            empty[key] = np.zeros((0, *shape), dtype=_declared_dtype(data_key))
    return empty


def _declared_dtype(data_key: Mapping[str, Any]) -> np.dtype:
    dtype_numpy = data_key.get("dtype_numpy")
    if isinstance(dtype_numpy, str) and dtype_numpy:
        return np.dtype(dtype_numpy)
    return np.dtype(
        {"integer": "<i8", "number": "<f8", "boolean": "?", "string": "<U1"}.get(
            data_key.get("dtype"), "<f8"
        )
    )


def _common_length(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    lengths = {len(array) for array in arrays.values() if array.ndim}
    if len(lengths) <= 1:
        return arrays
    shortest = min(lengths)
    logger.debug("stream read mid-event: cutting fields to %d events", shortest)
    return {key: array[:shortest] if array.ndim else array for key, array in arrays.items()}


def _plain(value: Any) -> Any:
    """Deep copy of Tiled metadata as built-in dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
