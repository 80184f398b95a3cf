from __future__ import annotations

from pathlib import Path

import pytest

from anomalake.errors import AnomalakeError
from anomalake.loaders.markets import load_bars, market_files, read_raw_rows, symbol_from_path


def test_symbol_comes_from_the_export_file_name() -> None:
    assert symbol_from_path(Path("TATACHEM__EQ__NSE__NSE__MINUTE.csv")) == "TATACHEM"
    assert symbol_from_path(Path("/x/ABC.csv")) == "ABC"


def test_raw_rows_keep_bad_values_and_mark_missing_fields(tmp_path: Path) -> None:
    f = tmp_path / "ABC__EQ__NSE__NSE__MINUTE.csv"
    f.write_text(
        "date,open,high,low,close,volume\n"
        "2026-01-05 09:15:00+05:30,1,2,0.5,1.5,100\n"
        "2026-01-05 09:16:00+05:30,1,2,0.5,n/a,100\n"
        "2026-01-05 09:17:00+05:30,1,2,0.5,1.5\n\n"
    )
    rows = list(read_raw_rows(f))
    assert len(rows) == 3
    assert rows[0] == {
        "symbol": "ABC",
        "timestamp": "2026-01-05 09:15:00+05:30",
        "open": "1",
        "high": "2",
        "low": "0.5",
        "close": "1.5",
        "volume": "100",
    }
    assert rows[1]["close"] == "n/a"
    assert rows[2]["volume"] is None
    typed = load_bars(f)
    assert typed["close"].isna().tolist() == [False, True, False]
    assert str(typed["timestamp"].iloc[0]) == "2026-01-05 03:45:00+00:00"
    assert typed["row"].tolist() == [0, 1, 2]


def test_a_wrong_header_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "ABC.csv"
    f.write_text("when,price\n1,2\n")
    with pytest.raises(AnomalakeError, match="lacks"):
        list(read_raw_rows(f))


def test_market_files_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(AnomalakeError, match="no minute-bar CSV"):
        market_files(tmp_path)
    with pytest.raises(AnomalakeError, match="no such file"):
        market_files(tmp_path / "missing")
