"""A malicious app bundle against banks whose ClientApps run as a separate node user.

Three banks (the fewest a secure-aggregation roster may name) start with
``participant start --node-user``: their guard holds the data,
the privacy ledger, the audit log and the keys; their SuperNode's ClientApps run as
an unprivileged user. The operator then submits a bundle of its own (written below,
not fedcredit's relay) whose ClientApp knows where the banks keep their files and
tries everything it can: read the data, the ledger, the keys, the node plan; append
to and sign the audit log; and, through the guard's own socket, train without
differential privacy, train in the clear (the banks require secure aggregation, the
default), evaluate on another hold-out split and ask for an unknown task. Every
attempt fails, the guard records its refusals in the bank's audit log,
no path of the bank's reaches the ClientApp, and the honest run afterwards
completes. A last test kills a guard: its SuperNode goes with it.

The test needs root (``--node-user``). Its node users must be able to run this
Python environment: when the interpreter sits under a folder closed to others (a
pyenv Python under ``/root``) or pytest's temporary folders are closed (0700), the
test lets the node users (and no one else) through those folders with an ACL entry
for the duration of the module; the bank's own folders keep their modes, so the
denials below come from the bank's permissions, not from the test's set-up.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from coordinator.ops.flower_cli import flwr_command, flwr_env, toml_line
from coordinator.ops.layout import CONNECTION
from participant.node.node_keys import BankKeyFiles
from participant.node.supernode import NodePlan, node_user_ids
from participant.node.supervisor import ensure_node_user
from tests.deployment.consortium import (
    FEDCREDIT,
    RunningConsortium,
    fedcredit,
    process_env,
    started_consortium,
)

pytestmark = pytest.mark.deployment

NODE_USERS = {"bank-a": "fc-node-a", "bank-b": "fc-node-b", "bank-c": "fc-node-c"}
ROWS_PER_BANK = 1_500
MAX_EPSILON = 3.0
RUN_TIMEOUT = 600.0
LAUNCH_TIMEOUT = 1_200.0
GONE_WITHIN = 10.0
"""Seconds a SuperNode may outlive its killed guard (PR_SET_PDEATHSIG: at once)."""


# --- Letting the node users reach this Python: a POSIX ACL entry, undone afterwards ----

_ACL_XATTR = "system.posix_acl_access"
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_SEARCH = 0o1


def _closed_folders(targets: Iterable[Path]) -> list[Path]:
    """Folders on the way to ``targets`` that others may not enter (by mode bits)."""
    closed: list[Path] = []
    for target in targets:
        for folder in (*reversed(target.parents), *([target] if target.is_dir() else [])):
            if not folder.stat().st_mode & stat.S_IXOTH and folder not in closed:
                closed.append(folder)
    return closed


def _acl_entries(folder: Path) -> tuple[bytes | None, list[tuple[int, int, int]]]:
    """The folder's access ACL as stored (None: none), and as entries (from its mode)."""
    try:
        raw: bytes | None = os.getxattr(folder, _ACL_XATTR)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        raw = None
    if raw:
        count = (len(raw) - _ACL_HEADER.size) // _ACL_ENTRY.size
        entries = [
            _ACL_ENTRY.unpack_from(raw, _ACL_HEADER.size + index * _ACL_ENTRY.size)
            for index in range(count)
        ]
        return raw, [(tag, perm, ident) for tag, perm, ident in entries]
    mode = folder.stat().st_mode
    return raw, [
        (_USER_OBJ, (mode >> 6) & 0o7, _UNDEFINED_ID),
        (_GROUP_OBJ, (mode >> 3) & 0o7, _UNDEFINED_ID),
        (_OTHER, mode & 0o7, _UNDEFINED_ID),
    ]


