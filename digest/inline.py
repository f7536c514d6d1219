"""The stylesheet inlined into the HTML email templates, once per template.

Gmail drops `<link>` stylesheets and does not reliably keep a `<style>` block, so every rule
has to live in a style="" attribute; only the `@media` rules (dark mode, narrow screens) stay
in `<style>`, as an enhancement. Inlining the rendered message would cost an HTML parse per
recipient, so the inliner runs on the template source instead, when the `Renderer` loads it,
and rendering a message stays plain Jinja. The catch is that the template is not HTML yet:
its Jinja tags are hidden from the inliner's HTML parser and put back afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import css_inline
import jinja2

from digest.errors import DigestError

_HTML_SUFFIXES = (".html.j2", ".html")
_JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)
_MARK = "xjinjatag"
_MARKED = re.compile(rf"<!--{_MARK}(\d+)-->|{_MARK}(\d+)x")
_DOCUMENT = re.compile(r"<html[\s>]", re.IGNORECASE)
_HEAD_STYLE = re.compile(r"(.*?<head>)(<style>.*?</style>)(.*?)(</head>)", re.DOTALL)


def is_html(template: str) -> bool:
    """True for the templates that get the stylesheet (the text ones never do)."""
    return template.endswith(_HTML_SUFFIXES)


def _in_markup(protected: str) -> bool:
    """True when the text so far ends inside a tag, or in <title>, <style> or <textarea>,
    where an HTML comment would not survive the parser as a comment."""
    lower = protected.lower()
    if lower.rfind("<") > lower.rfind(">"):
        return True
    return any(lower.rfind(f"<{n}") > lower.rfind(f"</{n}") for n in ("title", "style", "textarea"))


def _tag_number(found: re.Match[str]) -> int:
    return int(found.group(1) or found.group(2))


def inline_css(source: str, css: str, name: str) -> str:
    """The template source with `css` inlined into style="" attributes (@media rules kept).

    Jinja tags are hidden from the HTML parser as comments (or plain words inside a tag),
    which no HTML rule moves; a tag the inliner rewrites anyway (one inside a style=""
    attribute, say) is refused with an error naming the template.
    """
    if _MARK in source:
        raise DigestError(f"template {name}: contains the reserved word {_MARK!r}")
    tags: list[str] = []
    protected = ""
    position = 0
    for found in _JINJA_TAG.finditer(source):
        protected += source[position : found.start()]
        n = len(tags)
        # Comments stay where they are even between table rows; inside a tag, <title> or
        # <style> a plain word does.
        protected += f"{_MARK}{n}x" if _in_markup(protected) else f"<!--{_MARK}{n}-->"
        tags.append(found.group())
        position = found.end()
    protected += source[position:]
    options: dict[str, Any] = {"keep_at_rules": True, "load_remote_stylesheets": False}
    try:
        if _DOCUMENT.search(protected):
            inlined = css_inline.CSSInliner(extra_css=css, **options).inline(protected)
        else:
            inlined = css_inline.inline_fragment(protected, css, **options)
    except (ValueError, css_inline.InlineError) as error:
        raise DigestError(f"template {name}: cannot inline the CSS: {error}") from error
    if [_tag_number(found) for found in _MARKED.finditer(inlined)] != list(range(len(tags))):
        raise DigestError(
            f"template {name}: the CSS inliner moved or rewrote a Jinja tag "
            "(one inside a style attribute?); move it out"
        )
    return _MARKED.sub(lambda found: tags[_tag_number(found)], _style_last(inlined))


def _style_last(document: str) -> str:
    """Move the kept @media block from the top of <head> (where the inliner puts it) to its
    end, so <meta charset> stays within the first 1024 bytes for browsers."""
    found = _HEAD_STYLE.match(document)
    if not found:
        return document
    start, style, rest, close = found.groups()
    return start + rest.lstrip("\n") + style + "\n" + close + document[found.end() :]


class InliningLoader(jinja2.BaseLoader):
    """Hands out HTML templates with the stylesheet already inlined."""

    def __init__(self, inner: jinja2.BaseLoader, css: str) -> None:
        self.inner = inner
        self.css = css

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        if is_html(template):
            source = inline_css(source, self.css, template)
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()
