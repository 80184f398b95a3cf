from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from anomalake.errors import AnomalakeError
from anomalake.loaders.nslkdd import FEATURES, FILES, load_nslkdd, load_nslkdd_folder
from anomalake.loaders.toniot import detect_activity, load_toniot, parse_metric, toniot_files
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA
SHARED_KDD = SHARED / "nsl-kdd"
SHARED_TONIOT = SHARED / "ton-iot-linux-sample"

# Real lines of KDDTrain+_20Percent.txt and KDDTest-21.txt.
KDD_LINES = [
    "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,"
    "0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20",
    "0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,"
    "0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19",
    "0,udp,private,SF,44,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,4,3,0.00,0.00,0.00,0.00,0.75,0.50,"
    "0.00,255,254,1.00,0.01,0.01,0.00,0.00,0.00,0.00,0.00,snmpguess,12",
]


def _kdd_file(tmp_path: Path, lines: list[str], name: str = "KDDTrain+_20Percent.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nslkdd_rows_are_typed_and_labelled(tmp_path: Path) -> None:
    frame = load_nslkdd(_kdd_file(tmp_path, KDD_LINES))
    assert list(frame.columns) == [*FEATURES, "class", "difficulty", "attack", "family"]
    assert len(FEATURES) == 41
    assert frame["attack"].tolist() == [False, True, True]
    assert frame["family"].tolist() == ["normal", "dos", "unknown"]  # snmpguess: test-only
    assert frame["difficulty"].tolist() == [20, 19, 12]
    assert frame["protocol_type"].tolist() == ["tcp", "tcp", "udp"]
    assert frame["src_bytes"].tolist() == [491, 0, 44]
    assert frame["serror_rate"].tolist() == [0.0, 1.0, 0.0]
    numeric = [c for c in FEATURES if c not in ("protocol_type", "service", "flag")]
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in numeric)


def test_nslkdd_header_line_and_missing_difficulty_are_tolerated(tmp_path: Path) -> None:
    header = ",".join([*FEATURES, "class"])
    lines = [line.rsplit(",", 1)[0] for line in KDD_LINES]  # 42 columns
    frame = load_nslkdd(_kdd_file(tmp_path, [header, *lines]))
    assert len(frame) == 3
    assert frame["difficulty"].isna().all()
    assert frame["class"].tolist() == ["normal", "neptune", "snmpguess"]


def test_nslkdd_errors_name_the_cause(tmp_path: Path) -> None:
    with pytest.raises(AnomalakeError, match="no NSL-KDD file"):
        load_nslkdd(tmp_path / "KDDTest+.txt")
    with pytest.raises(AnomalakeError, match="has 3 columns"):
        load_nslkdd(_kdd_file(tmp_path, ["1,2,3"], "a.txt"))
    with pytest.raises(AnomalakeError, match="does not have 43 columns"):
        load_nslkdd(_kdd_file(tmp_path, [KDD_LINES[0], KDD_LINES[1] + ",9"], "b.txt"))
    with pytest.raises(AnomalakeError, match="data row 2 has fewer than 43"):
        load_nslkdd(_kdd_file(tmp_path, [KDD_LINES[0], KDD_LINES[1].rsplit(",", 1)[0]], "c.txt"))
    swapped = KDD_LINES[1].replace("0,tcp,private", "tcp,0,private", 1)
    with pytest.raises(AnomalakeError, match="column duration has the non-numeric value 'tcp'"):
        load_nslkdd(_kdd_file(tmp_path, [KDD_LINES[0], swapped], "d.txt"))


MEMORY_CSV = (
    "\ufeffts,PID,MINFLT,MAJFLT,VSTEXT,VSIZE,RSIZE,VGROW,RGROW,MEM,CMD,attack,type\n"
    "1554218915,3257,859502,54,193,2,519.1,2,519.1,0.14,Web-Content,0,normal\n"
    "1554218920,3197,247354,95,193,2.6G,402,-2.6,402,0.11,firefox,1,ddos\n"
)
PROCESS_CSV = (
    "ts,PID,TRUN,TSLPI,TSLPU,POLI,NICE,PRI,RTPR,CPUNR,Status,EXC,State,CPU,CMD,label,type\n"
    "1554218915,3257,0,23,0,norm,0,120,0,2,N,0,S,0.13,Web-Content,0,normal\n"
    "1554218945,3119,0,3,0,norm,10,130,0,0,N,0,S,0.01,update-manager,1,Password\n"
)


def test_toniot_memory_layout_with_attack_column(tmp_path: Path) -> None:
    path = tmp_path / "linux_memory1.csv"
    path.write_text(MEMORY_CSV, encoding="utf-8")
    frame = load_toniot(path)
    assert frame.attrs["activity"] == "memory"
    memory_columns = ["MINFLT", "MAJFLT", "VSTEXT", "VSIZE", "RSIZE", "VGROW", "RGROW", "MEM"]
    assert list(frame.columns) == ["ts", "PID", *memory_columns, "CMD", "label", "type"]
    assert frame["label"].tolist() == [0, 1]
    assert str(frame["label"].dtype) == "int8"
    assert frame["type"].tolist() == ["normal", "ddos"]
    assert str(frame["ts"].iloc[0]) == "2019-04-02 15:28:35+00:00"
    assert frame["VSIZE"].tolist() == [2.0, pytest.approx(2.6 * 1024**3)]
    assert frame["VGROW"].tolist() == [2.0, -2.6]
    assert frame["CMD"].tolist() == ["Web-Content", "firefox"]