def _let_through(folder: Path, uids: Iterable[int]) -> None:
    """Add ``user:UID:--x`` entries to ``folder``'s ACL (nothing else changes for others)."""
    _, entries = _acl_entries(folder)
    wanted = set(uids)
    kept = [e for e in entries if e[0] != _MASK and not (e[0] == _USER and e[2] in wanted)]
    old_mask = next((perm for tag, perm, _ in entries if tag == _MASK), None)
    group_obj = next(perm for tag, perm, _ in entries if tag == _GROUP_OBJ)
    mask = (group_obj if old_mask is None else old_mask) | _SEARCH
    added = [(_USER, _SEARCH, uid) for uid in sorted(wanted)]
    ordered = sorted([*kept, *added, (_MASK, mask, _UNDEFINED_ID)], key=lambda e: (e[0], e[2]))
    raw = _ACL_HEADER.pack(_ACL_VERSION) + b"".join(_ACL_ENTRY.pack(*e) for e in ordered)
    os.setxattr(folder, _ACL_XATTR, raw)


@contextlib.contextmanager
def node_users_let_through(folders: list[Path], uids: list[int]) -> Iterator[None]:
    """Let ``uids`` traverse ``folders`` for the duration; restore ACLs and modes after."""
    saved = [
        (folder, folder.stat().st_mode & 0o7777, _acl_entries(folder)[0]) for folder in folders
    ]
    try:
        for folder in folders:
            _let_through(folder, uids)
        yield
    finally:
        for folder, mode, raw in saved:
            if raw is None:
                with contextlib.suppress(OSError):
                    os.removexattr(folder, _ACL_XATTR)
            else:
                os.setxattr(folder, _ACL_XATTR, raw)
            os.chmod(folder, mode)


def _can_run_python(uid: int, gid: int) -> str:
    """'' if ``uid`` can run this Python and import the relay, else why not."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import flwr, participant.relay.client_app"],
            user=uid, group=gid, extra_groups=[], capture_output=True, text=True,
            check=False, cwd="/", env={"PATH": os.environ.get("PATH", "")}, timeout=120,
        )  # fmt: skip
    except OSError as exc:
        return str(exc)
    return "" if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def node_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The node users, able to run this Python and to reach the module's folder.

    Yields the module's folder; everything the test writes lives below it.
    """
    if os.geteuid() != 0:
        pytest.skip("--node-user needs root: run the deployment tests as root (CI does)")
    folder = tmp_path_factory.mktemp("malicious")
    ids = []
    for name in NODE_USERS.values():
        ensure_node_user(name)  # what the guard does; done first so the ACL can name them
        ids.append(node_user_ids(name))
    python = [Path(sys.executable), Path(sys.executable).resolve(), Path(sys.prefix)]
    closed = _closed_folders([*python, Path(sys.base_prefix), folder])
    with contextlib.ExitStack() as undo:
        try:
            undo.enter_context(node_users_let_through(closed, [uid for uid, _ in ids]))
        except OSError as exc:
            pytest.skip(
                f"the node users cannot run {sys.executable} ({', '.join(map(str, closed))} "
                f"closed to others) and this file system refuses ACLs: {exc}"
            )
        for uid, gid in ids:
            problem = _can_run_python(uid, gid)
            if problem:
                pytest.fail(f"the node users still cannot run {sys.executable}: {problem}")
        yield folder


# --- The consortium: three banks whose ClientApps run as node users -------------------


@dataclass(frozen=True)
class Bank:
    """A started bank: its node folder, data file and keys."""

    name: str
    home: Path
    data: Path
    keys: BankKeyFiles

    @property
    def plan(self) -> NodePlan:
        return NodePlan.load(self.home)

    @property
    def ledger(self) -> Path:
        return self.home / "privacy-ledger.jsonl"

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.jsonl"

    def secrets(self) -> dict[str, Path]:
        """What the bank keeps from its ClientApps, by name."""
        return {
            "data": self.data,
            "ledger": self.ledger,
            "audit-log": self.audit_log,
            "audit-key": self.keys.audit_key,
            "node-key": self.keys.node_key,
            "node-plan": self.home / "node.json",
            "home": self.home,
        }


@dataclass(frozen=True)
class Site:
    """The consortium and its three banks."""

    consortium: RunningConsortium
    banks: dict[str, Bank]
    folder: Path


