"""A boosting run's report: written at the run's end, with its trees and feature importance.

One small run of the real ServerApp body and ClientApps in this process
(:func:`tests.support.boosting.small_private_run`: secure aggregation, a budget per
bank), then its page read back: which sections it shows and leaves out, and that each
figure on it is the run's own files' (``metrics.json``, ``model/model_card.json``,
``model/xgboost.json``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from coordinator.app.report.curves import roc_curve
from coordinator.app.report.writer import write_report
from credit.encoding import FeatureEncoder
from tests.support.boosting import small_private_run
from tests.support.html_outline import PageOutline, outline

BOOSTING_SECTIONS = [
    "summary", "performance", "trees", "importance", "privacy", "configuration", "model-card",
]  # fmt: skip
SVG = "data:image/svg+xml;base64,"
_SVG_TEXT = "{http://www.w3.org/2000/svg}text"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's folder; the run itself wrote ``report.html``."""
    out = tmp_path_factory.mktemp("boosted")
    files = small_private_run(out)
    assert files.report == out / "report.html" and files.report.is_file()
    return out


def _document(run: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run / name).read_text(encoding="utf-8"))
    return document


def _page(html: str) -> PageOutline:
    page = outline(html)
    assert page.errors == []
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    return page


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def _rows(section: str) -> list[list[str]]:
    """Each body row's cells, as text."""
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def _rewrite(run: Path, target: Path, edit: Any) -> str:
    """The report of a copy of the run whose ``metrics.json`` ``edit`` changed."""
    shutil.copytree(run, target)
    document = _document(target, "metrics.json")
    edit(document)
    (target / "metrics.json").write_text(json.dumps(document), encoding="utf-8")
    report = write_report(
        metrics=target / "metrics.json", model=target / "model", report=target / "report.html"
    )
    return report.read_text(encoding="utf-8")


def test_a_boosting_run_shows_its_sections_and_none_it_has_no_data_for(run: Path) -> None:
    html = (run / "report.html").read_text(encoding="utf-8")
    page = _page(html)
    assert page.sections == BOOSTING_SECTIONS
    assert [value for name, value in page.urls if name == "href"] == [
        f"#{section}" for section in BOOSTING_SECTIONS
    ]
    # ROC, KS, score distribution, seconds per tree, feature importance.
    assert len(page.images) == 5 and all(src.startswith(SVG) for src in page.images)
    for gone in ("Rounds", "Participation per bank", "Calibration", "Scorecard"):
        assert gone not in page.headings
    assert "3 trees · 3 banks" in html
    # Nothing outside the page: no script, no address but the page's own anchors.
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert all(value.startswith(("#", "data:")) for _, value in page.urls)
    assert not [value for value in page.attributes if re.search(r"https?://", value)]


def test_feature_importance_on_the_page_is_the_model_cards(run: Path) -> None:
    importance = _document(run, "model/model_card.json")["feature_importance"]
    html = (run / "report.html").read_text(encoding="utf-8")
    section = _section(html, "importance")
    shown = _rows(section)
    by_gain = sorted(importance, key=lambda name: -importance[name]["total_gain"])
    assert [row[0] for row in shown] == by_gain  # every feature, most gain first
    total = sum(entry["total_gain"] for entry in importance.values())
    for feature, splits, gain, share, cover in shown:
        entry = importance[feature]
        assert int(splits) == entry["splits"]
        assert gain == f"{entry['total_gain']:.4f}"
        assert cover == f"{entry['total_cover']:.2f}"
        assert share == f"{100 * entry['total_gain'] / total:.1f} %"
    assert "hence the gains and covers, carry their noise" in section  # the banks had budgets
    used = [name for name in by_gain if importance[name]["splits"] > 0]
    assert used and len(used) < len(by_gain)  # some features have no split: in the table only
    chart = re.search(
        r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="Feature importance', section
    )
    assert chart is not None
    svg = ElementTree.fromstring(base64.b64decode(chart.group(1)))
    labels = [text.text for text in svg.iter(_SVG_TEXT)]
    assert set(used) <= set(labels)
    assert not {name for name in by_gain if name not in used} & set(labels)


def test_each_tree_is_its_levels_and_the_exported_models(run: Path) -> None:
    """Levels, splits and seconds from ``metrics.json``; leaves counted in xgboost.json."""
    metrics = _document(run, "metrics.json")
    booster = _document(run, "model/xgboost.json")
    trees = booster["learner"]["gradient_booster"]["model"]["trees"]
    html = (run / "report.html").read_text(encoding="utf-8")
    rows = _rows(_section(html, "trees"))
    assert len(rows) == metrics["trees"] == len(trees) == 3
    for number, (row, tree) in enumerate(zip(rows, trees, strict=True)):
        levels = [level for level in metrics["levels"] if level["tree"] == number]
        leaves = sum(1 for child in tree["left_children"] if child == -1)
        seconds = sum(level["seconds"] for level in levels)
        splits = sum(level["splits"] for level in levels)
        assert row == [
            str(number + 1),
            str(len(levels)),
            str(splits),
            str(leaves),
            f"{seconds:.2f}",
        ]
    assert f"{len(metrics['levels'])} levels in" in html


