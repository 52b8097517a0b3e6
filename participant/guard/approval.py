"""A bank answers only the relay of the fedcredit release it approved.

The guard runs the bank's installed fedcredit: that release is the one the bank
approved. ``participant start`` records its version in the guard's settings
(``approved_version``), and the guard refuses, before it touches the bank's data, a
request from a relay (the ClientApp inside the coordinator's app bundle) that reports
another release: an outdated or unexpected bundle.

Limit, stated plainly: a modified bundle can report any version it likes; that is
harmless here, because every rule that protects the bank runs in the guard, so a
modified relay can only ask for what the guard would release anyway.
"""

from __future__ import annotations

__all__ = ["UnapprovedApp", "check_approved"]


class UnapprovedApp(RuntimeError):
    """The run's app is not the release this bank approved."""


def check_approved(approved: str | None, relay_version: str) -> None:
    """Raise :class:`UnapprovedApp` if the bank approved a release other than the relay's.

    Parameters
    ----------
    approved : str or None
        The release the bank approved (None: no check, as in simulations).
    relay_version : str
        The release the relay reports.
    """
    if approved is None:
        return
    if approved != relay_version:
        raise UnapprovedApp(
            f"this bank approved fedcredit {approved}; the run ships fedcredit {relay_version}: "
            "refused before touching data (install and approve that release, or ask the "
            "operator to run the approved one)"
        )