@pytest.fixture(scope="module")
def site(node_users: Path, embedded_frame: pd.DataFrame) -> Iterator[Site]:
    folder = node_users
    data = folder / "bank-data"
    data.mkdir(mode=0o700)
    os.chmod(data, 0o700)  # the bank's data folder: its user only
    homes: list[Path] = []
    try:
        with started_consortium(
            folder / "consortium",
            extra_init=["--rounds", "1", "--min-banks", "2", "--max-epsilon", str(MAX_EPSILON)],
        ) as consortium:
            files = {}
            for index, name in enumerate(NODE_USERS):
                files[name] = data / f"{name}.csv"
                rows = embedded_frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK]
                rows.to_csv(files[name], index=False)
                homes.append(consortium.work / name / "node")
            started = consortium.add_banks_and_start(
                files, max_epsilon=MAX_EPSILON, node_users=NODE_USERS
            )
            banks = {
                name: Bank(
                    name=name,
                    home=started[name],
                    data=files[name],
                    keys=BankKeyFiles(consortium.work / name / "keys"),
                )
                for name in NODE_USERS
            }
            for name in banks:
                consortium.wait_for_status(name, "online")
            yield Site(consortium=consortium, banks=banks, folder=folder)
    finally:  # the relays' folders are outside the test's folder, under /tmp
        for home in homes:
            if (home / "node.json").is_file():
                shutil.rmtree(NodePlan.load(home).runtime_dir, ignore_errors=True)


# --- The attacker's app bundle ----------------------------------------------------------

PYPROJECT = """\
[project]
name = "evilapp"
version = "1.0.0"
description = "Looks like a credit model; is not."
license = "Apache-2.0"
dependencies = ["flwr>=1.41"]

[tool.flwr.app]
publisher = "mallory"

[tool.flwr.app.components]
serverapp = "evilapp.server_app:app"
clientapp = "evilapp.client_app:app"

[tool.flwr.app.config]
{config}
"""

SERVER_APP = '''\
"""The attacker's ServerApp: one query to every bank, every reply into a file."""

import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    expected = int(context.run_config["banks"])
    deadline = time.monotonic() + 120.0
    nodes = list(grid.get_node_ids())
    while len(nodes) < expected and time.monotonic() < deadline:
        time.sleep(1.0)
        nodes = list(grid.get_node_ids())
    probe = RecordDict({"probe": ConfigRecord({"ask": "everything"})})
    messages = [Message(probe, dst_node_id=node, message_type="query") for node in nodes]
    replies = grid.send_and_receive(messages, timeout=float(context.run_config["timeout"]))
    found = []
    for reply in replies:
        entry = {"node": str(reply.metadata.src_node_id)}
        if reply.has_error():
            entry["error"] = str(reply.error.reason)
        else:
            entry.update({key: str(value) for key, value in reply.content["findings"].items()})
        found.append(entry)
    Path(str(context.run_config["findings"])).write_text(json.dumps(found, indent=2))
    print(f"findings of {len(found)} of {len(nodes)} nodes written")
'''

