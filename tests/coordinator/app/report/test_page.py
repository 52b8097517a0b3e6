"""The model report's page: sections shown exactly when there is data, text escaped,
nothing fetched from anywhere, every chart embedded."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from coordinator.app.report.writer import write_report
from credit.audit import fingerprint, load_or_create_signing_key
from credit.package.manifest import sign_folder
from tests.coordinator.app.report.conftest import RunFolder
from tests.support.html_outline import PageOutline, outline

EVERY_SECTION = [
    "summary", "performance", "rounds", "participation", "privacy", "calibration",
    "fairness", "scorecard", "woe-iv", "configuration", "model-card",
]  # fmt: skip
GOVERNANCE = ["calibration", "fairness", "scorecard", "woe-iv"]
SVG = "data:image/svg+xml;base64,"


def _report(folder: Path) -> str:
    path = write_report(
        metrics=folder / "metrics.json", model=folder / "model", report=folder / "report.html"
    )
    assert path == folder / "report.html"
    return path.read_text(encoding="utf-8")


def _well_formed(html: str) -> PageOutline:
    page = outline(html)
    assert page.errors == []
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert html.startswith("<!DOCTYPE html>")
    return page


def test_a_full_run_shows_every_section_in_order_with_its_chart(run_folder: RunFolder) -> None:
    page = _well_formed(_report(run_folder()))
    assert page.sections == EVERY_SECTION
    # The navigation links to exactly the sections shown.
    assert [value for name, value in page.urls if name == "href"] == [
        f"#{section}" for section in EVERY_SECTION
    ]
    # ROC, KS, distribution, rounds, calibration, information value.
    assert len(page.images) == 6
    assert all(source.startswith(SVG) for source in page.images)
    assert "Model report: q3-review" in page.headings
    assert {"SEX", "Secure aggregation", "Refusals"} <= set(page.headings)


def test_a_minimal_metrics_document_leaves_every_section_out(tmp_path: Path) -> None:
    """An empty run record: a title, no section, no heading but the page's own."""
    (tmp_path / "metrics.json").write_text("{}", encoding="utf-8")
    html = _report(tmp_path)
    page = _well_formed(html)
    assert page.sections == []
    assert page.headings == [f"Model report: {tmp_path.name}"]
    assert page.images == [] and page.urls == []
    assert "<h2" not in html and "<table" not in html


def test_governance_sections_are_left_out_without_their_data(run_folder: RunFolder) -> None:
    html = _report(run_folder(governance=False))
    page = _well_formed(html)
    assert page.sections == [s for s in EVERY_SECTION if s not in GOVERNANCE]
    for words in ("Calibration", "Fairness", "Scorecard", "information value"):
        assert words not in page.headings
    assert len(page.images) == 4  # ROC, KS, distribution, rounds


@pytest.mark.parametrize(
    ("key", "section"),
    [
        ("calibration", "calibration"),
        ("fairness", "fairness"),
        ("woe_iv", "woe-iv"),
        ("score_histograms", "performance"),
        ("privacy", "privacy"),
        ("final", "summary"),
        ("config", "configuration"),
    ],
)
def test_each_section_needs_its_key(run_folder: RunFolder, key: str, section: str) -> None:
    def drop(document: dict[str, Any]) -> None:
        del document[key]
        if key == "config":
            del document["secure_aggregation"]

    page = _well_formed(_report(run_folder(edit=drop)))
    assert page.sections == [s for s in EVERY_SECTION if s != section]
    assert f"#{section}" not in [value for _, value in page.urls]


def test_a_missing_final_evaluation_is_said_in_place_of_the_final_metrics(
    run_folder: RunFolder,
) -> None:
    """``final`` empty with ``final_missing``: the summary says why, escaped; the sections
    of the final evaluation (curves, calibration, fairness) are left out."""
    why = "round 4: aborted at 'unmask' <2 banks>"

    def fail(document: dict[str, Any]) -> None:
        document["final"] = {}
        document["final_missing"] = why
        for key in ("score_histograms", "calibration", "fairness", "governance"):
            document.pop(key, None)

    html = _report(run_folder(edit=fail))
    page = _well_formed(html)
    gone = ("performance", "calibration", "fairness")
    assert page.sections == [s for s in EVERY_SECTION if s not in gone]
    summary = html[html.index('id="summary"') : html.index('id="rounds"')]
    assert "Missing: round 4: aborted at &#39;unmask&#39; &lt;2 banks&gt;." in summary
    assert 'class="tile"' not in summary


def test_without_a_model_folder_the_card_and_scorecard_are_left_out(
    run_folder: RunFolder,
) -> None:
    folder = run_folder(model_card=False)
    (folder / "model" / "scorecard.csv").unlink()
    page = _well_formed(_report(folder))
    assert page.sections == [s for s in EVERY_SECTION if s not in ("scorecard", "model-card")]


