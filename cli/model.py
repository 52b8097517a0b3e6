"""``fedcredit model``: check a signed model package (a run's ``model/`` folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import fail_cleanly, say, say_pairs

__all__ = ["Signer", "model_app"]

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


@model_app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="The package folder (a run's model/).")],
    signer: Signer = None,
) -> None:
    """Check the package's signature and every file's digest; list what it holds.

    Exit 0: intact. Exit 2 (one line naming the file): a byte changed in any file, the
    manifest or the signature, a file missing or added, or another signer than
    ``--signer``.
    """
    from credit.audit import load_public_key
    from credit.package import signer_fingerprint, verify_folder

    with fail_cleanly():
        pinned = load_public_key(signer) if signer is not None else None
        verified = verify_folder(directory, signer=pinned)
    manifest = verified.manifest
    signed_by = manifest.signer.fingerprint
    if pinned is not None and signer_fingerprint(pinned) == signed_by:
        signed_by += f" (the pinned key {signer})"
    else:
        signed_by += " (not pinned: pass --signer to check who signed it)"
    say(f"model package {directory}: intact, {len(manifest.files)} files signed")
    say_pairs(
        [
            ("digest", verified.digest),
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
