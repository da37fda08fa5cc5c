"""The SpectrumImage record, its loaders and the demo-data registry."""

from __future__ import annotations

import numpy as np
import pytest
from rsciio.hspy import file_writer

from hae_bluesky.data import (
    DataUnavailableError,
    SpectrumImage,
    load_dataset,
    load_hae_npy,
    load_spectrum_image,
    registry,
    scalarizer_from_spec,
    scalarizer_preset,
)


def _record(ny=4, nx=3, channels=5):
    return dict(haadf=np.ones((ny, nx)), spectra=np.ones((ny, nx, channels)),
                energy_axis=np.arange(channels, dtype=float), pixel_size_nm=0.5)


def test_mismatched_grid_is_refused():
    fields = _record()
    fields["haadf"] = np.ones((3, 4))
    with pytest.raises(ValueError, match="does not match the HAADF image"):
        SpectrumImage(**fields)


def test_energy_axis_of_wrong_length_is_refused():
    fields = _record()
    fields["energy_axis"] = np.arange(4.0)
    with pytest.raises(ValueError, match="channels"):
        SpectrumImage(**fields)


def test_non_monotonic_energy_axis_is_refused():
    fields = _record()
    fields["energy_axis"] = np.array([0.0, 1.0, 3.0, 2.0, 4.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        SpectrumImage(**fields)


def test_all_nan_spectra_are_refused():
    fields = _record()
    fields["spectra"] = np.full((4, 3, 5), np.nan)
    with pytest.raises(ValueError, match="NaN or inf everywhere"):
        SpectrumImage(**fields)


def test_non_positive_pixel_size_is_refused():
    fields = _record()
    fields["pixel_size_nm"] = 0.0
    with pytest.raises(ValueError, match="pixel size"):
        SpectrumImage(**fields)


def test_spectrum_off_the_grid_is_refused():
    record = SpectrumImage(**_record())
    with pytest.raises(ValueError, match="off the 4 x 3 scan grid"):
        record.spectrum_at(4, 0)


def test_registry_loads_real_cuzn_with_its_axes(cuzn):
    assert cuzn.shape == (50, 40, 162)
    assert cuzn.energy_range == (700.0, 1988.0)
    assert cuzn.pixel_size_nm == pytest.approx(0.9214, abs=1e-4)
    assert cuzn.metadata["dataset"] == "cuzn"
    assert cuzn.metadata["haadf_derived"] is False
    assert not cuzn.is_synthetic


def _edge_map(record, preset):
    return scalarizer_from_spec(scalarizer_preset(preset))(record.spectra, record.energy_axis)


def _vacuum_noise(record, edge_map):
    """Pixel-to-pixel noise of a map among the dimmest tenth of HAADF pixels.

    The difference of two horizontally adjacent pixels has twice the noise
    variance of one pixel and almost none of the slowly varying structure.
    """
    dim = record.haadf <= np.percentile(record.haadf, 10)
    both_dim = dim[:, 1:] & dim[:, :-1]
    return np.nanstd(np.diff(edge_map, axis=1)[both_dim]) / np.sqrt(2)


def _neighbour_correlation(edge_map):
    left, right = edge_map[:, :-1].ravel(), edge_map[:, 1:].ravel()
    finite = np.isfinite(left) & np.isfinite(right)
    return np.corrcoef(left[finite], right[finite])[0, 1]


@pytest.mark.parametrize(("preset", "ratio"), [("cu_l23", 2.0), ("zn_l23", 1.3)])
def test_edge_maps_of_real_data_vary_more_than_their_noise(cuzn, preset, ratio):
    edge_map = _edge_map(cuzn, preset)
    assert np.nanstd(edge_map) > ratio * _vacuum_noise(cuzn, edge_map)


@pytest.mark.parametrize("preset", ["cu_l23", "zn_l23"])
def test_edge_maps_of_real_data_have_spatial_structure(cuzn, preset):
    # Pure noise has no correlation between neighbouring pixels.
    assert _neighbour_correlation(_edge_map(cuzn, preset)) > 0.2


def test_missing_data_without_network_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HAE_DATA_DIR", str(tmp_path))
    offline = registry.DataFile("absent.hspy", "http://127.0.0.1:9/absent.hspy", "0" * 64)
    dataset = registry.Dataset("offline", "test", offline, None, "none")
    monkeypatch.setitem(registry.DATASETS, "offline", dataset)

    with pytest.raises(DataUnavailableError, match="HAE_DATA_DIR") as error:
        load_dataset("offline")
    assert str(tmp_path) in str(error.value)
    assert "(no connection to the server)" in str(error.value)
    assert len(str(error.value)) < 500


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match="cuzn"):
        load_dataset("graphene")


def _write_hspy(path, data, axes):
    signal = {"data": data, "axes": axes,
              "metadata": {"General": {"title": "test"}, "Signal": {"signal_type": "EELS"}},
              "original_metadata": {}, "tmp_parameters": {},
              "attributes": {"_lazy": False},
              "package_info": {"name": "hae_bluesky", "version": "0.1"},
              "learning_results": {}, "models": {}}
    file_writer(str(path), signal)


def _axis(name, size, scale, offset=0.0, units="nm", navigate=True):
    return {"name": name, "size": size, "scale": scale, "offset": offset, "units": units,
            "navigate": navigate}


def test_non_square_map_with_energy_first_keeps_x_and_y(tmp_path):
    ny, nx, channels = 6, 4, 10
    cube = np.random.default_rng(0).poisson(50, (ny, nx, channels)).astype(np.float32)
    cube[1, 3, :] = 1000.0  # a marker pixel at row 1, column 3
    energy_first = np.transpose(cube, (2, 0, 1))
    _write_hspy(tmp_path / "si.hspy", energy_first, [
        _axis("Energy loss", channels, 2.0, 100.0, "eV", navigate=False),
        _axis("y", ny, 0.25), _axis("x", nx, 0.25),
    ])

    record = load_spectrum_image(tmp_path / "si.hspy")

    assert record.shape == (ny, nx, channels)
    assert np.array_equal(record.spectra, cube)
    assert record.energy_axis[[0, -1]].tolist() == [100.0, 118.0]
    assert record.pixel_size_nm == 0.25
    assert record.metadata["haadf_derived"] is True
    assert np.unravel_index(np.argmax(record.haadf), record.haadf.shape) == (1, 3)


def test_haadf_on_another_grid_is_refused(tmp_path):
    cube = np.ones((6, 4, 10), dtype=np.float32)
    _write_hspy(tmp_path / "si.hspy", cube, [
        _axis("y", 6, 1.0), _axis("x", 4, 1.0),
        _axis("Energy loss", 10, 1.0, 0.0, "eV", navigate=False),
    ])
    _write_hspy(tmp_path / "haadf.hspy", np.ones((4, 6), dtype=np.float32),
                [_axis("y", 4, 1.0, navigate=False), _axis("x", 6, 1.0, navigate=False)])

    with pytest.raises(ValueError, match="not on the spectrum image grid"):
        load_spectrum_image(tmp_path / "si.hspy", tmp_path / "haadf.hspy")


def test_hae_npy_layout_loads(tmp_path):
    content = {"image": np.arange(12.0).reshape(3, 4), "spectrum image": np.ones((3, 4, 7)),
               "energy axis": np.linspace(0.5, 2.0, 7), "scale": 1.7}
    np.save(tmp_path / "hae.npy", content, allow_pickle=True)

    record = load_hae_npy(tmp_path / "hae.npy")

    assert record.shape == (3, 4, 7)
    assert record.pixel_size_nm == 1.7
    assert record.haadf[2, 3] == 11.0


def test_hae_npy_missing_key_is_named(tmp_path):
    np.save(tmp_path / "bad.npy", {"image": np.ones((2, 2))}, allow_pickle=True)
    with pytest.raises(ValueError, match="spectrum image"):
        load_hae_npy(tmp_path / "bad.npy")


def test_reversed_energy_axis_names_the_channel_and_the_remedy():
    fields = _record()
    fields["energy_axis"] = np.arange(5.0)[::-1]
    with pytest.raises(ValueError, match="channel 1 is at 3 eV after 4 eV; sort or flip"):
        SpectrumImage(**fields)


@pytest.mark.parametrize("spectra", [np.full((4, 3, 5), "a"), np.ones((4, 3, 5)) + 1j,
                                     np.full((4, 3, 5), None)])
def test_spectra_that_are_not_real_numbers_are_refused(spectra):
    fields = _record()
    fields["spectra"] = spectra
    with pytest.raises(ValueError, match="spectra must hold real numbers"):
        SpectrumImage(**fields)


@pytest.mark.parametrize("size", ["half", None, [0.5, 0.5]])
def test_pixel_size_that_is_not_a_number_is_refused(size):
    fields = _record()
    fields["pixel_size_nm"] = size
    with pytest.raises(ValueError, match="pixel size must be a positive number of nm"):
        SpectrumImage(**fields)


def test_empty_spectrum_image_is_refused():
    with pytest.raises(ValueError, match=r"\(4, 3, 0\) .* is empty"):
        SpectrumImage(**_record(channels=0))


def test_missing_metadata_becomes_an_empty_dict():
    record = SpectrumImage(**_record(), metadata=None)
    assert record.metadata == {} and record.is_synthetic is False


def test_corrupt_microscope_file_is_named_in_the_error(tmp_path):
    (tmp_path / "si.hspy").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match=r"si\.hspy could not be read as a \.hspy file"):
        load_spectrum_image(tmp_path / "si.hspy")