CLIENT_APP = '''\
"""The attacker's ClientApp: it tries everything a ClientApp can try, and reports."""

import json
import os
import pwd
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def describe(content):
    """Every record of ``content`` as plain JSON (array shapes, not values)."""
    out = {}
    for name, record in content.items():
        if isinstance(record, ArrayRecord):
            out[name] = {key: list(record[key].shape) for key in record}
        else:
            out[name] = {
                key: value if isinstance(value, (str, int, float, bool)) else repr(value)
                for key, value in record.items()
            }
    return out


def outcome(action):
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        return f"denied: {type(exc).__name__}: {exc}"


def read(path):
    with open(path, "rb") as handle:
        return f"READ {len(handle.read())} bytes"


def listing(path):
    return f"LISTED {sorted(os.listdir(path))}"


def append(path):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"event":"run-end","data":{"forged":true}}\\n')
    return "APPENDED"


def sign(log_path, key_path, bank):
    from credit.audit import AuditLog, load_or_create_signing_key

    key = load_or_create_signing_key(Path(key_path))
    with AuditLog(Path(log_path), key, f"bank {bank}") as log:
        log.append("run-end", {"run": "forged"})
    return "SIGNED"


def forge_with_own_key(log_path, bank):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from credit.audit import AuditLog

    with AuditLog(Path(log_path), Ed25519PrivateKey.generate(), f"bank {bank}") as log:
        log.append("run-end", {"run": "forged"})
    return "FORGED"


def through_the_guard(socket_path, run_id, node_id):
    """Real typed requests over the guard's socket, as a modified relay would send them."""
    from credit import __version__, message_keys
    from credit.encoding import StatsSource, fit_encoder
    from credit.messages import BankIntro, LedgerSummary, RoundInstructions, RunInstructions, Task
    from credit.models import ModelKind, ModelSpec, build_model
    from credit.schema import load_schema
    from participant.contract import GuardRequest, RequestKind
    from participant.relay.socket_link import SocketLink

    link = SocketLink(Path(socket_path))
    schema = load_schema()
    run = RunInstructions(
        run_name="exfiltrate", schema_hash=schema.schema_hash(), test_fraction=0.2,
        validation_fraction=0.2, seed=0, planned_rounds=20, planned_evaluations=21,
        local_epochs=1, batch_size=64, max_grad_norm=1.0,
    )
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    found = {}

    def ask(name, kind, content):
        request = GuardRequest(
            kind=kind, flower_run_id=run_id, node_id=node_id, relay_version=__version__
        )
        reply, answer = link.ask(request, content)
        found[f"guard:{name}"] = json.dumps(
            {"status": str(reply.status), "reason": reply.reason, "content": describe(answer)}
        )
        return answer

    def round_content(**changes):
        settings = {**run.model_dump(), **changes}
        instructions = RoundInstructions(
            **settings, server_round=1, learning_rate=0.05, score_bins=100,
            encoder=encoder, model_spec=spec,
        )
        weights = ArrayRecord(build_model(spec, seed=1).state_dict())
        content = RecordDict({message_keys.ARRAYS: weights})
        instructions.put(content)
        return content

    joined = RecordDict()  # no data release: a plain feature-stats query would be refused
    run.query(Task.JOIN).put(joined)
    answer = ask("join", "query", joined)
    found["bank"] = outcome(lambda: BankIntro.take(answer).name)

    no_dp = round_content()
    no_dp[message_keys.CONFIG]["noise-multiplier"] = 0.0
    no_dp[message_keys.CONFIG]["dp"] = False
    ask("train-without-dp", "train", no_dp)

    answer = ask("train", "train", round_content())
    found["train-epsilon"] = outcome(lambda: str(LedgerSummary.take(answer).epsilon))

    ask("evaluate-other-split", "evaluate", round_content(test_fraction=0.5))

    unknown = RecordDict()
    run.query(Task.ENROLL).put(unknown)
    unknown[message_keys.CONFIG]["task"] = "sign-audit-entry"
    ask("sign-audit-entry", "query", unknown)
    return found


@app.query()
def attack(message: Message, context: Context) -> Message:
    found = {
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "node-config": json.dumps(dict(context.node_config)),
        "received": json.dumps(
            {"content": describe(message.content), "metadata": repr(message.metadata)}
        ),
    }
    socket_path = str(context.node_config.get("guard-socket", ""))
    try:
        found.update(through_the_guard(socket_path, message.metadata.run_id, context.node_id))
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        found["guard:error"] = f"{type(exc).__name__}: {exc}"
    runtime = Path(socket_path).parent  # the relay's folder, which the guard runs as root
    found["runtime:rename"] = outcome(lambda: runtime.rename(f"{runtime}.moved") or "RENAMED")
    found["runtime:replace-flwr-home"] = outcome(
        lambda: (runtime / "flwr-home").rename(runtime / "flwr-home.moved") or "REPLACED"
    )
    found["runtime:add-symlink"] = outcome(
        lambda: (runtime / "planted").symlink_to("/etc/shadow") or "PLANTED"
    )
    secrets = json.loads(str(context.run_config["secrets"]))
    for bank, paths in secrets.items():
        for name, path in paths.items():
            action = listing if name == "home" else read
            found[f"open:{bank}:{name}"] = outcome(lambda: action(path))
        found[f"append:{bank}:audit-log"] = outcome(lambda: append(paths["audit-log"]))
        found[f"sign:{bank}:audit-log"] = outcome(
            lambda: sign(paths["audit-log"], paths["audit-key"], bank)
        )
        found[f"forge:{bank}:audit-log"] = outcome(
            lambda: forge_with_own_key(paths["audit-log"], bank)
        )
    return Message(RecordDict({"findings": ConfigRecord(found)}), reply_to=message)
'''


