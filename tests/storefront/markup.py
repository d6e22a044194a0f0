"""What a careful front-end review checks on every storefront page, as one function over the
page's HTML (`problems`): well-formed nesting, one <h1> and headings in order, landmarks,
labels, alt texts, readable links and buttons, unique ids, and no empty recommendation boxes.

A screen reader reads what the markup says, not what the CSS shows: these are the rules it
depends on, checked on the HTML the server sends (the browser tests check focus and keyboard).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HEADING = re.compile(r"h([1-6])")
# Controls a person fills in, which need a label; hidden inputs and buttons do not.
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}
INTERACTIVE = {"a", "button", "details", "input", "select", "textarea", "label"}
# Content a heading may head: text, or something a person sees or uses.
CONTENT = {"img", "svg", "a", "button", "input", "select", "textarea", "form", "ul", "ol", "dl", "table"}
# What may stand directly in <body>: landmarks (a screen reader's list of regions), scripts,
# and live regions that speak for themselves. Anything else is text no region holds.
BODY_CHILDREN = {"header", "nav", "main", "aside", "footer", "script", "template", "noscript"}


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def text(self) -> str:
        """The text a screen reader reads for it (skipping what is aria-hidden)."""
        parts = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.attrs.get("aria-hidden") != "true":
                parts.append(child.attrs.get("aria-label") or child.attrs.get("alt") or child.text())
        return " ".join(" ".join(parts).split())

    def name(self) -> str:
        """Its accessible name: aria-label, else its text."""
        return self.attrs.get("aria-label", "").strip() or self.text()

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def hidden(self) -> bool:
        return any(n.attrs.get("aria-hidden") == "true" for n in (self, *self.ancestors()))

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    """The page as a tree of `Node`s, noting end tags that close nothing open or the wrong one."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        for name, count in Counter(names).items():
            if count > 1:
                self.errors.append(f"<{tag}> has the attribute {name!r} {count} times")
        node = Node(tag, {name: value or "" for name, value in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.current = self.current.parent

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.current.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.current.tag}>")
            open_tags = [self.current, *self.current.ancestors()]
            if not any(n.tag == tag for n in open_tags):
                return
            while self.current.tag != tag:
                self.current = self.current.parent
        self.current = self.current.parent

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.current.children.append(data)


def parse(html: str) -> tuple[Node, list[str]]:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    if builder.current is not builder.root:
        builder.errors.append(f"<{builder.current.tag}> is never closed")
    return builder.root, builder.errors


def problems(html: str) -> list[str]:
    """Every rule the page breaks, each said so that the fix is plain."""
    root, found = parse(html)
    nodes = list(root.walk())
    by_tag: dict[str, list[Node]] = {}
    for node in nodes:
        by_tag.setdefault(node.tag, []).append(node)
    ids = Counter(node.attrs["id"] for node in nodes if "id" in node.attrs)
    found += [f'id="{name}" is used {n} times' for name, n in ids.items() if n > 1]
    found += _document(by_tag)
    found += _headings(nodes)
    found += _references(nodes, ids)
    found += _labels(nodes)
    found += _ambiguous(nodes)
    for node in nodes:
        found += _rules_for(node)
    return found


def _document(by_tag: dict[str, list[Node]]) -> list[str]:
    found = []
    html = by_tag.get("html", [])
    if len(html) != 1 or not html[0].attrs.get("lang"):
        found.append("<html> needs a lang attribute")
    if len(by_tag.get("main", [])) != 1:
        found.append(f"the page needs one <main>, has {len(by_tag.get('main', []))}")
    for body in by_tag.get("body", []):
        found += [
            f"<{child.tag}> {child.text()[:40]!r} is in no landmark: put it in <header>, <main>, <aside> or <footer>"
            for child in body.children
            if isinstance(child, Node)
            and child.tag not in BODY_CHILDREN
            and "skip-link" not in child.classes()
            and child.attrs.get("role") not in ("status", "alert")
            and child.text()
        ]
    navs = by_tag.get("nav", [])
    if not navs:
        found.append("the page has no <nav>")
    if len(navs) > 1:
        found += [
            f"<nav> {n.text()[:40]!r} needs an aria-label: the page has several"
            for n in navs
            if not n.attrs.get("aria-label")
        ]
    return found


def _headings(nodes: list[Node]) -> list[str]:
    """One <h1>, first; no level skipped on the way down; each section heading heads something."""
    headings = [(int(m[1]), n) for n in nodes if (m := HEADING.fullmatch(n.tag))]
    found = []
    levels = [level for level, _ in headings]
    if levels.count(1) != 1:
        found.append(f"the page needs one <h1>, has {levels.count(1)}")
    previous = 0
    for level, node in headings:
        if level > 1 and not previous:
            found.append(f"<h{level}> {node.text()!r} comes before the <h1>")
        elif level > previous + 1:
            found.append(f"<h{level}> {node.text()!r} follows <h{previous}>: a level is skipped")
        if not node.text():
            found.append(f"<h{level}> is empty")
        previous = level
    # A section's heading (a card's <h3> names the card: nothing need follow it).
    found += [
        f"<h{level}> {node.text()!r} heads nothing"
        for level, node in headings
        if level <= 2 and not _heads_something(node, nodes, level)
    ]
    return found


def _heads_something(heading: Node, nodes: list[Node], level: int) -> bool:
    """Whether text or content comes after `heading` before the next heading of its level or above."""
    after = nodes[nodes.index(heading) + 1 :]
    inside = set(map(id, heading.walk()))
    for node in after:
        if id(node) in inside:
            continue
        if (m := HEADING.fullmatch(node.tag)) and int(m[1]) <= level:
            return False
        if node.tag in CONTENT or any(isinstance(c, str) for c in node.children):
            return True
    return False


def _references(nodes: list[Node], ids: Counter) -> list[str]:
    """Labels, descriptions and in-page links point at elements that exist."""
    found = []
    for node in nodes:
        targets = [node.attrs.get("for", "")] if node.tag == "label" else []
        targets += (
            node.attrs.get("aria-describedby", "").split() + node.attrs.get("aria-labelledby", "").split()
        )
        href = node.attrs.get("href", "")
        if node.tag == "a" and href.startswith("#") and len(href) > 1:
            targets.append(href[1:])
        found += [
            f"<{node.tag}> points at #{t}, which is not on the page" for t in targets if t and t not in ids
        ]
    return found


def _labels(nodes: list[Node]) -> list[str]:
    """Every control a person fills in has a label: <label for>, a <label> around it, or aria-label."""
    targets = {n.attrs.get("for") for n in nodes if n.tag == "label"}
    return [
        f"<{n.tag} name={n.attrs.get('name')!r}> has no label"
        for n in nodes
        if n.tag in {"input", "select", "textarea"}
        and n.attrs.get("type", "text") not in UNLABELLED_TYPES
        and not (n.attrs.get("aria-label") or n.attrs.get("aria-labelledby"))
        and n.attrs.get("id") not in targets
        and not any(a.tag == "label" for a in n.ancestors())
    ]


def _ambiguous(nodes: list[Node]) -> list[str]:
    """Labels and buttons that say the same for different products ("Quantity", "Remove" on
    every cart line): heard out of their row, they do not say which product they are for."""
    products: dict[tuple[str, str], set[str]] = {}
    for node in nodes:
        if node.tag in {"label", "button"}:
            form = next((a for a in node.ancestors() if a.tag == "form"), None)
            fields = (n for n in form.walk() if n.attrs.get("name") == "product") if form else ()
            products.setdefault((node.tag, node.name()), set()).update(
                n.attrs.get("value", "") for n in fields
            )
    return [
        f"<{tag}> {name!r} is the same for {len(ids)} products"
        for (tag, name), ids in products.items()
        if len(ids) > 1
    ]


def _rules_for(node: Node) -> list[str]:
    tag, attrs = node.tag, node.attrs
    found = []
    if tag in INTERACTIVE - {"label"} and any(
        a.tag in INTERACTIVE - {"label", "details"} for a in node.ancestors()
    ):
        found.append(f"<{tag}> {node.text()[:40]!r} is inside another link or control")
    if tag == "form" and any(a.tag == "form" for a in node.ancestors()):
        found.append("a <form> is inside another <form>")
    if tag == "img":
        alt = attrs.get("alt")
        if alt is None:
            found.append(f'<img src={attrs.get("src", "")!r}> needs an alt (alt="" when decorative)')
        elif re.search(r"\.(svg|png|jpe?g|webp|gif)\b|^(image|picture|photo)$", alt, re.I):
            found.append(f"<img> alt {alt!r} says nothing about the picture")
    if tag == "a":
        href = attrs.get("href")
        if href is None:
            found.append(f"<a> {node.text()[:40]!r} without href: use a <button> for an action")
        elif href == "#" or href.startswith("javascript:"):
            found.append(f'<a href="{href}"> {node.text()[:40]!r} goes nowhere: use a <button>')
        elif not node.hidden() and not node.name():
            found.append(f"the link to {href} has no text")
    if tag == "button" and not node.name():
        found.append("a <button> has no text")
    if "stars" in node.classes() and not node.hidden():
        found.append('the stars are read out as "black star" ten times: mark them aria-hidden="true"')
    if "data-rec-impression" in attrs and not any(
        "data-product-id" in n.attrs or "data-store-id" in n.attrs for n in node.walk() if n is not node
    ):
        found.append("a recommendation block shows no product or store")
    return found
