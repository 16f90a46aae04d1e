"""fit.save / bm.load and pickling: exact round trips, format version, refusals."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _post_fits import cbpp_fit, sleep_fit

import bayesmix as bm
from bayesmix.results.persist import (
    FORMAT_VERSION,
    _decode_frame,
    _encode_frame,
    design_fingerprint,
)


@pytest.fixture(scope="module")
def sleep():
    return sleep_fit()


@pytest.fixture(scope="module")
def saved(sleep, tmp_path_factory):
    path = tmp_path_factory.mktemp("fits") / "sleep.bayesmix"
    sleep.save(path)
    return path


NEW = pd.DataFrame({"Days": [0.5, 3.0, 7.0], "Subject": ["308", "Ann", "372"]},
                   index=["x", "y", "z"])


def assert_same_predictions(a: bm.FitResult, b: bm.FitResult) -> None:
    for kind in ("linear", "mean", "response"):
        pa = a.predict(NEW, kind=kind, re="sample_new", random_seed=7)
        pb = b.predict(NEW, kind=kind, re="sample_new", random_seed=7)
        xr.testing.assert_identical(pa["predictions"].to_dataset(),
                                    pb["predictions"].to_dataset())


def test_save_load_round_trip_is_exact(sleep, saved):
    back = bm.load(saved)
    for group in sleep.idata.children:
        if group == "sample_stats":  # None messages come back as NaN; numbers are exact
            continue
        xr.testing.assert_identical(sleep.idata[group].to_dataset(),
                                    back.idata[group].to_dataset())
    for name in ("diverging", "energy", "step_size"):
        np.testing.assert_array_equal(sleep.idata["sample_stats"][name].values,
                                      back.idata["sample_stats"][name].values)
    assert back.settings == sleep.settings
    assert back.timing == pytest.approx(sleep.timing)
    assert back.model.centered == sleep.model.centered
    assert list(back.model.prior_specs) == list(sleep.model.prior_specs)
    assert_same_predictions(sleep, back)
    pd.testing.assert_frame_equal(back.fixef(), sleep.fixef())
    assert str(back.summary()) == str(sleep.summary())


def test_layout_and_format_version(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["bayesmix.json", "idata.zarr"]
    meta = json.loads((saved / "bayesmix.json").read_text())
    assert meta["format"] == "bayesmix-fit" and meta["format_version"] == FORMAT_VERSION == 1
    assert meta["model"]["formula"] == "Reaction ~ Days + (1 | Subject)"
    assert meta["model"]["centered"] == {"Subject": True}


def test_newer_format_is_refused_with_a_clear_error(saved, tmp_path):
    import shutil

    copy = tmp_path / "future.bayesmix"
    shutil.copytree(saved, copy)
    meta = json.loads((copy / "bayesmix.json").read_text())
    meta["format_version"] = 99
    meta["bayesmix_version"] = "9.0"
    (copy / "bayesmix.json").write_text(json.dumps(meta))
    with pytest.raises(bm.PersistError, match="bayesmix 9.0 in format version 99.*reads "
                                              "versions up to 1: upgrade bayesmix"):
        bm.load(copy)


def test_tampered_design_is_refused(saved, tmp_path):
    import shutil

    copy = tmp_path / "tampered.bayesmix"
    shutil.copytree(saved, copy)
    meta = json.loads((copy / "bayesmix.json").read_text())
    meta["data"]["columns"][1]["values"][0] = 1.0  # Days of the first row
    (copy / "bayesmix.json").write_text(json.dumps(meta))
    with pytest.raises(bm.PersistError, match="design rebuilt .* differs"):
        bm.load(copy)


def test_save_refuses_to_overwrite_and_load_refuses_other_paths(sleep, saved, tmp_path):
    with pytest.raises(bm.PersistError, match="exists; pass overwrite=True"):
        sleep.save(saved)
    sleep.save(saved, overwrite=True)
    other = tmp_path / "notes"
    other.mkdir()
    with pytest.raises(bm.PersistError, match="not a saved bayesmix fit; refusing"):
        sleep.save(other, overwrite=True)
    with pytest.raises(bm.PersistError, match="not a saved bayesmix fit"):
        bm.load(other)


def test_pickle_round_trip(sleep):
    cached = {k for k in ("pymc_model", "kernel_arrays") if k in sleep.model.__dict__}
    assert cached  # the fit built one of them (the kernel's arrays, for this model)
    blob = pickle.dumps(sleep)
    back = pickle.loads(blob)
    assert back.model._compiled is None
    assert not {"pymc_model", "kernel_arrays"} & set(back.model.__dict__)
    np.testing.assert_array_equal(back.model.design.X, sleep.model.design.X)
    assert design_fingerprint(back.model) == design_fingerprint(sleep.model)
    assert_same_predictions(sleep, back)
    assert cached <= set(sleep.model.__dict__)  # pickling left the original alone


def test_binomial_fit_with_user_priors_round_trips(tmp_path):
    fit = cbpp_fit()
    path = fit.save(tmp_path / "cbpp.bayesmix")
    back = bm.load(path)
    data = bm.datasets.load("cbpp").iloc[:5]
    a = fit.predict(data, kind="response", random_seed=3)["predictions"]["incidence"].values
    b = back.predict(data, kind="response", random_seed=3)["predictions"]["incidence"].values
    np.testing.assert_array_equal(a, b)
    # User priors travel as arguments (a model only: no need to sample to check it).
    model = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"),
                     priors={"sd": bm.Prior("HalfNormal", sigma=80)})
    rebuilt = pickle.loads(pickle.dumps(model))
    assert rebuilt.priors.equals(model.priors)
    assert rebuilt.priors.loc["1|Batch", "source"] == "user"


def test_data_encoding_keeps_dtypes_missing_values_and_index():
    frame = pd.DataFrame({
        "x": [1.5, np.nan, -2.25, 1e-300],
        "n": np.array([1, 2, 3, 4], dtype=np.int64),
        "flag": [True, False, True, True],
        "g": pd.Categorical(["b", "a", "b", None], categories=["b", "a"], ordered=True),
        "s": ["u", "v", "w", "u"],
        "o": np.array(["p", 3, None, "q"], dtype=object),
    }, index=pd.Index(["r1", "r2", "r3", "r4"], name="row"))
    back = _decode_frame(json.loads(json.dumps(_encode_frame(frame))))
    pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(bm.PersistError, match="plain"):
        _encode_frame(frame.set_index(["n", "s"]))


def test_rows_dropped_for_missing_values_stay_dropped(tmp_path):
    df = bm.datasets.load("dyestuff")
    df.loc[[2, 9], "Yield"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bm.Model("Yield ~ 1 + (1 | Batch)", df)
    rebuilt = pickle.loads(pickle.dumps(model))
    assert rebuilt.design.n == 28 and list(rebuilt.design.dropped) == [2, 9]
    assert design_fingerprint(rebuilt) == design_fingerprint(model)