def write_malicious_app(
    folder: Path, *, findings: Path, secrets: dict[str, dict[str, str]]
) -> Path:
    """The attacker's Flower app in ``folder/evilapp``; the run config names the secrets."""
    app = folder / "evilapp"
    package = app / "evilapp"
    package.mkdir(parents=True)
    config = [
        toml_line("findings", str(findings)),
        toml_line("secrets", json.dumps(secrets)),
        toml_line("banks", len(secrets)),
        toml_line("timeout", RUN_TIMEOUT),
    ]
    (app / "pyproject.toml").write_text(PYPROJECT.format(config="\n".join(config)))
    (package / "__init__.py").write_text("")
    (package / "server_app.py").write_text(SERVER_APP)
    (package / "client_app.py").write_text(CLIENT_APP)
    return app


def submit(site: Site, app: Path) -> subprocess.CompletedProcess[str]:
    """``flwr run APP consortium --stream`` with the operator's Flower home."""
    return subprocess.run(
        flwr_command("run", str(app), CONNECTION, "--stream"),
        capture_output=True,
        text=True,
        env=flwr_env(site.consortium.consortium.paths.flwr_home),
        cwd=app,
        timeout=RUN_TIMEOUT + 120,
        check=False,
    )


def _audit_entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def _dp_sgd_events(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    lines = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines() if line]
    return sum(1 for e in lines if e.get("type") == "event" and e.get("kind") == "dp-sgd")


def _denied(outcome: str) -> bool:
    """The attempt failed on permissions (EACCES or EPERM), not on a missing file."""
    refusals = ("Permission denied", "Operation not permitted")
    return outcome.startswith("denied: ") and any(text in outcome for text in refusals)


