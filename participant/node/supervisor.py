"""The bank's guard service: load the guard, open its socket, run the SuperNode under it.

``fedcredit participant run-guard --home DIR`` (started in the background by
``participant start``) runs :func:`run_guard`:

1. read the node's plan (``DIR/node.json``), re-read the pinned member list (a list
   changed on disk since it was pinned stops the guard, named in one line) and open
   the guard: the bank's data is validated and split once, its privacy ledger and
   audit log are verified (a broken entry is named and the guard does not start);
2. with a node user: create it if missing, give it its own runtime folder, and refuse
   to go on unless it can run this fedcredit's Python (the SuperExec and every
   ClientApp run it) and while it can read the bank's data, ledger, audit log or keys;
3. listen on the guard's socket (:class:`~participant.guard.server.GuardServer`);
4. start the SuperNode (and, with a node user, its SuperExec as that user) as
   children that receive SIGTERM when the guard dies (``PR_SET_PDEATHSIG``);
5. serve until SIGTERM, then stop the children.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from credit.errors import ConfigError
from deploy.flower_env import flower_env
from participant.guard.bank_guard import BankGuard
from participant.guard.server import GuardServer
from participant.node.supernode import (
    SUPEREXEC_PID,
    SUPERNODE_PID,
    NodePlan,
    node_user_ids,
    superexec_command,
    supernode_command,
)

__all__ = [
    "check_runnable",
    "check_unreadable",
    "configure_guard_logging",
    "ensure_node_user",
    "run_guard",
]

_log = logging.getLogger("fedcredit.guard")
_PR_SET_PDEATHSIG = 1
RELAY_FLWR_HOME = "flwr-home"
"""The relay's Flower home in its runtime folder (the node user's, with one)."""
TASK_POLL_SECONDS = "0.1"
"""How often the SuperExec looks for a new message (Flower's default is 1 s)."""


def configure_guard_logging() -> None:
    """The guard service's log: INFO and above on stdout (its ``guard.log``).

    ``force``: a library may have configured the root logger when imported (Opacus does,
    at WARNING), which would silence the guard's request lines.
    """
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stdout,
        force=True,
    )


def run_guard(home: Path) -> None:
    """Run the bank's guard service from the plan in ``home`` until SIGTERM.

    Raises
    ------
    credit.errors.FedcreditError
        The plan, the pinned member list, the data, the ledger or the audit log fails
        its checks, or the node user can read the bank's files (nothing is started).
    """
    configure_guard_logging()
    plan = NodePlan.load(home)
    members = plan.guard.pinned_members()  # refuses a list changed since it was pinned
    if members is not None:
        _log.info("member list of %s pinned: %d banks, fingerprint %s", members.consortium,
                  len(members.members), members.fingerprint)  # fmt: skip
    guard = BankGuard.open(plan.guard)
    _log.info("bank %s: %d training and %d held-out rows loaded and checked", guard.name,
              len(guard.bank.train), len(guard.bank.test))  # fmt: skip
    owner = _prepare_runtime(plan)
    allowed = frozenset({os.getuid(), *([] if owner is None else [owner[0]])})
    server = GuardServer(
        guard, plan.socket, allowed_uids=allowed, owner=None if owner is None else owner[0]
    )
    _log.info("guard listening on %s", plan.socket)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    children = _start_children(plan, owner)  # before any thread: they fork with preexec_fn
    serving = threading.Thread(target=server.serve_forever, name="guard", daemon=True)
    serving.start()
    try:
        supernode = children[0]
        while not stop.wait(1.0):
            if supernode.poll() is not None:
                _log.warning("the SuperNode exited with code %s; the guard stays up until "
                             "`participant stop`", supernode.returncode)  # fmt: skip
                _stop_children(children[1:])  # its SuperExec has nothing left to serve
                stop.wait()
    finally:
        _stop_children(children)
        server.shutdown()
        server.server_close()
        guard.close()
        _log.info("guard stopped")


def _prepare_runtime(plan: NodePlan) -> tuple[int, int] | None:
    """The relay's folder and, with a node user, that user's ids.

    Without a node user the folder is the bank's (in its node folder, 0700). With one,
    it is outside the node folder (under /tmp) and stays the bank's own (0711): the
    node user may enter it to reach the guard's socket and its Flower home (the one
    sub-folder it owns), but can neither list it nor rename, replace or add anything
    in it. A folder the node user owned could be swapped for a symlink between two
    starts, and the guard, as root, would then chmod or chown what it points to.
    """
    if plan.node_user is None:
        plan.runtime_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(plan.runtime_dir, 0o700)
        (plan.runtime_dir / RELAY_FLWR_HOME).mkdir(exist_ok=True)
        return None
    ensure_node_user(plan.node_user)
    uid, gid = node_user_ids(plan.node_user)
    runtime = _claim_folder(plan.runtime_dir, os.getuid(), os.getgid(), 0o711)
    try:
        os.close(_claim_folder(Path(RELAY_FLWR_HOME), uid, gid, 0o700, parent=runtime))
    finally:
        os.close(runtime)
    check_runnable(plan, uid, gid)
    check_unreadable(plan, uid, gid)
    return uid, gid


