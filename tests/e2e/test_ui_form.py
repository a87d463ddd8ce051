"""The face_swap_order trigger form in a real browser (headless Debian chromium + Playwright).

Logs in to the embedded Airflow, opens the DAG's Trigger dialog (Airflow 3.3 UI: a modal on
/dags/face_swap_order, no separate route), checks the schema-driven sections/titles/
descriptions/defaults, saves screenshots to test-artifacts/, submits an invalid order (refused
with the one refusal of operators/order_check, no run created), then a valid one with Run ID
left empty (the order gate makes it order__<order_id>), waits for it to succeed, and submits it
again (409 naming the existing run).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from airflow_server import ORDER_DAG, AirflowServer


def expect(locator):  # noqa: ANN001, ANN201 - imported lazily: playwright is a test-only dependency
    from playwright.sync_api import expect as _expect

    return _expect(locator)


pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("FACEFACTORY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECTIONS = {  # section -> field titles the form must show (from operators/order_schema.py)
    "Order": ["Order id", "Source face photo", "Target video"],
    "Swap": ["Swapper", "Face enhancer", "Which faces to swap", "Frames per chunk"],
    "Quality gate": ["Minimum identity cosine", "Minimum PSNR outside the face (dB)"],
    "Delivery": ["Publish to", "Notify"],
}


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=30_000)
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1300})
            pg.set_default_timeout(60_000)
            yield pg
        finally:
            browser.close()


def _login_and_open_form(pg, server: AirflowServer):
    pg.goto(f"{server.url}/dags/{ORDER_DAG}")
    pg.locator("input[name=username]").fill(server.username)
    pg.locator("input[name=password]").fill(server.password)
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_url(f"**/dags/{ORDER_DAG}")
    return _open_form(pg)


def _open_form(pg):
    """Click the DAG page's Trigger button (retrying while the page hydrates) -> the dialog."""
    dialog = pg.get_by_role("dialog")
    for _ in range(5):
        pg.get_by_role("button", name="Trigger").first.click()
        try:
            dialog.get_by_text(f"Trigger Dag - {ORDER_DAG}").wait_for(timeout=10_000)
            return dialog
        except Exception:  # noqa: BLE001 - playwright TimeoutError: click again
            continue
    raise AssertionError("the Trigger dialog did not open")


def _open(dialog, section: str) -> None:
    """Sections are an accordion with one open item: open `section` if it is closed."""
    button = dialog.get_by_role("button", name=section, exact=True)
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    expect(button).to_have_attribute("aria-expanded", "true")


def _fill(dialog, field: str, value: str) -> None:
    box = dialog.locator(f"input[name=element_{field}]")
    box.fill(value)
    box.press("Tab")


def _runs(server: AirflowServer, pattern: str) -> int:
    status, body = server.request("GET", f"/api/v2/dags/{ORDER_DAG}/dagRuns?run_id_pattern={pattern}")
    assert status == 200, body
    return int(body["total_entries"])


def test_trigger_form_in_chromium(airflow_server: AirflowServer, page) -> None:
    dialog = _login_and_open_form(page, airflow_server)
    sample = airflow_server.ff_home / "inputs" / "sample"

    # The form is generated from the order schema: sections, titles, descriptions, defaults.
    for section, titles in SECTIONS.items():
        _open(dialog, section)
        for title in titles:  # label text is "<title>" or "<title>*" (required)
            label = dialog.get_by_text(re.compile(rf"^\s*{re.escape(title)}\s*\*?\s*$"))
            expect(label.first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"ui_trigger_form_{section.lower().replace(' ', '_')}.png"),
                        full_page=True)
    _open(dialog, "Order")
    expect(dialog.get_by_text("allow-listed input root")).to_be_visible()  # a description
    assert dialog.locator("input[name=element_source]").input_value() == (sample / "source.png").as_uri()
    assert dialog.locator("input[name=element_target]").input_value() == (sample / "target.mp4").as_uri()
    _open(dialog, "Swap")
    assert dialog.locator("input[name=element_swapper]").input_value() == "classic"  # enum default
    spin = dialog.locator("input[name=element_chunk_frames]")
    assert spin.get_attribute("aria-valuemin") == "16" and spin.get_attribute("aria-valuemax") == "512"

    # Invalid input is refused with the one refusal (no regex), and no run is created.
    _open(dialog, "Order")
    _fill(dialog, "order_id", "bad id!")
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.get_by_text("invalid order: order_id: use 1 to 128 letters", exact=False).first.wait_for()
    expect(dialog.get_by_text("does not match")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "ui_trigger_form_invalid.png"), full_page=True)
    assert _runs(airflow_server, "bad") == 0

    # A valid order: tiny, one chunk, lenient gate, Run ID left empty (derived from the order id).
    _fill(dialog, "order_id", "e2e-ui-1")
    _open(dialog, "Swap")
    _fill(dialog, "chunk_frames", "64")
    _open(dialog, "Quality gate")
    _fill(dialog, "min_id_cosine", "0")
    _fill(dialog, "min_psnr_db", "10")
    _open(dialog, "Advanced Options")
    assert dialog.locator("input[name=dagRunId]").input_value() == ""
    page.screenshot(path=str(ARTIFACTS / "ui_trigger_form_filled.png"), full_page=True)
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.wait_for(state="hidden")

    run = airflow_server.wait_run(ORDER_DAG, "order__e2e-ui-1", timeout=900)
    assert run["state"] == "success", airflow_server.diagnose(ORDER_DAG, "order__e2e-ui-1")
    assert run["conf"]["order_id"] == "e2e-ui-1" and run["conf"]["chunk_frames"] == 64
    assert run["conf"]["min_id_cosine"] == 0 and run["conf"]["source"] == (sample / "source.png").as_uri()
    assert (airflow_server.ff_home / "published" / "e2e-ui-1.mp4").is_file()

    # The same order again from the form: 409 naming the existing run (one run).
    page.goto(f"{airflow_server.url}/dags/{ORDER_DAG}")
    dialog = _open_form(page)
    _open(dialog, "Order")
    _fill(dialog, "order_id", "e2e-ui-1")
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.get_by_text("409 Conflict").first.wait_for()  # the run exists: no second run
    expect(dialog.get_by_text("exists already as run order__e2e-ui-1", exact=False).first).to_be_visible()
    assert _runs(airflow_server, "e2e-ui-1") == 1
    page.goto(f"{airflow_server.url}/dags/{ORDER_DAG}/runs/order__e2e-ui-1")
    page.get_by_text("order__e2e-ui-1").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui_run_success.png"), full_page=True)
