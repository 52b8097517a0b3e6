"""Read an HTML page's outline with the standard library: tags, ids, links, headings.

A strict reader for pages fedcredit writes: every non-void element must be closed in
order (an unclosed or stray tag is an error), so "the page parses" means its tree is
well formed, not only that a lenient browser could guess one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["PageOutline", "outline"]

# Elements without an end tag (HTML living standard, "void elements").
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip


@dataclass
class PageOutline:
    """What a page holds, in document order.

    Attributes
    ----------
    tags : list of str
        Every start tag.
    ids : list of str
        Every ``id`` attribute.
    sections : list of str
        The ``id`` of every ``<section>``.
    headings : list of str
        The text of every ``<h1>``/``<h2>``/``<h3>``.
    urls : list of tuple of (str, str)
        Every ``src`` and ``href`` attribute as ``(attribute, value)``.
    attributes : list of str
        Every attribute value (to look for addresses anywhere in the markup).
    images : list of str
        The ``src`` of every ``<img>``.
    errors : list of str
        Nesting errors: an end tag that closes nothing open, or elements left open.
    """

    tags: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    urls: list[tuple[str, str]] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = PageOutline()
        self._open: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        page = self.outline
        page.tags.append(tag)
        values = {name: value or "" for name, value in attrs}
        page.attributes.extend(values.values())
        if "id" in values:
            page.ids.append(values["id"])
            if tag == "section":
                page.sections.append(values["id"])
        page.urls.extend((name, values[name]) for name in ("src", "href") if name in values)
        if tag == "img":
            page.images.append(values.get("src", ""))
        if tag in {"h1", "h2", "h3"}:
            self._heading = []
        if tag not in _VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self._open or self._open[-1] != tag:
            self.outline.errors.append(f"</{tag}> closes {self._open[-1:] or 'nothing'}")
            return
        self._open.pop()
        if tag in {"h1", "h2", "h3"} and self._heading is not None:
            self.outline.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)

    def close(self) -> None:
        super().close()
        if self._open:
            self.outline.errors.append(f"left open: {self._open}")


def outline(html: str) -> PageOutline:
    """The outline of ``html`` (nesting errors listed, never raised)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.outline
