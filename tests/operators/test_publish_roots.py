"""publish_to is limited to the publish roots (FACEFACTORY_PUBLISH_ROOTS): every way in refuses
an order that would write elsewhere, with a message naming `publish_to`, and publish re-checks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from facefactory import settings as ff_settings
from facefactory.operators import config, publish, uris
from facefactory.operators.order_check import order_problems, refusal

GOOD = {"order_id": "o-1", "source": "file:///in/s.png", "target": "file:///in/t.mp4"}


@pytest.fixture()
def roots(tmp_path: Path) -> tuple[str, ...]:
    (tmp_path / "pub" / "acme").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return (str(tmp_path / "pub"), "s3://ff-delivery/videos", "s3://ff-other")


def _problem(value: str, roots: tuple[str, ...]) -> str:
    problems = order_problems({**GOOD, "publish_to": value}, publish_roots=roots)
    assert [p.field for p in problems] == ["publish_to"], problems
    return refusal(problems)


def test_inside_the_roots_is_accepted(tmp_path: Path, roots: tuple[str, ...]) -> None:
    for value in (f"file://{tmp_path}/pub", f"{tmp_path}/pub/acme", f"file://{tmp_path}/pub/new/dir",
                  "s3://ff-delivery/videos", "s3://ff-delivery/videos/acme/", "s3://ff-other/x"):
        assert order_problems({**GOOD, "publish_to": value}, publish_roots=roots) == [], value


@pytest.mark.parametrize("value,words", [
    ("file://{tmp}/elsewhere", "outside the publish roots"),
    ("/etc", "resolves to /etc, outside the publish roots"),
    ("file:///etc/cron.d", "outside the publish roots"),
    ("file://{tmp}/pub/../elsewhere", "'..' is not allowed"),
    ("http://127.0.0.1:9000/upload", "127.0.0.1 is a loopback address"),
    ("http://localhost/x", "localhost is a loopback address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local"),
    ("https://example.com/videos", "web URLs are not publish targets"),
    ("s3://Bad_Bucket/videos", "invalid S3 bucket name 'Bad_Bucket'"),
    ("s3://192.168.1.10/videos", "must not look like an IP address"),
    ("s3://ff-delivery/other", "outside the publish buckets"),
    ("s3://ff-delivery/videos-evil", "outside the publish buckets"),
    ("s3://someone-elses-bucket/x", "outside the publish buckets"),
    ("s3://ff-delivery/videos/../x", "'..'"),
    ("ftp://host/x", "publish root"),
    ("file://host/x", "publish root"),
])
def test_outside_or_malformed_is_refused_naming_publish_to(
        tmp_path: Path, roots: tuple[str, ...], value: str, words: str) -> None:
    text = _problem(value.format(tmp=tmp_path), roots)
    assert text.startswith("invalid order: publish_to: ") and words in text, text


def test_symlink_out_of_a_root_is_refused(tmp_path: Path, roots: tuple[str, ...]) -> None:
    os.symlink(tmp_path / "elsewhere", tmp_path / "pub" / "escape")
    text = _problem(f"file://{tmp_path}/pub/escape/sub", roots)
    assert f"resolves to {tmp_path / 'elsewhere' / 'sub'}" in text and "outside the publish roots" in text


def test_default_roots_are_home_published_and_the_deployment_publish_to(tmp_path: Path) -> None:
    env = {"FACEFACTORY_HOME": str(tmp_path)}
    assert ff_settings.load(env).publish_roots == (str(tmp_path / "published"),)
    env["FACEFACTORY_PUBLISH_TO"] = "s3://acme-delivery/videos"
    assert ff_settings.load(env).publish_roots == (str(tmp_path / "published"), "s3://acme-delivery")
    env["FACEFACTORY_PUBLISH_ROOTS"] = f"{tmp_path}/a, s3://b-1/p"
    assert ff_settings.load(env).publish_roots == (f"{tmp_path}/a", "s3://b-1/p", "s3://acme-delivery")


def test_env_roots_apply_to_every_way_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The one refusal reads FACEFACTORY_PUBLISH_ROOTS itself (CLI, bulk, the API middleware)."""
    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("FACEFACTORY_PUBLISH_ROOTS", f"{tmp_path}/ok")
    assert order_problems({**GOOD, "publish_to": f"file://{tmp_path}/ok/x"}) == []
    [p] = order_problems({**GOOD, "publish_to": f"file://{tmp_path}/not-a-root"})
    assert p.field == "publish_to" and "outside the publish roots" in p.message
    # a client that cannot know the server's roots checks the form only
    assert order_problems({**GOOD, "publish_to": "s3://any-bucket/x"}, publish_roots=None) == []
    assert order_problems({**GOOD, "publish_to": "http://127.0.0.1/"}, publish_roots=None)