def test_toniot_process_layout_keeps_text_columns(tmp_path: Path) -> None:
    path = tmp_path / "linux_process_1.csv"
    path.write_text(PROCESS_CSV)
    frame = load_toniot(path, "process")
    assert frame.attrs["activity"] == "process"
    assert frame["POLI"].tolist() == ["norm", "norm"]
    assert frame["State"].tolist() == ["S", "S"]
    assert frame["NICE"].tolist() == [0.0, 10.0]
    assert frame["type"].tolist() == ["normal", "password"]
    assert frame["PID"].tolist() == [3257, 3119]


def test_toniot_errors_name_the_cause(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,PID,CPU,label\n1,2,3,0\n")
    with pytest.raises(AnomalakeError, match="match no ToN-IoT Linux layout"):
        load_toniot(bad)
    memory = tmp_path / "linux_memory1.csv"
    memory.write_text(MEMORY_CSV)
    with pytest.raises(AnomalakeError, match="has the memory layout, not process"):
        load_toniot(memory, "process")
    with pytest.raises(AnomalakeError, match="no activity was named"):
        load_toniot(tmp_path)
    with pytest.raises(AnomalakeError, match="no ToN-IoT file"):
        load_toniot(tmp_path / "missing.csv")
    with pytest.raises(AnomalakeError, match="no ToN-IoT Linux disk"):
        toniot_files(tmp_path, "disk")
    labelled = tmp_path / "x.csv"
    labelled.write_text(MEMORY_CSV.replace(",1,ddos", ",yes,ddos"))
    with pytest.raises(AnomalakeError, match="'yes' is not 0 or 1"):
        load_toniot(labelled)
    with pytest.raises(AnomalakeError, match="unknown ToN-IoT Linux activity"):
        toniot_files(tmp_path, "network")


def test_toniot_folder_reads_only_the_named_activity(tmp_path: Path) -> None:
    (tmp_path / "linux_memory1.csv").write_text(MEMORY_CSV)
    (tmp_path / "linux_memory2.csv").write_text(MEMORY_CSV)
    (tmp_path / "linux_process_1.csv").write_text(PROCESS_CSV)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    assert [p.name for p in toniot_files(tmp_path, "memory")] == [
        "linux_memory1.csv",
        "linux_memory2.csv",
    ]
    frame = load_toniot(tmp_path, "memory")
    assert len(frame) == 4 and frame.attrs["activity"] == "memory"
    assert detect_activity(PROCESS_CSV.splitlines()[0].split(",")) == "process"


def test_metric_suffixes_scale_by_powers_of_1024() -> None:
    parsed = parse_metric(pd.Series(["12K", "1.5M", "2G", "7", "-3.5", "n/a", ""]))
    assert parsed.iloc[:5].tolist() == [12 * 1024, 1.5 * 1024**2, 2 * 1024**3, 7.0, -3.5]
    assert parsed.iloc[5:].isna().all()


@pytest.mark.skipif(not SHARED_KDD.exists(), reason=f"NSL-KDD data not found at {SHARED_KDD}")
def test_the_shared_nslkdd_files_load_with_their_row_counts() -> None:
    frames = load_nslkdd_folder(SHARED_KDD)
    assert {k: len(v) for k, v in frames.items()} == {
        "train": 25_192,
        "test": 22_544,
        "test21": 11_850,
    }
    field_names = (SHARED_KDD / "Field Names.csv").read_text().split()
    assert tuple(line.split(",")[0] for line in field_names) == FEATURES
    train = frames["train"]
    assert train["attack"].sum() == 11_743
    assert set(train["family"]) == {"normal", "dos", "probe", "r2l", "u2r"}
    assert (frames["test"]["family"] == "unknown").sum() == 3_750
    assert train["difficulty"].between(0, 21).all()
    assert set(FILES.values()) <= {p.name for p in SHARED_KDD.iterdir()}


@pytest.mark.skipif(
    not SHARED_TONIOT.exists(), reason=f"ToN-IoT sample not found at {SHARED_TONIOT}"
)
def test_the_shared_toniot_samples_load() -> None:
    activities = {}
    for path in sorted(SHARED_TONIOT.glob("*.csv")):
        frame = load_toniot(path)
        activities[path.name] = frame.attrs["activity"]
        assert len(frame) == 49
        assert frame.drop(columns=["type"]).notna().all().all()
        assert (frame["label"] == 0).all()
    assert activities == {
        "linux_disk_1.csv": "disk",
        "linux_memory1.csv": "memory",
        "linux_process_1.csv": "process",
    }


def test_type_rows_gives_every_invalid_row_its_reasons() -> None:
    import pandas as pd

    from anomalake.loaders.toniot import LAYOUTS, type_rows

    good = {"ts": "1554218915", "PID": "3257", "label": "1"}
    good |= {c: ("firefox" if c == "CMD" else "2.6G") for c in LAYOUTS["memory"]}
    rows = [
        good,
        {**good, "ts": "yesterday"},
        {**good, "label": "maybe"},
        {k: v for k, v in good.items() if k != "RSIZE"},
        {**good, "label": None},
    ]
    typed, reasons = type_rows(pd.DataFrame(rows), "memory")
    assert reasons[0] is None and reasons[4] is None
    assert reasons[1] == "ts 'yesterday' is not Unix seconds"
    assert reasons[2] == "label 'maybe' is not 0 or 1"
    assert reasons[3] == "missing field RSIZE"
    assert typed["VSIZE"][0] == 2.6 * 1024**3
    assert typed["label"].tolist()[:1] == [1] and pd.isna(typed["label"][4])
