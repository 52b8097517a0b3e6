"""``participant keygen``: node and audit keys Flower and the audit log accept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from typer.testing import CliRunner

from cli.app import app
from credit.audit import fingerprint, load_or_create_signing_key, load_public_key
from credit.errors import ConfigError
from participant.node.node_keys import BankKeyFiles, generate_bank_keys, load_node_private_key


def test_keygen_writes_two_key_pairs(tmp_path: Path) -> None:
    files = generate_bank_keys(tmp_path / "keys")
    assert stat.S_IMODE(files.node_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.audit_key.stat().st_mode) == 0o600

    node = load_node_private_key(files.node_key)
    assert isinstance(node.curve, ec.SECP384R1)
    public = serialization.load_ssh_public_key(files.node_public.read_bytes())
    assert public == node.public_key()
    assert files.node_public.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert files.node_key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")

    audit = load_or_create_signing_key(files.audit_key)  # loads: the file exists
    assert isinstance(audit, ed25519.Ed25519PrivateKey)
    assert fingerprint(load_public_key(files.audit_public)) == fingerprint(audit.public_key())
    assert files.audit_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_flower_accepts_the_node_keys(tmp_path: Path) -> None:
    """The CLI's register and the SuperNode's loader are what will read these files."""
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    files = generate_bank_keys(tmp_path)
    private = serialization.load_ssh_private_key(files.node_key.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert try_load_public_key(files.node_public) == public_key_to_bytes(private.public_key())


def test_two_banks_get_different_keys(tmp_path: Path) -> None:
    one = generate_bank_keys(tmp_path / "a")
    two = generate_bank_keys(tmp_path / "b")
    assert one.node_public.read_bytes() != two.node_public.read_bytes()
    assert one.audit_public.read_bytes() != two.audit_public.read_bytes()


@pytest.mark.parametrize("existing", ["node.key", "node.pub", "audit.key", "audit.pub"])
def test_keygen_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(ConfigError, match=f"{existing}: already exists; refusing to overwrite"):
        generate_bank_keys(tmp_path)
    assert (tmp_path / existing).read_text() == "keep me"
    others = [p for p in BankKeyFiles(tmp_path).all if p.name != existing]
    assert not any(p.exists() for p in others)


def test_keygen_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["participant", "keygen", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    send = out[out.index("send to the consortium operator") : out.index("never send")]
    keep = out[out.index("never send") :]
    assert "node.pub" in send and "audit.pub" in send
    assert "node.key" not in send and "audit.key" not in send
    assert "node.key" in keep and "audit.key" in keep

    again = runner.invoke(app, ["participant", "keygen", str(tmp_path / "keys")])
    assert again.exit_code == 2
    assert again.stderr == (
        f"error: {tmp_path / 'keys' / 'node.key'}: already exists; refusing to overwrite a "
        "key (move it away first)\n"
    )


def test_load_node_private_key_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.key: cannot read node key"):
        load_node_private_key(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(ConfigError, match=r"bad\.key: not an OpenSSH private key"):
        load_node_private_key(tmp_path / "bad.key")
