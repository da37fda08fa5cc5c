"""A synthetic "plasmonic twin": generated low-loss data for scale tests.

The data are SYNTHETIC. They imitate the kind of measurement the method was
made for (plasmonic nanoparticles in low-loss EELS) at any size, so that
speed and scale can be tested where no real spectrum image of that size is
at hand. They are never to be presented as a measurement: the metadata says
``synthetic: True`` and the title starts with "SYNTHETIC".

Model
-----
A cluster of discs (nanoparticles) is drawn at seeded random places. The
HAADF image is the projected thickness of spheres of those radii plus
Gaussian noise. Each spectrum is a sum of Lorentzian peaks on a decaying
zero-loss tail, with intensities that follow the geometry:

- dipole mode (``DIPOLE_EV``): long range, ``exp(-d_cluster / L)`` with
  ``d_cluster`` the distance in pixels from the nearest particle and
  ``L = 0.15 * min(ny, nx)``;
- edge mode (``EDGE_EV``): ``exp(-d_edge**2 / (2 w**2))`` with ``d_edge``
  the distance from a particle boundary and ``w = 1.5`` pixels;
- bulk mode (``BULK_EV``): proportional to the projected thickness, so only
  inside particles.

Counts are Poisson-distributed around that model (seeded).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hae_bluesky.data.spectrum_image import SpectrumImage

__all__ = ["BULK_EV", "DIPOLE_EV", "EDGE_EV", "make_plasmonic_twin", "twin_mode_maps"]

DIPOLE_EV = 0.45
EDGE_EV = 0.75
BULK_EV = 1.10
_WIDTHS_EV = {DIPOLE_EV: 0.06, EDGE_EV: 0.08, BULK_EV: 0.12}


def _lorentzian(energy_axis: np.ndarray, centre: float, width: float) -> np.ndarray:
    half = width / 2
    return (half**2 / ((energy_axis - centre) ** 2 + half**2)).astype(np.float32)


def _particles(shape: tuple[int, int], rng: np.random.Generator,
               n_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """Return projected thickness and a label image (0 outside particles)."""
    ny, nx = shape
    size = min(ny, nx)
    rows, columns = np.mgrid[0:ny, 0:nx]
    thickness = np.zeros(shape, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.int32)
    centre = np.array([ny, nx]) / 2
    for label in range(1, n_particles + 1):
        radius = rng.uniform(0.06, 0.12) * size
        position = centre + rng.normal(0, 0.18 * size, 2)
        squared = (rows - position[0]) ** 2 + (columns - position[1]) ** 2
        inside = squared < radius**2
        thickness += np.where(inside, 2 * np.sqrt(np.clip(radius**2 - squared, 0, None)), 0)
        labels[inside] = label
    return thickness / max(float(thickness.max()), 1e-6), labels


def twin_mode_maps(shape: tuple[int, int], seed: int = 0,
                   n_particles: int | None = None) -> dict[str, np.ndarray]:
    """Return the noise-free geometry maps of a twin: thickness and the three modes.

    Returns
    -------
    dict
        ``thickness``, ``dipole``, ``edge``, ``bulk`` (each (ny, nx), in
        [0, 1]) and ``labels`` (int, particle index, 0 outside).
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    count = n_particles or 8
    thickness, labels = _particles(shape, rng, count)
    outside = labels == 0
    distance_to_particle = ndimage.distance_transform_edt(outside)
    distance_inside = ndimage.distance_transform_edt(~outside)
    distance_to_edge = np.where(outside, distance_to_particle, distance_inside)
    length = 0.15 * min(ny, nx)
    return {
        "thickness": thickness,
        "labels": labels,
        "dipole": np.exp(-distance_to_particle / length).astype(np.float32),
        "edge": np.exp(-(distance_to_edge**2) / (2 * 1.5**2)).astype(np.float32),
        "bulk": thickness,
    }


def make_plasmonic_twin(
    shape: tuple[int, int] = (64, 64),
    seed: int = 0,
    n_channels: int = 96,
    energy_range_ev: tuple[float, float] = (0.2, 1.6),
    counts: float = 200.0,
    pixel_size_nm: float = 2.0,
    n_particles: int | None = None,
) -> SpectrumImage:
    """Generate a SYNTHETIC low-loss spectrum image of a nanoparticle cluster.

    Parameters
    ----------
    shape : (int, int)
        (ny, nx) of the scan grid; 64 x 64 to 512 x 512 are typical.
    seed : int
        Seed for geometry and noise; the same seed gives the same data.
    n_channels : int
        Number of energy channels.
    energy_range_ev : (float, float)
        First and last channel energy in eV.
    counts : float
        Peak counts of a mode at full strength (sets the Poisson noise level).
    pixel_size_nm : float
        Scan step in nm.
    n_particles : int, optional
        Number of particles (8 by default).

    Returns
    -------
    SpectrumImage
        float32 spectra; metadata ``synthetic: True`` and the mode energies.
    """
    ny, nx = shape
    if ny < 8 or nx < 8:
        raise ValueError(f"a twin needs at least 8 x 8 pixels, got {shape}")
    maps = twin_mode_maps(shape, seed, n_particles)
    rng = np.random.default_rng(seed + 1)
    energy_axis = np.linspace(*energy_range_ev, n_channels)

    model = np.zeros((ny, nx, n_channels), dtype=np.float32)
    model += 0.3 * counts * np.exp(-energy_axis / 0.15).astype(np.float32)
    for name, centre in (("dipole", DIPOLE_EV), ("edge", EDGE_EV), ("bulk", BULK_EV)):
        peak = _lorentzian(energy_axis, centre, _WIDTHS_EV[centre])
        model += (counts * maps[name])[..., None] * peak
    spectra = rng.poisson(model).astype(np.float32)

    haadf = 1000.0 * maps["thickness"] + 50.0
    haadf = haadf + rng.normal(0, 10.0, shape)
    metadata = {
        "synthetic": True,
        "title": "SYNTHETIC plasmonic twin (generated, not measured)",
        "dataset": "twin",
        "seed": seed,
        "modes_ev": {"dipole": DIPOLE_EV, "edge": EDGE_EV, "bulk": BULK_EV},
        "haadf_derived": False,
    }
    return SpectrumImage(haadf.astype(np.float32), spectra, energy_axis, pixel_size_nm,
                         metadata)
