"""The base of every typed message part: a frozen model carried as one Flower record.

A Flower message is a ``RecordDict`` of named records. Each part of fedcredit's
message contract is a frozen pydantic model that knows its record key
(``RECORD``), writes itself as one ``ConfigRecord`` or ``MetricRecord``
(:meth:`to_record`, field names hyphenated as in Flower's run config) and reads
itself back, validating every entry (:meth:`from_record`). Anything that does not
follow the contract raises :class:`~credit.errors.MalformedMessage` naming the record
and the entry: a receiver drops that message, never the run, and never relies on
``assert``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, TypeVar

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

from credit import message_keys
from credit.config_files import first_problem
from credit.errors import MalformedMessage
from credit.records import record_of

__all__ = [
    "AS_JSON",
    "ConfigPart",
    "MessagePart",
    "MetricPart",
    "content_of",
    "from_json",
    "malformed",
]

M = TypeVar("M", bound=BaseModel)


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


def malformed(record: str, exc: ValidationError) -> MalformedMessage:
    """A one-line :class:`MalformedMessage` from the first error of a validation."""
    return MalformedMessage(f"record '{record}': {first_problem(exc)}")


def _json_text(value: BaseModel) -> str:
    return value.model_dump_json()


AS_JSON = PlainSerializer(_json_text, return_type=str)
"""Serializer of a model field that travels as its JSON text (one string entry)."""


def from_json(model: type[M]) -> BeforeValidator:
    """Validator of a field that travels as JSON text: ``Annotated[M, from_json(M), AS_JSON]``."""

    def parse(value: object) -> object:
        return model.model_validate_json(value) if isinstance(value, str | bytes) else value

    return BeforeValidator(parse)


class _Part(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=_hyphenated,
        populate_by_name=True,
        use_enum_values=True,
    )

    RECORD: ClassVar[str]
    """The key of this part's record in a message's ``RecordDict``."""

    def _entries(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)

    @classmethod
    def _parse(cls, entries: dict[str, Any], key: str | None = None) -> Self:
        try:
            return cls.model_validate(entries)
        except ValidationError as exc:
            raise malformed(key or cls.RECORD, exc) from None

    @classmethod
    def present(cls, content: RecordDict) -> bool:
        """Whether ``content`` carries a record under this part's key."""
        return cls.RECORD in content

    def to_record(self) -> ConfigRecord | MetricRecord:
        """This part as its record (each kind of part says which)."""
        raise NotImplementedError

    @classmethod
    def take(cls, content: RecordDict) -> Self:
        """Read this part from ``content`` (each kind of part says from which record)."""
        raise NotImplementedError

    def put(self, content: RecordDict, *, key: str | None = None) -> None:
        """Write this part into ``content`` under :attr:`RECORD` (or ``key``, if given)."""
        content[key or self.RECORD] = self.to_record()

    @classmethod
    def take_optional(cls, content: RecordDict) -> Self | None:
        """This part if ``content`` carries it, else None."""
        return cls.take(content) if cls.present(content) else None


class ConfigPart(_Part):
    """A message part carried as one ``ConfigRecord``."""

    def to_record(self) -> ConfigRecord:
        """This part as a ConfigRecord (unset optional fields are left out)."""
        return ConfigRecord(self._entries())

    @classmethod
    def from_record(cls, record: ConfigRecord) -> Self:
        """Validate a ConfigRecord; :class:`MalformedMessage` naming the entry otherwise."""
        return cls._parse({key: record[key] for key in record})

    @classmethod
    def take(cls, content: RecordDict) -> Self:
        """Read this part from ``content``; :class:`MalformedMessage` if missing or invalid."""
        return cls.from_record(record_of(content, cls.RECORD, ConfigRecord))


class MetricPart(_Part):
    """A message part carried as one ``MetricRecord`` (numbers only)."""

    def to_record(self) -> MetricRecord:
        """This part as a MetricRecord (unset optional fields are left out)."""
        return MetricRecord(self._entries())

    @classmethod
    def from_record(cls, record: MetricRecord, *, key: str | None = None) -> Self:
        """Validate a MetricRecord; :class:`MalformedMessage` naming the entry otherwise.

        ``key`` names the record in that message (default :attr:`RECORD`).
        """
        return cls._parse({name: record[name] for name in record}, key)

    @classmethod
    def take(cls, content: RecordDict, *, key: str | None = None) -> Self:
        """Read this part from ``content`` (under ``key``, default :attr:`RECORD`).

        Raises :class:`MalformedMessage` if the record is missing or invalid.
        """
        key = key or cls.RECORD
        return cls.from_record(record_of(content, key, MetricRecord), key=key)


MessagePart = ConfigPart | MetricPart
"""Any typed part of a message (one record)."""


def content_of(*parts: MessagePart, arrays: ArrayRecord | None = None) -> RecordDict:
    """A message's content: each part under its record key, and ``arrays`` if given."""
    content = RecordDict() if arrays is None else RecordDict({message_keys.ARRAYS: arrays})
    for part in parts:
        part.put(content)
    return content
