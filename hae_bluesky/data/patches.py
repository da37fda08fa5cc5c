"""Patches: the N x N windows of the HAADF image around candidate positions.

Conventions
-----------
A candidate position is a pixel ``(row, column)`` of the HAADF image whose
whole N x N window lies inside the image; no padding is invented. For an odd
N the window is centred on the pixel. For an even N there is no central
pixel: the window spans ``row - N // 2`` to ``row + N // 2 - 1`` (the centre
pixel is the lower-right one of the central four). With these rules an image
of ``ny x nx`` pixels gives ``M = (ny - N + 1) * (nx - N + 1)`` patches, in
row-major order of their centre pixels.

Beam positions are in nm from the corner of the scanned field:
``x_nm = column * pixel_size_nm`` and ``y_nm = row * pixel_size_nm``.

Normalisation
-------------
``"image"`` (default) scales the whole HAADF image once to [0, 1] with its
own minimum and maximum. It uses only the image, which a live experiment has
before the first spectrum. ``"patch"`` subtracts each patch's mean and
divides by its standard deviation (with a floor), so only contrast within a
patch matters. ``"none"`` keeps the raw counts.

Memory: the patches are gathered from a strided view of the image straight
into one (M, N, N) float32 array; no intermediate of that size is made (for
``"patch"``, the standardisation works in place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Normalisation = Literal["image", "patch", "none"]

__all__ = ["Patches", "extract_patches", "window_offset"]


def window_offset(patch_size: int) -> int:
    """Return how many pixels a window reaches above and left of its centre.

    Parameters
    ----------
    patch_size : int
        N, the window side in pixels.

    Returns
    -------
    int
        ``N // 2``: the centre pixel of the window starting at ``(r0, c0)``
        is ``(r0 + N // 2, c0 + N // 2)``.
    """
    return patch_size // 2


@dataclass(frozen=True)
class Patches:
    """Every N x N patch of one HAADF image and where each one sits.

    Attributes
    ----------
    values : numpy.ndarray
        (M, N, N) float32 patches, C-contiguous.
    rows, columns : numpy.ndarray
        (M,) int centre pixel of each patch in the HAADF image.
    patch_size : int
        N in pixels.
    pixel_size_nm : float
        Size of one image pixel in nm.
    image_shape : tuple of int
        (ny, nx) of the HAADF image.
    normalisation : str
        ``"image"``, ``"patch"`` or ``"none"`` (see the module docstring).
    """

    values: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    patch_size: int
    pixel_size_nm: float
    image_shape: tuple[int, int]
    normalisation: str

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of the grid of candidate positions."""
        ny, nx = self.image_shape
        return ny - self.patch_size + 1, nx - self.patch_size + 1

    @property
    def positions_nm(self) -> np.ndarray:
        """(M, 2) beam positions ``(x_nm, y_nm)`` of the patch centres."""
        return np.column_stack([self.columns, self.rows]) * self.pixel_size_nm

    def flat(self) -> np.ndarray:
        """Return the patches as an (M, N * N) float32 view (no copy)."""
        return self.values.reshape(len(self), -1)

    def index_of(self, row: int, column: int) -> int:
        """Return the patch index centred on pixel ``(row, column)``.

        Raises
        ------
        ValueError
            If no whole patch is centred there (too close to the edge or
            off the image).
        """
        offset = window_offset(self.patch_size)
        grid_rows, grid_columns = self.grid_shape
        grid_row, grid_column = int(row) - offset, int(column) - offset
        if not (0 <= grid_row < grid_rows and 0 <= grid_column < grid_columns):
            raise ValueError(
                f"pixel (row={row}, column={column}) is not the centre of a whole "
                f"{self.patch_size} x {self.patch_size} patch in a "
                f"{self.image_shape[0]} x {self.image_shape[1]} image; centres lie in "
                f"rows {offset}-{offset + grid_rows - 1} and columns "
                f"{offset}-{offset + grid_columns - 1}"
            )
        return grid_row * grid_columns + grid_column

    def nearest_index(self, x_nm: float, y_nm: float) -> int:
        """Return the patch whose centre is nearest to a beam position in nm.

        Raises
        ------
        ValueError
            If the position lies outside the scanned field of view.
        """
        ny, nx = self.image_shape
        size = self.pixel_size_nm
        if not (np.isfinite(x_nm) and np.isfinite(y_nm)):
            raise ValueError(f"beam position ({x_nm}, {y_nm}) nm is not finite")
        if not (-0.5 * size <= x_nm <= (nx - 0.5) * size
                and -0.5 * size <= y_nm <= (ny - 0.5) * size):
            raise ValueError(
                f"beam position ({x_nm:.3g}, {y_nm:.3g}) nm lies outside the field of "
                f"view 0-{(nx - 1) * size:.4g} nm (x) by 0-{(ny - 1) * size:.4g} nm (y)"
            )
        offset = window_offset(self.patch_size)
        grid_rows, grid_columns = self.grid_shape
        row = int(np.clip(round(y_nm / size), offset, offset + grid_rows - 1))
        column = int(np.clip(round(x_nm / size), offset, offset + grid_columns - 1))
        return self.index_of(row, column)


def _scaled_image(image: np.ndarray, normalisation: str) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if normalisation != "image":
        return image
    low, high = np.nanmin(image), np.nanmax(image)
    span = high - low if high > low else 1.0
    return (image - low) / span


def _standardise_in_place(values: np.ndarray, block: int = 8192) -> None:
    # Blocks keep the temporaries of mean and std small next to the patches.
    for start in range(0, len(values), block):
        chunk = values[start:start + block]
        chunk -= chunk.mean(axis=(1, 2), keepdims=True)
        chunk /= np.maximum(chunk.std(axis=(1, 2), keepdims=True), 1e-6)


def extract_patches(
    image: np.ndarray,
    patch_size: int,
    pixel_size_nm: float = 1.0,
    normalisation: Normalisation = "image",
) -> Patches:
    """Cut every whole N x N patch out of a HAADF image, without a pixel loop.

    Parameters
    ----------
    image : numpy.ndarray
        (ny, nx) HAADF image.
    patch_size : int
        N, the patch side in pixels (any N from 1 up to the image size).
    pixel_size_nm : float
        Pixel size in nm, for the beam positions of the patch centres.
    normalisation : {"image", "patch", "none"}
        See the module docstring.

    Returns
    -------
    Patches

    Raises
    ------
    ValueError
        For a patch size that is not a positive integer or is larger than the
        image, a non-2-D image, or an image that is not finite everywhere.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"HAADF image must be 2-D (ny, nx), got shape {image.shape}")
    if int(patch_size) != patch_size or patch_size < 1:
        raise ValueError(f"patch size must be a positive integer, got {patch_size!r}")
    patch_size = int(patch_size)
    ny, nx = image.shape
    if patch_size > min(ny, nx):
        raise ValueError(
            f"patch size {patch_size} is larger than the {ny} x {nx} HAADF image"
        )
    if not np.all(np.isfinite(image)):
        raise ValueError("HAADF image contains NaN or inf pixels; patches would be undefined")
    if normalisation not in ("image", "patch", "none"):
        raise ValueError(
            f"unknown normalisation {normalisation!r}; use 'image', 'patch' or 'none'"
        )

    scaled = _scaled_image(image, normalisation)
    windows = sliding_window_view(scaled, (patch_size, patch_size))
    grid_rows, grid_columns = windows.shape[:2]
    values = windows.reshape(grid_rows * grid_columns, patch_size, patch_size)
    if normalisation == "patch":
        _standardise_in_place(values)

    offset = window_offset(patch_size)
    grid_row, grid_column = np.divmod(np.arange(grid_rows * grid_columns), grid_columns)
    return Patches(
        values=values,
        rows=grid_row + offset,
        columns=grid_column + offset,
        patch_size=patch_size,
        pixel_size_nm=float(pixel_size_nm),
        image_shape=(ny, nx),
        normalisation=normalisation,
    )
