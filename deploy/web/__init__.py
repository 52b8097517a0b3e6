"""The dashboards' web layer, shared by the operator's and the bank's dashboards.

- :mod:`~deploy.web.app`: the read-only web application (page, JSON state, linked files);
- :mod:`~deploy.web._page`: the base page both dashboards' pages extend;
- :mod:`~deploy.web.server`: uvicorn on a socket bound here, loopback by default;
- :mod:`~deploy.web.audit_status`: an audit log as a dashboard shows it (verified live).

What each dashboard shows is read by its role: :mod:`coordinator.ops.dashboard` and
:mod:`participant.node.dashboard`.
"""

from __future__ import annotations

from deploy.web.app import DashboardPage, StateSource, dashboard_app
from deploy.web.audit_status import AuditView, file_signature, read_audit
from deploy.web.server import (
    DashboardServer,
    allowed_hosts,
    check_host,
    dashboard_server,
    loopback_host,
)

__all__ = [
    "AuditView",
    "DashboardPage",
    "DashboardServer",
    "StateSource",
    "allowed_hosts",
    "check_host",
    "dashboard_app",
    "dashboard_server",
    "file_signature",
    "loopback_host",
    "read_audit",
]
