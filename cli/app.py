"""The ``fedcredit`` command line: one console script, a subcommand group per role.

``fedcredit simulate`` (researchers, :mod:`cli.simulate`), ``fedcredit monitor``
(stability of a later file, :mod:`cli.monitor`), ``fedcredit privacy``
(:mod:`cli.privacy`), ``fedcredit coordinator`` (the consortium operator,
:mod:`cli.coordinator`), ``fedcredit participant`` (a partner bank,
:mod:`cli.participant`), ``fedcredit audit`` (:mod:`cli.audit`), ``fedcredit model``
(verify a signed model package, :mod:`cli.model`), ``fedcredit score`` (score a file
of applicants with one, :mod:`cli.score`) and ``fedcredit serve`` (the bank's scoring
service, :mod:`cli.serve`) and ``fedcredit experiment`` (grids of simulations,
:mod:`cli.experiment`). Each command
imports what it needs when it runs, so ``--help`` and the operator's commands start
without torch.

Errors the user can fix (bad data, schema, flags, configuration) print one line on
stderr and exit with code 2; a run that fails (too few banks replied) exits with 1.
"""

from __future__ import annotations

import sys

import typer

from cli.audit import audit_app
from cli.coordinator import coordinator_app
from cli.experiment import experiment_app
from cli.model import model_app
from cli.monitor import monitor
from cli.participant import participant_app
from cli.privacy import privacy_app
from cli.score import score
from cli.serve import serve
from cli.simulate import simulate

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedcredit",
    help="Privacy-preserving federated credit-default modelling on Flower.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("simulate")(simulate)
app.command("monitor")(monitor)
app.command("score")(score)
app.command("serve")(serve)
app.add_typer(privacy_app, name="privacy")
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(participant_app, name="participant")
app.add_typer(audit_app, name="audit")
app.add_typer(model_app, name="model")
app.add_typer(experiment_app, name="experiment")


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