def _claim_folder(path: Path, uid: int, gid: int, mode: int, *, parent: int | None = None) -> int:
    """Create ``path`` (or take the folder there), give it to ``uid`` with ``mode``.

    Never through a symlink: the folder is opened with ``O_NOFOLLOW`` and changed
    through that descriptor (returned open). ``parent``: a folder descriptor that
    ``path`` is relative to.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode, dir_fd=parent)
    try:
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise ConfigError(
            f"{path} is not a folder ({exc.strerror}): remove it, then start again",
            source="--node-user",
        ) from exc
    try:
        os.fchown(folder, uid, gid)
        os.fchmod(folder, mode)
    except OSError:
        os.close(folder)
        raise
    return folder


def ensure_node_user(name: str) -> None:
    """Create the unprivileged system user ``name`` if it does not exist (root only)."""
    try:
        node_user_ids(name)
        return
    except ConfigError:
        pass
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if created.returncode != 0:
        raise ConfigError(
            f"cannot create the user '{name}': {created.stderr.strip()}", source="--node-user"
        )
    _log.info("created the node user %s", name)


_RUNNABLE = "import flwr.supercore.cli.flower_superexec, participant.relay.client_app"


def check_runnable(plan: NodePlan, uid: int, gid: int) -> None:
    """Refuse to start unless the node user can run this Python and import the relay.

    The node user's SuperExec and every ClientApp it starts run this environment's
    Python, so the interpreter, the environment and every folder above them must be
    readable and traversable by that user (a Python under ``/root`` is not).
    """
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _RUNNABLE],
            user=uid, group=gid, extra_groups=[], capture_output=True, text=True,
            check=False, cwd=plan.runtime_dir, env={"PATH": os.environ.get("PATH", "")},
        )  # fmt: skip
        failure = probe.stderr.strip().splitlines()[-1:] if probe.returncode else []
    except OSError as exc:
        failure = [exc.strerror or str(exc)]
    if not failure:
        return
    closed = [
        folder
        for target in (Path(sys.executable), Path(sys.executable).resolve())
        for folder in reversed(target.parents)
        if not _traversable(folder, uid, gid)
    ]
    hint = (
        f"{closed[0]} is closed to it (`chmod o+x {closed[0]}`, or for that user only "
        f"`setfacl -m u:{plan.node_user}:x {closed[0]}`)"
        if closed
        else "its files must be readable by others"
    )
    raise ConfigError(
        f"the node user cannot run {sys.executable}: {failure[0]}; the SuperExec and every "
        f"ClientApp run this Python as that user, and {hint}",
        source="--node-user",
    )


def _traversable(folder: Path, uid: int, gid: int) -> bool:
    """Whether ``uid`` may enter ``folder`` by its mode bits (ACLs are not read)."""
    try:
        info = folder.stat()
    except OSError:
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


_PROBE = """
import sys
for path in sys.argv[1:]:
    try:
        open(path, "rb").close()
    except OSError:
        continue
    print(path)
"""


def check_unreadable(plan: NodePlan, uid: int, gid: int) -> None:
    """Refuse to start while the node user can read any of the bank's own files.

    The check runs a probe as the node user, so it sees exactly what that user's
    ClientApps would see (modes, folders, ACLs).
    """
    guard = plan.guard
    secrets = [guard.data_path, plan.node_key, plan.home / "node.json"]
    secrets += [p for p in (guard.ledger_path, guard.audit_log, guard.audit_key) if p is not None]
    audit = guard.audit_settings()
    if audit is not None:
        secrets.append(audit.key_path)
    existing = [str(p) for p in secrets if p.exists()]
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, *existing],
        user=uid, group=gid, extra_groups=[], capture_output=True, text=True, check=False,
        cwd=plan.runtime_dir, env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    readable = probe.stdout.split()
    if readable:
        raise ConfigError(
            f"the node user can read {readable[0]}: make it readable by the bank's user only "
            f"(chmod 600, or chmod o-rx on its folder), then start again",
            source="--node-user",
        )


def _pdeathsig() -> None:
    """In the child: receive SIGTERM when the guard dies (no relay without a guard)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_children(plan: NodePlan, owner: tuple[int, int] | None) -> list[subprocess.Popen[bytes]]:
    """The SuperNode, and with a node user its SuperExec as that user."""
    plan.services.mkdir(parents=True, exist_ok=True)
    supernode_env = flower_env(flwr_home=plan.home / "flwr-home")
    supernode_env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = TASK_POLL_SECONDS
    supernode = _spawn(supernode_command(plan), plan.supernode_log, supernode_env, plan.home)
    (plan.services / SUPERNODE_PID).write_text(f"{supernode.pid}\n")
    _log.info("SuperNode started (pid %d): log %s", supernode.pid, plan.supernode_log)
    children = [supernode]
    if owner is not None:
        relay_home = plan.runtime_dir / RELAY_FLWR_HOME  # the node user's only folder
        env = flower_env(flwr_home=relay_home)
        env["HOME"] = str(relay_home)
        env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = TASK_POLL_SECONDS
        superexec = _spawn(
            superexec_command(plan),
            plan.services / "superexec.log",
            env,
            relay_home,
            owner=owner,
        )
        (plan.services / SUPEREXEC_PID).write_text(f"{superexec.pid}\n")
        _log.info("SuperExec started as %s (pid %d)", plan.node_user, superexec.pid)
        children.append(superexec)
    return children


def _spawn(
    command: Sequence[str],
    log: Path,
    env: dict[str, str],
    cwd: Path,
    *,
    owner: tuple[int, int] | None = None,
) -> subprocess.Popen[bytes]:
    output: IO[bytes]
    with log.open("ab") as output:
        return subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            user=None if owner is None else owner[0],
            group=None if owner is None else owner[1],
            extra_groups=None if owner is None else [],
            preexec_fn=_pdeathsig,
        )


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()
    for child in reversed(children):
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=15)
