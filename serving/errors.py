"""Errors of the scoring service.

Hierarchy::

    credit.errors.FedcreditError
    ├── ConfigError(ValueError)
    │   └── ServiceRefused          the service will not start (flags, TLS, host, token)
    └── ApplicantsRefused(ValueError)   a request's applicants break the schema (HTTP 422)

A refused start is one line at the command line (exit code 2); a refused request is
an HTTP 422 answer whose problems name each field, and changes nothing in the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from credit.errors import ConfigError, FedcreditError

__all__ = ["ApplicantsRefused", "Problem", "ServiceRefused"]


class ServiceRefused(ConfigError):
    """The service will not start with these settings (the message says which and why)."""


@dataclass(frozen=True)
class Problem:
    """One field's problem in a request.

    Attributes
    ----------
    path : str
        Where: ``AGE``, ``applicants[3].AGE``, ``body``.
    message : str
        What is wrong (pydantic's text: "Input should be less than or equal to 100").
    kind : str
        pydantic's error type (``less_than_equal``, ``literal_error``,
        ``extra_forbidden``, ``missing``, ...; ``json_invalid`` for a body that is
        not JSON).
    feature : str or None
        The schema column concerned; None for the body or a field the schema does not
        declare.
    """

    path: str
    message: str
    kind: str
    feature: str | None

    def document(self) -> dict[str, str | None]:
        """The problem as one entry of the 422 answer's ``problems``."""
        return {"field": self.path, "problem": self.message, "type": self.kind}


class ApplicantsRefused(FedcreditError, ValueError):
    """A request's applicants break the schema: every problem, each naming its field."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.path}: {first.message}{more}")