def test_rounds_show_aborted_and_unscored_rounds_and_each_banks_part(
    run_folder: RunFolder,
) -> None:
    html = _report(run_folder())
    rounds = html[html.index('id="rounds"') : html.index('id="participation"')]
    assert "aborted: round 2: 1 bank left after dropouts, 2 needed" in rounds
    assert rounds.count(">not evaluated</td>") == 1 and rounds.count(">scored</td>") == 2
    participation = html[html.index('id="participation"') : html.index('id="privacy"')]
    rows = re.findall(r"<tr><td>(bank-\d)</td>(.*?)</tr>", participation)
    parts = {bank: re.findall(r'<td class="(\w+)">', cells) for bank, cells in rows}
    assert parts == {
        "bank-1": ["trained", "aborted", "trained", "trained"],
        "bank-2": ["trained", "aborted", "dropped", "trained"],
        "bank-3": ["trained", "aborted", "trained", "refused"],
    }


def test_privacy_and_governance_numbers_are_the_documents(run_folder: RunFolder) -> None:
    folder = run_folder()
    document = json.loads((folder / "metrics.json").read_text())
    html = _report(folder)
    privacy = html[html.index('id="privacy"') : html.index('id="calibration"')]
    assert "bank-3" in privacy and "0.6000" in privacy and "0.7000" in privacy
    assert "refused round 4 (PrivacyBudgetExceeded" in privacy
    assert f"{document['calibration']['ece']:.4f}" in html
    assert f"{document['fairness']['SEX']['adverse_impact_ratio']:.4f}" in html
    iv = document["woe_iv"]["LIMIT_BAL"]["iv"]
    assert f"<b>LIMIT_BAL</b>: IV {iv:.4f}" in html
    assert f"AUC {document['final']['auc']:.4f}" not in html  # tiles show it on its own
    assert f">{document['final']['auc']:.4f}<" in html


def test_text_from_the_run_is_escaped(run_folder: RunFolder) -> None:
    """A bank, a configuration value or a group named like markup stays text."""
    attack = '<script>alert("x")</script><img src="https://evil.example/x">'

    def inject(document: dict[str, Any]) -> None:
        document["participants"][attack] = {"n_train": 1}
        document["config"]["run-name"] = attack
        document["fairness"]["SEX"]["groups"][attack] = document["fairness"]["SEX"]["groups"]["1"]
        document["rounds"][1]["aborted"] = attack

    html = _report(run_folder(edit=inject))
    page = _well_formed(html)
    assert "<script" not in html and 'evil.example/x">' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 4
    assert "script" not in page.tags and page.images.count("https://evil.example/x") == 0


def test_the_page_fetches_nothing_and_embeds_every_chart_as_svg(run_folder: RunFolder) -> None:
    html = _report(run_folder())
    page = _well_formed(html)
    for name, value in page.urls:
        assert value.startswith(("#", "data:")), f"{name}={value[:60]}"
    assert not [value for value in page.attributes if re.search(r"https?://", value)]
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "url(" not in html and "@import" not in html
    for source in page.images:
        svg = ElementTree.fromstring(base64.b64decode(source.removeprefix(SVG)))
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        # The chart is drawn (paths), and its text is text.
        assert svg.findall(".//{http://www.w3.org/2000/svg}path")
        assert svg.findall(".//{http://www.w3.org/2000/svg}text")


def test_a_malformed_metrics_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"rounds": [{"auc": 0.7}]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"metrics\.json: unexpected content \(KeyError: 'round'"):
        _report(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"metrics\.json: expected a JSON object, got list"):
        _report(tmp_path)


def test_a_scorecard_without_its_columns_is_named(run_folder: RunFolder) -> None:
    folder = run_folder()
    (folder / "model" / "scorecard.csv").write_text("feature,bin,woe\nA,1,0.5\n")
    missing = r"scorecard\.csv: missing column\(s\) coefficient, points"
    with pytest.raises(ValueError, match=missing):
        _report(folder)


def test_a_malformed_model_card_is_named(run_folder: RunFolder) -> None:
    folder = run_folder()
    (folder / "model" / "model_card.json").write_text('{"format": "fedcredit-model/1"}')
    with pytest.raises(ValueError, match=r"model_card\.json: unexpected content \(KeyError"):
        _report(folder)


@pytest.mark.parametrize("scored_on", ["validation", "test"])
def test_the_rounds_say_which_rows_scored_them(run_folder: RunFolder, scored_on: str) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["rounds_scored_on"] = scored_on

    html = _report(run_folder(edit=edit))
    rounds = html[html.index('id="rounds"') : html.index('id="participation"')]
    other = "test" if scored_on == "validation" else "validation"
    assert f">{scored_on} loss</th>" in rounds and f">{other} loss</th>" not in rounds
    chart = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="AUC and KS', rounds)
    assert chart is not None
    drawing = base64.b64decode(chart.group(1)).decode()
    assert f"{scored_on.capitalize()} AUC and KS per round" in drawing


def test_the_model_card_names_the_signed_package_digest_and_signer(
    run_folder: RunFolder, tmp_path: Path
) -> None:
    folder = run_folder()
    key = load_or_create_signing_key(tmp_path / "keys" / "coordinator.key")
    sign_folder(folder / "model", run="q3-review", signing_key=key)
    digest = hashlib.sha256((folder / "model" / "manifest.json").read_bytes()).hexdigest()
    html = _report(folder)
    assert digest in html
    assert f"SHA256:{fingerprint(key.public_key())}" in html
