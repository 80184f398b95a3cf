"""The E4 loader on the real sample export and on broken ones."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomalake.errors import AnomalakeError
from anomalake.loaders.e4 import find_exports, frames, load_export
from tests.conftest import SHARED_DATA

SAMPLE = SHARED_DATA / "e4-sample"
START = 1_600_000_000  # 2020-09-13T12:26:40Z


def _utc(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _export(folder: Path, **files: str) -> Path:
    """An export with four well-formed sensor files, overridden or removed by ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "ACC": f"{START}, {START}, {START}\n32, 32, 32\n" + "1,2,3\n" * 64,
        "BVP": f"{START}\n64\n" + "0.5\n" * 128,
        "EDA": f"{START}\n4\n" + "0.25\n" * 8,
        "TEMP": f"{START}\n4\n" + "33.0\n" * 8,
    } | files
    for stem, text in texts.items():
        if text is not None:
            (folder / f"{stem}.csv").write_text(text)
    return folder


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"the E4 sample is not at {SAMPLE}")
def test_the_real_sample_loads_on_one_clock() -> None:
    export = load_export(SAMPLE)
    assert set(export.signals) == {"ACC", "BVP", "EDA", "TEMP", "HR"}
    assert export.missing == ("tags",) and export.rejected.empty
    rates = {name: s.rate for name, s in export.signals.items()}
    assert rates == {"ACC": 32.0, "BVP": 64.0, "EDA": 4.0, "TEMP": 4.0, "HR": 1.0}
    acc = export.signals["ACC"].data
    assert acc["time"].iloc[0] == _utc(1560279825)
    # the 65th ACC sample is two seconds in; its values are the file's line 67
    with open(SAMPLE / "ACC.csv") as fh:
        line_67 = list(csv.reader(fh))[66]
    assert acc["time"].iloc[64] == _utc(1560279827)
    assert acc.iloc[64][["acc_x", "acc_y", "acc_z"]].tolist() == [float(v) for v in line_67]
    hr = export.signals["HR"].data  # HR starts 10 s after the session (its own start row)
    assert hr["time"].iloc[0] == _utc(1560279835) and hr["hr"].iloc[0] == 93.0
    ibi = export.ibi
    assert len(ibi) == 4999 and (ibi["ibi_s"] > 0).all() and ibi["time"].is_monotonic_increasing
    assert ibi["time"].iloc[0] == pd.Timestamp("2019-06-11 19:05:08.503822", tz="UTC")

    every = list(frames(export))
    first = every[0]
    assert (first["device"], first["time"]) == ("e4-sample", 1560279825)
    assert [len(first[k]) for k in ("acc", "bvp", "eda", "temp", "hr")] == [32, 64, 4, 4, 0]
    assert every[10]["hr"] == [93.0] and every[83]["ibi"] == [[0.503822, 0.609403]]
    assert every[-1]["time"] == 1560279825 + len(every) - 1
    json.dumps(first)  # a frame is plain JSON


def test_rejected_rows_have_a_reason_and_keep_their_place(tmp_path: Path) -> None:
    acc = f"{START}, {START}, {START}\n32, 32, 32\n" + "1,2,3\n" * 32 + "4,5\n" + "6,7,8\n" * 3
    eda = f"{START}\n4\n0.1\nnan\n\n0.4\nabc\n0.6\n0.7,0.8\n0.9\n"
    export = load_export(_export(tmp_path / "x", ACC=acc, EDA=eda))
    reasons = export.rejected.set_index(["file", "line"])["reason"].to_dict()
    assert reasons == {
        ("ACC.csv", 35): "expected 3 values, got 2",
        ("EDA.csv", 4): "NaN or infinite value",
        ("EDA.csv", 5): "empty row",
        ("EDA.csv", 7): "not a number",
        ("EDA.csv", 9): "expected 1 values, got 2",
    }
    eda_rows = export.signals["EDA"].data
    assert eda_rows["eda"].tolist() == [0.1, 0.4, 0.6, 0.9]
    # line 10 is the eighth sample at 4 Hz: 1.75 s after the start, whatever was rejected
    assert eda_rows["time"].tolist() == [_utc(START + t) for t in (0.0, 0.75, 1.25, 1.75)]
    assert export.signals["ACC"].data["time"].iloc[-1] == _utc(START + 35 / 32)
    (second_0, second_1) = list(frames(export))
    assert second_0["eda"] == [0.1, None, None, 0.4] and second_1["eda"] == [None, 0.6, None, 0.9]
    assert second_1["acc"][0] is None and second_1["acc"][1] == [6.0, 7.0, 8.0]


