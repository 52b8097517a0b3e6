"""``fedcredit model``: check a signed model package (a run's ``model/`` folder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import fail_cleanly, say, say_pairs

if TYPE_CHECKING:
    from credit.package import ModelPackage
    from participant.node.provenance import Receipt

__all__ = ["Home", "Signer", "model_app"]

model_app = typer.Typer(
    help="Signed model packages: verify a run's model folder.", no_args_is_help=True
)

Signer = Annotated[
    Path | None,
    typer.Option(
        help="The consortium's signing key (the coordinator's audit .pub, PEM or OpenSSH): "
        "refuse a package signed by any other key. Default: the key the package names "
        "(proves the package is whole, not who signed it)."
    ),
]


@model_app.callback()
def _model() -> None:
    """Signed model packages: verify a run's model folder."""


Home = Annotated[
    Path | None,
    typer.Option(
        help="A bank's node folder (fedcredit participant start --home): also check that "
        "the package's model is a global model this bank itself received, as its own "
        "signed audit log records (verified with its audit.pub first)."
    ),
]


@model_app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="The package folder (a run's model/).")],
    signer: Signer = None,
    home: Home = None,
) -> None:
    """Check the package's signature and every file's digest; list what it holds.

    Exit 0: intact. Exit 2 (one line naming the file): a byte changed in any file, the
    manifest or the signature, a file missing or added, or another signer than
    ``--signer``; with ``--home``, a model the bank's audit log never names.
    """
    from credit.audit import load_public_key
    from credit.package import load_package, signer_fingerprint, verify_folder

    with fail_cleanly():
        pinned = load_public_key(signer) if signer is not None else None
        receipts: tuple[Receipt, ...] = ()
        if home is None:
            verified = verify_folder(directory, signer=pinned)
            manifest, digest = verified.manifest, verified.digest
        else:  # the model is needed too: load it (verified once, inside load_package)
            package = load_package(directory, signer=pinned)
            manifest, digest = package.manifest, package.digest
            receipts = _receipts(package, home)
    signed_by = manifest.signer.fingerprint
    if pinned is not None and signer_fingerprint(pinned) == signed_by:
        signed_by += f" (the pinned key {signer})"
    else:
        signed_by += " (not pinned: pass --signer to check who signed it)"
    say(f"model package {directory}: intact, {len(manifest.files)} files signed")
    say_pairs(
        [
            ("digest", digest),
            ("signer", signed_by),
            ("run", manifest.run),
            ("created", manifest.created),
        ]
    )
    say("files (sha256, bytes):")
    width = max(len(name) for name in manifest.files)
    say(
        *(
            f"  {name:<{width}}  {entry.sha256}  {entry.bytes:,}"
            for name, entry in manifest.files.items()
        )
    )
    if receipts:
        say(f"received by this bank ({home}), as its signed audit log records:")
        say(
            *(
                f"  run {r.run} round {r.server_round}: {r.event} (entry {r.seq}, {r.time})"
                for r in receipts
            )
        )


def _receipts(package: ModelPackage, home: Path) -> tuple[Receipt, ...]:
    """The bank's audit entries naming the package's model (refused when there is none)."""
    from credit.audit import public_key_path
    from credit.errors import ConfigError
    from participant.node.provenance import check_received
    from participant.node.supernode import NodePlan

    audit = NodePlan.load(home).guard.audit_settings()
    if audit is None:
        raise ConfigError("the bank keeps no audit log: nothing to check against", source="--home")
    return check_received(package, audit.log_path, public_key_path(audit.key_path))