def test_the_final_metrics_and_curves_are_the_summed_histograms(run: Path) -> None:
    """``score_histograms``: the sum the held-out metrics came from, the ensemble's trees
    as its round; the page's AUC tile and ROC curve are drawn from it."""
    metrics = _document(run, "metrics.json")
    histograms = metrics["score_histograms"]
    assert histograms["round"] == metrics["trees"]
    assert histograms["bins"] == len(histograms["defaulters"]) == 100
    curve = roc_curve(histograms["defaulters"], histograms["non_defaulters"])
    assert curve.auc == pytest.approx(metrics["final"]["auc"], abs=1e-9)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert f">{metrics['final']['auc']:.4f}<" in _section(html, "summary")
    assert re.search(
        r"the ensemble of 3 trees,\s+100 equal-width bins", _section(html, "performance")
    )
    roc = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="ROC curve"', html)
    assert roc is not None
    assert f"AUC {metrics['final']['auc']:.4f}" in base64.b64decode(roc.group(1)).decode()


def test_privacy_configuration_and_model_card_are_the_runs(run: Path) -> None:
    metrics = _document(run, "metrics.json")
    card = _document(run, "model/model_card.json")
    encoder = FeatureEncoder.model_validate_json((run / "model" / "encoder.json").read_text())
    html = (run / "report.html").read_text(encoding="utf-8")
    privacy = _rows(_section(html, "privacy"))
    assert {row[0]: row[1] for row in privacy} == {
        bank: f"{summary['epsilon']:.4f}" for bank, summary in metrics["privacy"].items()
    }
    configuration = _section(html, "configuration")
    for key, value in metrics["params"].items():
        if value is not None:
            assert f"<td><code>{key}</code></td><td>{value}</td>" in configuration
    assert f"the banks&#39; default rate: {metrics['base_score']:.4f}" in configuration
    assert (
        f"<th>threshold</th><td>{metrics['secure_aggregation']['threshold']}</td>" in configuration
    )
    model = _section(html, "model-card")
    digest = hashlib.sha256((run / "model" / "xgboost.json").read_bytes()).hexdigest()
    assert f'xgboost.json <code class="hash">{digest}</code>' in model
    assert f'uci-default-credit-card <code class="hash">{encoder.schema_hash}</code>' in model
    assert f"gbdt, {card['trees']} trees, {len(card['input']['columns'])} inputs" in model
    names = [row[0] for row in _rows(model[model.index("input features") :])]
    assert names == [column["name"] for column in card["input"]["columns"]]
    manifest = run / "model" / "manifest.json"  # a signed package's, when the run writes one
    if manifest.is_file():
        assert hashlib.sha256(manifest.read_bytes()).hexdigest() in model
    else:
        assert "The folder has no signed manifest." in model


def test_a_missing_final_evaluation_leaves_its_sections_out(run: Path, tmp_path: Path) -> None:
    why = "evaluation failed: round 10: <1 reply>"

    def fail(document: dict[str, Any]) -> None:
        document.update(final=None, final_missing=why, score_histograms=None)

    html = _rewrite(run, tmp_path / "failed", fail)
    page = _page(html)
    assert page.sections == [section for section in BOOSTING_SECTIONS if section != "performance"]
    assert "Missing: evaluation failed: round 10: &lt;1 reply&gt;." in _section(html, "summary")
    assert len(page.images) == 2  # the trees' and the importance's


def test_a_boosting_card_without_its_encoder_is_named(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "model" / "encoder.json").unlink()
    with pytest.raises(ValueError, match=r"model_card\.json: unexpected content \(FileNotFound"):
        write_report(
            metrics=copy / "metrics.json", model=copy / "model", report=copy / "report.html"
        )


def test_a_feature_named_like_markup_stays_text(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    card_path = copy / "model" / "model_card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    attack = '<img src="https://evil.example/x">'
    importance = card["feature_importance"]
    importance[attack] = importance.pop(
        next(name for name in importance if importance[name]["splits"])
    )
    card_path.write_text(json.dumps(card), encoding="utf-8")
    report = write_report(
        metrics=copy / "metrics.json", model=copy / "model", report=copy / "report.html"
    )
    html = report.read_text(encoding="utf-8")
    assert "&lt;img src=&#34;https://evil.example/x&#34;&gt;" in _section(html, "importance")
    assert not [value for _, value in _page(html).urls if "evil.example" in value]
