"""facefactory.quality.workarea is the engine's work area (faceworker.workarea) seen through object URIs."""
from __future__ import annotations

from pathlib import Path

import pytest

from facefactory.quality import workarea as wa
from faceworker.errors import BadInput
from faceworker.workarea import LocalStore, S3Store, open_object, open_store, split_s3_uri


def test_one_s3_parser_for_roots_and_objects() -> None:
    assert split_s3_uri("s3://bucket/a/b.json") == ("bucket", "a/b.json")
    assert split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(BadInput):
        split_s3_uri("/local/path")
    store = open_store("s3://bucket/ff/")
    assert isinstance(store, S3Store) and (store.bucket, store.prefix) == ("bucket", "ff")
    obj, key = open_object("s3://bucket/ff/orders/o1/quality/x.json")
    assert isinstance(obj, S3Store) and obj.uri(key) == "s3://bucket/ff/orders/o1/quality/x.json"


@pytest.mark.parametrize("prefix", ["", "file://"])
def test_local_objects_round_trip(tmp_path: Path, prefix: str) -> None:
    uri = f"{prefix}{tmp_path}/orders/o1/quality/gate.json"
    store, key = open_object(uri)
    assert isinstance(store, LocalStore) and store.uri(key) == str(tmp_path / "orders/o1/quality/gate.json")
    assert not wa.exists(uri)
    wa.write_json(uri, {"passed": True})
    assert wa.exists(uri) and wa.read_json(uri) == {"passed": True}
    assert not [p for p in (tmp_path / "orders/o1/quality").iterdir() if p.name.startswith(".")]


def test_order_root_uri_is_the_areas_prefix(tmp_path: Path) -> None:
    from faceworker.workarea import OrderArea

    assert OrderArea(open_store("s3://bucket/ff/"), "o1").root_uri == "s3://bucket/ff/orders/o1"
    area = OrderArea(open_store(str(tmp_path)), "o1")
    assert area.root_uri == str(tmp_path / "orders" / "o1")
    assert wa.join(area.root_uri, "quality", "gate.json") == area.uri("quality/gate.json")
