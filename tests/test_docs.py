"""The user documentation: every relative link resolves, and the generated references match their sources."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from alcycle.params import Params
from alcycle.reference_docs import parameters_markdown, pipeline_markdown, strategies_markdown

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def broken_links(markdown: Path) -> list[str]:
    """The relative link and image targets in ``markdown`` that name no existing file."""
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        path = target.split("#", 1)[0]
        if not (markdown.parent / path).exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("markdown", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(markdown):
    assert broken_links(markdown) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("![ok](there.png) [gone](missing.md#part) [web](https://example.org) [top](#top)\n"
                    "```\n[in code](not-a-link.md)\n```\n")
    assert broken_links(page) == ["missing.md#part"]


def test_the_parameter_reference_is_generated():
    """Regenerate with ``python -m alcycle.reference_docs parameters > docs/parameters.md``."""
    assert (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8") == parameters_markdown()


def _dotted_fields(cls: type, prefix: str = "") -> list[str]:
    names = []
    for field, hint in typing.get_type_hints(cls).items():
        names.append(prefix + field)
        if dataclasses.is_dataclass(hint):
            names += _dotted_fields(hint, f"{prefix}{field}.")
    return names


def test_the_parameter_reference_names_every_field():
    text = parameters_markdown()
    # a top-level section is a heading, every other field a row of its section's table
    missing = [name for name in _dotted_fields(Params)
               if f"| `{name}` |" not in text and f"\n## `{name}`\n" not in text]
    assert missing == []


def test_the_strategy_reference_is_the_registry_table():
    """Regenerate with ``python -m alcycle.reference_docs strategies > docs/strategies.md``."""
    from alcycle.strategies import table

    text = (ROOT / "docs" / "strategies.md").read_text(encoding="utf-8")
    assert text == strategies_markdown()
    assert table() in text


def test_the_pipeline_reference_is_generated_from_the_contracts():
    """Regenerate with ``python -m alcycle.reference_docs pipeline > docs/pipeline.md``."""
    from alcycle.pipeline import stages

    text = (ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    assert text == pipeline_markdown()
    for stage in stages():
        assert f"| `{stage.name}` |" in text
        for out in stage.outs:
            assert f"| `{out.path}` |" in text
