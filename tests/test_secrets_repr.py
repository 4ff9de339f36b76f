"""Config objects end up in logs and tracebacks: their repr carries no secret (issue 15 #15)."""

from __future__ import annotations

from pathlib import Path

from extract.config import ApiConfig, Credentials, ExtractConfig
from load.config import LoadConfig
from tests.bench.config import PRESETS, BenchConfig

DB = "mysql+pymysql://backfill:hunter2-db-pw@db.example:3306/kalshi"
KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
KEY_PATH = Path("/home/me/.secret/kalshi-key-7f3c.pem")


def test_credentials_repr_hides_key_id_and_key_path() -> None:
    shown = repr(Credentials(KEY_ID, KEY_PATH))
    assert KEY_ID not in shown
    assert "kalshi-key-7f3c" not in shown and ".secret" not in shown
    assert shown == "Credentials(key_id='***', private_key_path='***')"


def test_api_config_repr_masks_credentials_and_base_url_password() -> None:
    api = ApiConfig(
        base_url="https://proxyuser:proxy-pw-42@proxy.example/trade-api/v2",
        credentials=Credentials(KEY_ID, KEY_PATH),
    )
    shown = repr(api)
    assert "proxy-pw-42" not in shown and KEY_ID not in shown and "kalshi-key" not in shown
    assert "https://proxyuser:***@proxy.example/trade-api/v2" in shown
    assert "timeout_s=30.0" in shown  # the harmless fields are still there
    assert api.base_url == "https://proxyuser:proxy-pw-42@proxy.example/trade-api/v2"


def test_extract_config_repr_masks_the_database_password() -> None:
    config = ExtractConfig(
        series="KXHIGHNY", db_url=DB, api=ApiConfig(credentials=Credentials(KEY_ID, KEY_PATH))
    )
    shown = repr(config)
    assert "hunter2-db-pw" not in shown and KEY_ID not in shown and "kalshi-key" not in shown
    assert "mysql+pymysql://backfill:***@db.example:3306/kalshi" in shown
    assert "series=('KXHIGHNY',)" in shown
    assert config.db_url == DB  # the value itself is untouched: only its display is masked
    assert str(config) == shown


def test_load_config_repr_masks_the_database_password() -> None:
    shown = repr(LoadConfig(db_url=DB))
    assert "hunter2-db-pw" not in shown
    assert "db_url='mysql+pymysql://backfill:***@db.example:3306/kalshi'" in shown


def test_bench_config_repr_masks_the_database_password() -> None:
    url = "mysql+pymysql://root:bench-pw-9@127.0.0.1:3306/kalshi_bench"
    shown = repr(BenchConfig("quick", PRESETS["quick"], db_url=url))
    assert "bench-pw-9" not in shown and "root:***@127.0.0.1" in shown