def test_corrupt_hae_npy_is_named_in_the_error(tmp_path):
    (tmp_path / "hae.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"hae\.npy could not be read as a \.npy file"):
        load_hae_npy(tmp_path / "hae.npy")


def test_hae_npy_holding_no_dict_is_refused(tmp_path):
    np.save(tmp_path / "hae.npy", np.array("text", dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds a str, not the dict of the hAE layout"):
        load_hae_npy(tmp_path / "hae.npy")


def test_hae_npy_with_a_bad_value_names_the_file(tmp_path):
    content = {"image": np.ones((3, 4)), "spectrum image": np.ones((3, 4, 7)),
               "energy axis": np.linspace(0.5, 2.0, 7), "scale": "half"}
    np.save(tmp_path / "hae.npy", content, allow_pickle=True)
    with pytest.raises(ValueError, match=r"hae\.npy: pixel size must be a positive number"):
        load_hae_npy(tmp_path / "hae.npy")


def test_corrupt_copy_in_the_cache_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("HAE_DATA_DIR", str(tmp_path))
    (tmp_path / "absent.hspy").write_bytes(b"half a download")
    offline = registry.DataFile("absent.hspy", "http://127.0.0.1:9/absent.hspy", "0" * 64)
    dataset = registry.Dataset("offline", "test", offline, None, "none")
    monkeypatch.setitem(registry.DATASETS, "offline", dataset)

    with pytest.raises(DataUnavailableError, match="does not have the registered SHA-256"):
        load_dataset("offline")
    assert (tmp_path / "absent.hspy").read_bytes() == b"half a download"


def test_data_info_reads_hae_npy_files(tmp_path, capsys):
    from hae_bluesky.cli import main

    content = {"image": np.ones((3, 4)), "spectrum image": np.ones((3, 4, 7)),
               "energy axis": np.linspace(700.0, 706.0, 7), "scale": 0.5}
    np.save(tmp_path / "hae.npy", content, allow_pickle=True)
    assert main(["data", "info", str(tmp_path / "hae.npy")]) == 0
    assert "3 x 4 pixels, 7 channels 700-706 eV" in capsys.readouterr().out


def test_data_info_of_an_unknown_name_lists_the_data_sets(capsys):
    from hae_bluesky.cli import main

    assert main(["data", "info", "graphene"]) == 1
    assert "'graphene' is neither a registered data set (cuzn) nor a file" in (
        capsys.readouterr().err)
