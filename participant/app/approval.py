"""A bank runs only the fedcredit release it approved (as far as Flower 1.41 allows).

``fedcredit participant start`` writes the bank's installed fedcredit version into
the SuperNode's node config as ``approved-version``. Every handler of the ClientApp
first compares it with the version of the code it is running, and refuses the
message on a mismatch, before it touches the bank's data.

Limit, stated plainly: in Flower 1.41 the ClientApp that runs is the code inside the
run's app bundle (FAB), which the coordinator submits; this check is part of that
code, so it stops an accidental or outdated release, not a coordinator that ships
modified code. See README, "Security", for why and what a bank does instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit import __version__

if TYPE_CHECKING:
    from participant.app.node_config import NodeConfig

__all__ = ["UnapprovedApp", "check_approved"]


class UnapprovedApp(RuntimeError):
    """The run's app is not the release this bank approved."""


def check_approved(node: NodeConfig) -> None:
    """Raise :class:`UnapprovedApp` if the node approved another fedcredit release."""
    approved = node.approved_version
    if approved is None:
        return  # simulation, or a SuperNode started without fedcredit's launcher
    if approved != __version__:
        raise UnapprovedApp(
            f"this bank approved fedcredit {approved}; the run ships fedcredit {__version__}: "
            "refused before touching data (install and approve that release, or ask the "
            "operator to run the approved one)"
        )