def test_variable_override_is_used_at_run_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    monkeypatch.setattr(ff_settings, "variable",
                        lambda name: f"{tmp_path}/var-root" if name == "FACEFACTORY_PUBLISH_ROOTS" else None)
    assert config.run_time().settings.publish_roots[0] == f"{tmp_path}/var-root"
    assert config.order_problems({}, {**GOOD, "publish_to": f"{tmp_path}/var-root/a"}) == []
    [text] = config.order_problems({}, {**GOOD, "publish_to": f"{tmp_path}/other"})
    assert text.startswith("publish_to: ") and "outside the publish roots" in text


def test_publish_rechecks_the_root(tmp_path: Path) -> None:
    """A symlink made after ingest cannot lead the copy out of its root."""
    out = tmp_path / "o.mp4"
    out.write_bytes(b"video")
    (tmp_path / "pub").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "pub" / "late")
    with pytest.raises(publish.AirflowFailException, match="publish_to: .*outside the publish roots"):
        publish.publish(str(out), f"{tmp_path}/pub/late", "o-1", publish_roots=(str(tmp_path / "pub"),))
    assert list((tmp_path / "outside").iterdir()) == []
    got = publish.publish(str(out), f"{tmp_path}/pub", "o-1", publish_roots=(str(tmp_path / "pub"),))
    assert got["uri"] == (tmp_path / "pub" / "o-1.mp4").as_uri()


def test_check_publish_to_raises_uri_error(tmp_path: Path) -> None:
    with pytest.raises(uris.UriError, match="outside the publish roots"):
        uris.check_publish_to("/etc", (str(tmp_path),))
    assert uris.check_publish_to(f" {tmp_path}/x ", (str(tmp_path),)) == f"{tmp_path}/x"


def test_the_api_gate_refuses_it_before_a_run_is_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The UI form and REST go through the API server's order gate: 400 naming publish_to."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
    import facefactory_orders as gate

    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    conf = {**GOOD, "publish_to": "file:///etc"}
    verdict = gate.decide({"conf": conf}, lambda run_id: None)
    assert verdict.status == 400 and verdict.payload["problems"][0]["field"] == "publish_to"
    assert verdict.payload["detail"].startswith("invalid order: publish_to: 'file:///etc' resolves to /etc")
    ok = gate.decide({"conf": {**GOOD, "publish_to": f"{tmp_path}/published/acme"}}, lambda run_id: None)
    assert ok.status is None  # passed on to Airflow


def test_bulk_and_order_run_refuse_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import argparse

    from facefactory.commands import order
    from facefactory.operators import bulk

    monkeypatch.setenv("FACEFACTORY_HOME", str(tmp_path))
    [error] = bulk.order_errors({**GOOD, "publish_to": "http://169.254.169.254/x"})
    assert error["field"] == "publish_to" and "link-local" in error["message"]
    args = argparse.Namespace(order_id="o-1", source="/in/s.png", target="/in/t.mp4", sets=["publish_to=/etc"])
    with pytest.raises(ValueError, match="publish_to: .*outside the publish roots"):
        order.build_conf(args)
