"""Scalarizer choice for an experiment: preset names, JSON specs and their errors."""

from __future__ import annotations

import pytest

from hae_bluesky.data import scalarizer_preset
from hae_bluesky.experiment import resolve_scalarizer


def test_preset_name_gives_the_preset_spec(cuzn):
    assert resolve_scalarizer("zn_l23", cuzn) == scalarizer_preset("zn_l23")


def test_json_spec_is_parsed_and_validated(cuzn):
    spec = resolve_scalarizer('{"kind": "band_integral", "window": [930, 1000]}', cuzn)
    assert spec == {"kind": "band_integral", "window": [930, 1000]}


def test_malformed_json_spec_names_the_parse_error(cuzn):
    with pytest.raises(ValueError, match=r"is not valid JSON \(Expecting"):
        resolve_scalarizer('{"kind": "band_integral", "window": [930, 1000', cuzn)


def test_unknown_name_lists_the_presets(cuzn):
    with pytest.raises(ValueError, match="neither a preset of this data set .*cu_l23"):
        resolve_scalarizer("cu_k", cuzn)


def test_window_outside_the_energy_axis_is_refused(cuzn):
    with pytest.raises(ValueError, match="2100"):
        resolve_scalarizer({"kind": "band_integral", "window": [2100, 2200]}, cuzn)