def test_optional_files_may_be_missing_and_are_read_when_there(tmp_path: Path) -> None:
    bare = load_export(_export(tmp_path / "bare"))
    assert bare.missing == ("HR", "IBI", "tags") and bare.ibi.empty and bare.tags.empty
    full = load_export(
        _export(
            tmp_path / "full",
            HR=f"{START}\n1\n70\n71\n",
            IBI=f"{START}, IBI\n0.9,0.9\n1.7,0.8\n1.8,-0.1\n",
            tags=f"{START + 1.5}\n",
        )
    )
    assert full.missing == () and full.signals["HR"].data["hr"].tolist() == [70.0, 71.0]
    assert full.ibi["ibi_s"].tolist() == [0.9, 0.8]
    assert full.rejected.to_dict("records") == [
        {"file": "IBI.csv", "line": 4, "reason": "negative time or non-positive interval"}
    ]
    second_0, second_1 = list(frames(full))
    assert second_0["ibi"] == [[0.9, 0.9]] and second_1["ibi"] == [[0.7, 0.8]]
    assert second_0["tags"] == [] and second_1["tags"] == [0.5]


def test_a_zip_from_the_portal_names_its_device(tmp_path: Path) -> None:
    folder = _export(tmp_path / "session")
    archive = tmp_path / f"{START}_A01B2C.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in folder.iterdir():
            zf.write(file, file.name)
    from_zip, from_folder = load_export(archive), load_export(folder)
    assert from_zip.device == "A01B2C" and from_folder.device == "session"
    for name, signal in from_folder.signals.items():
        pd.testing.assert_frame_equal(from_zip.signals[name].data, signal.data)
    assert find_exports(tmp_path) == [archive, folder]


def test_what_is_not_an_export_is_refused_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "readings.csv").write_text("a,b\n1,2\n")
    (other / "ACC.csv").write_text(f"{START}, {START}, {START}\n32, 32, 32\n1,2,3\n")
    with pytest.raises(AnomalakeError) as err:
        load_export(other)
    message = str(err.value)
    assert "\n" not in message and "no BVP.csv, EDA.csv, TEMP.csv" in message
    assert "found ACC, readings" in message
    with pytest.raises(AnomalakeError, match="EDA.csv sample rate is not a number: 'four'"):
        load_export(_export(tmp_path / "rate", EDA=f"{START}\nfour\n1\n"))
    with pytest.raises(AnomalakeError, match="not Unix seconds"):
        load_export(_export(tmp_path / "millis", TEMP=f"{START * 1000}\n4\n33\n"))
    with pytest.raises(AnomalakeError, match="does not exist"):
        load_export(tmp_path / "nowhere")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789.,-eEnaif \t", max_size=12),
            st.floats(allow_nan=True, allow_infinity=True).map(str),
        ),
        max_size=40,
    )
)
def test_any_rows_are_samples_or_rejected_never_a_crash(tmp_path_factory, rows) -> None:  # type: ignore[no-untyped-def]
    folder = _export(tmp_path_factory.mktemp("e4"), EDA=f"{START}\n4\n" + "\n".join(rows))
    export = load_export(folder)
    eda = export.signals["EDA"]
    rejected = export.rejected[export.rejected["file"] == "EDA.csv"]
    assert len(eda.data) + len(rejected) == eda.slots
    assert eda.data["eda"].map(lambda v: v == v and abs(v) != float("inf")).all()
    assert eda.data["time"].is_monotonic_increasing
    for frame in frames(export):
        json.dumps(frame, allow_nan=False)
