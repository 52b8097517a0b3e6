"""The model report: ``OUT/report.html``, one self-contained page per run.

Written at the end of every run (:func:`coordinator.app.run_files.write_run_outputs`;
a boosting run's in :class:`coordinator.app.boosting_run.BoostingDriver`) from the
run's files, one module per job:

- :mod:`~coordinator.app.report.contents`: a run's files into the report's typed
  sections (a section without data is None);
- :mod:`~coordinator.app.report.card`: the model card section;
- :mod:`~coordinator.app.report.governance`: the calibration, fairness, WoE/IV and
  scorecard sections, from their documented forms;
- :mod:`~coordinator.app.report.boosting`: a boosting run's trees and feature
  importance sections;
- :mod:`~coordinator.app.report.curves`: ROC and KS curves and the score
  distribution, from the final evaluation's summed score histograms;
- :mod:`~coordinator.app.report.figures`: the charts, as embedded SVG;
- :mod:`~coordinator.app.report.page`: the page, rendered with Jinja2 (autoescaped);
- :mod:`~coordinator.app.report.writer`: :func:`write_report`, all of the above.

The page needs nothing else: styles inline, charts as data URIs, no script, no link
out. Import the module you need from here.
"""

from __future__ import annotations

__all__: list[str] = []
