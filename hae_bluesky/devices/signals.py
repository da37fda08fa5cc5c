"""ophyd signals with units, bounds and explicit array layouts.

ophyd infers ``dtype_numpy`` from a ``dtype=`` argument as a name such as
``'float64'``, which event-model 1.24 rejects for arrays. These signals
describe themselves with ``np.dtype(...).str`` (for example ``'<f8'``) and a
fixed shape, so that ``describe()`` always matches ``read()``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from ophyd import Signal

__all__ = ["ArraySignal", "QuantitySignal"]


class QuantitySignal(Signal):
    """A scalar in physical units, optionally bounded below and read-only.

    Parameters
    ----------
    units : str
        Units written into the data key (``"s"``, ``"nm"``, ...).
    minimum : float, optional
        Smallest allowed value; None for no bound.
    exclusive_minimum : bool
        If True the value must be strictly greater than ``minimum``.
    read_only : bool
        If True, ``put``/``set`` raise :class:`ophyd.utils.ReadOnlyError`;
        the owning device updates the value with ``put(value, force=True)``.
    **kwargs
        Passed to :class:`ophyd.Signal` (``name``, ``value``, ``kind``, ...).
    """

    def __init__(
        self,
        *,
        units: str,
        minimum: float | None = None,
        exclusive_minimum: bool = False,
        read_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.minimum = minimum
        self.exclusive_minimum = exclusive_minimum
        self._metadata.update(write_access=not read_only)

    def check_value(self, value: Any) -> None:
        """Raise ValueError unless ``value`` is a finite number within the bound."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.name} must be a number in {self.units}, got {value!r}"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"{self.name} must be finite ({self.units}), got {value!r}")
        if self.minimum is None:
            return
        if number < self.minimum or (self.exclusive_minimum and number == self.minimum):
            relation = "greater than" if self.exclusive_minimum else "at least"
            raise ValueError(
                f"{self.name} must be {relation} {self.minimum} {self.units}, got {value!r}"
            )

    def set(self, value: Any, **kwargs: Any) -> Any:
        """Set the value; a value out of bounds raises here, before any status exists."""
        self.check_value(value)
        return super().set(value, **kwargs)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data key: number, shape [], dtype_numpy ``'<f8'`` and units."""
        return {
            self.name: {
                "source": self.source_name,
                "dtype": "number",
                "shape": [],
                "dtype_numpy": np.dtype("<f8").str,
                "units": self.units,
            }
        }

    def get(self, **kwargs: Any) -> float:
        """The value as a Python float."""
        return float(super().get(**kwargs))


class ArraySignal(Signal):
    """A read-only array of fixed shape and dtype, filled by its device.

    Parameters
    ----------
    shape : tuple of int
        Shape of every value.
    dtype : numpy dtype-like
        dtype of every value; described as ``np.dtype(dtype).str``.
    units : str, optional
        Units written into the data key.
    **kwargs
        Passed to :class:`ophyd.Signal`.

    Notes
    -----
    The owning device declares the layout with :meth:`set_layout` when the
    layout is known only at run time (it comes from the backend), and
    publishes each new value with :meth:`publish`, which checks the shape.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...] = (),
        dtype: Any = "<f8",
        units: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._shape = tuple(int(n) for n in shape)
        self._dtype = np.dtype(dtype)
        kwargs.setdefault("value", np.zeros(self._shape, self._dtype))
        super().__init__(**kwargs)
        self.units = units
        self._metadata.update(write_access=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of every value."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of every value."""
        return self._dtype

    def set_layout(
        self, shape: tuple[int, ...], dtype: Any, value: np.ndarray | None = None
    ) -> None:
        """Declare shape and dtype; the value becomes ``value`` or zeros."""
        self._shape = tuple(int(n) for n in shape)
        self._dtype = np.dtype(dtype)
        self.publish(np.zeros(self._shape, self._dtype) if value is None else value)

    def publish(self, value: np.ndarray, timestamp: float | None = None) -> None:
        """Store a new value (cast to the declared dtype) and run subscriptions.

        Raises
        ------
        ValueError
            If the value does not have the declared shape.
        """
        array = np.asarray(value)
        if array.shape != self._shape:
            raise ValueError(
                f"{self.name} expects arrays of shape {self._shape}, got {array.shape}"
            )
        array = array.astype(self._dtype, copy=True)
        array.flags.writeable = False
        self.put(array, force=True, timestamp=time.time() if timestamp is None else timestamp)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data key: array, declared shape, ``dtype_numpy`` and units if any."""
        key: dict[str, Any] = {
            "source": self.source_name,
            "dtype": "array",
            "shape": list(self._shape),
            "dtype_numpy": self._dtype.str,
        }
        if self.units is not None:
            key["units"] = self.units
        return {self.name: key}