def _guard(finding: dict[str, str], name: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(finding[f"guard:{name}"])
    return reply


# --- The tests ---------------------------------------------------------------------------


def test_a_malicious_bundle_gets_nothing_and_the_honest_run_completes(site: Site) -> None:
    banks = site.banks
    secrets = {name: {k: str(v) for k, v in bank.secrets().items()} for name, bank in banks.items()}
    findings_file = site.folder / "findings.json"
    app = write_malicious_app(site.folder, findings=findings_file, secrets=secrets)
    dp_sgd_before = {name: _dp_sgd_events(bank.ledger) for name, bank in banks.items()}

    started = time.monotonic()
    submitted = submit(site, app)
    print(f"malicious run: {time.monotonic() - started:.1f} s")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    findings = json.loads(findings_file.read_text(encoding="utf-8"))
    assert len(findings) == len(banks), findings
    assert not any("error" in f for f in findings), findings
    by_bank = {f["bank"]: f for f in findings}
    assert sorted(by_bank) == sorted(banks), findings

    for name, bank in banks.items():
        finding = by_bank[name]
        plan = bank.plan
        assert finding["user"] == NODE_USERS[name]
        assert "guard:error" not in finding, finding["guard:error"]

        # Its node config names the guard's socket, and nothing of the bank's.
        assert json.loads(finding["node-config"]) == {"guard-socket": str(plan.socket)}
        seen = [finding["node-config"], finding["received"]]
        seen += [v for k, v in finding.items() if k.startswith("guard:")]
        for secret in bank.secrets().values():
            assert all(str(secret) not in text for text in seen), (secret, seen)

        # Every file of every bank stays closed to it: read, listed, appended, signed.
        for other, paths in secrets.items():
            for what, path in paths.items():
                assert Path(path).exists(), path
                outcome = finding[f"open:{other}:{what}"]
                assert outcome.startswith("denied: PermissionError"), (other, what, outcome)
            for attempt in ("append", "sign", "forge"):
                outcome = finding[f"{attempt}:{other}:audit-log"]
                assert _denied(outcome), (attempt, other, outcome)

        # Nor can it swap the relay's folder, which the guard (root) chowns at start.
        for attempt in ("rename", "replace-flwr-home", "add-symlink"):
            assert _denied(finding[f"runtime:{attempt}"]), finding[f"runtime:{attempt}"]

        # Through the guard: it joins, but trains nothing. Without DP the request is
        # malformed; with DP but in the clear the bank refuses, as it requires secure
        # aggregation by default: no update leaves it, nothing is charged.
        assert _guard(finding, "join")["status"] == "answered"
        no_dp = _guard(finding, "train-without-dp")
        assert no_dp["status"] == "refused"
        assert "unknown key" in no_dp["reason"], no_dp
        trained = _guard(finding, "train")
        assert trained["status"] == "refused", trained
        assert "sends its model update only through secure aggregation" in trained["reason"]
        assert trained["content"] == {}
        assert finding["train-epsilon"].startswith("denied: "), finding["train-epsilon"]
        assert _dp_sgd_events(bank.ledger) == dp_sgd_before[name]
        split = _guard(finding, "evaluate-other-split")
        assert split["status"] == "refused"
        assert "test-fraction 0.5" in split["reason"] and "split is fixed" in split["reason"]
        unknown = _guard(finding, "sign-audit-entry")
        assert unknown["status"] == "refused"
        assert "sign-audit-entry" in unknown["reason"], unknown

        # The bank's audit log verifies (the attacker's run never ended: it is open) and
        # records what the guard refused.
        fedcredit("audit", "verify", "--allow-open", str(bank.audit_log))
        refusals = [e["data"] for e in _audit_entries(bank.audit_log) if e["event"] == "refusal"]
        kinds = sorted(r["kind"] for r in refusals)
        expected = ["holdout-split", "malformed-request", "malformed-request", "plain-update"]
        assert kinds == expected, refusals
        assert not any("forged" in json.dumps(e) for e in _audit_entries(bank.audit_log))

    # The honest run afterwards completes.
    out = site.folder / "honest"
    started = time.monotonic()
    launch = subprocess.run(
        [str(FEDCREDIT), "coordinator", "launch", str(site.consortium.root),
         "--rounds", "1", "--run-name", "honest", "--out", str(out)],
        capture_output=True, text=True, env={**process_env(), "COLUMNS": "200"},
        timeout=LAUNCH_TIMEOUT, check=False,
    )  # fmt: skip
    print(f"honest run: {time.monotonic() - started:.1f} s")
    assert launch.returncode == 0, launch.stdout + launch.stderr
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"] == "completed"
    assert sorted(metrics["rounds"][0]["banks"]) == sorted(banks)
    for name, bank in banks.items():
        assert _dp_sgd_events(bank.ledger) == dp_sgd_before[name] + 1  # the honest round
        fedcredit("audit", "verify", str(bank.audit_log))


def _pid_alive(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone


def test_killing_the_guard_takes_its_supernode_down(site: Site) -> None:
    bank = site.banks["bank-b"]
    services = bank.home / "services"
    guard = int((services / "guard.pid").read_text())
    supernode = int((services / "supernode.pid").read_text())
    superexec = int((services / "superexec.pid").read_text())
    assert all(_pid_alive(pid) for pid in (guard, supernode, superexec))
    assert fedcredit("participant", "status", "--home", str(bank.home)).returncode == 0

    os.kill(guard, signal.SIGKILL)
    started = time.monotonic()
    while time.monotonic() - started < GONE_WITHIN:
        if not any(_pid_alive(pid) for pid in (guard, supernode, superexec)):
            break
        time.sleep(0.2)
    print(f"SuperNode and SuperExec gone {time.monotonic() - started:.1f} s after the guard")
    assert not _pid_alive(supernode), "the SuperNode outlived its guard"
    assert not _pid_alive(superexec), "the SuperExec outlived its guard"

    status = fedcredit("participant", "status", "--home", str(bank.home), check=False)
    assert status.returncode == 1, status.stdout
    guard_line = next(line for line in status.stdout.splitlines() if "guard:" in line)
    assert "not running" in guard_line, status.stdout
