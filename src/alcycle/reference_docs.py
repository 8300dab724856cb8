"""The generated references in ``docs/``: parameters from the params template, strategies from the
registry, the pipeline from the stages' contracts.

The template ``templates/params.yaml`` (what ``alcycle init`` writes) is the one place
where a parameter's default and meaning are written; ``docs/parameters.md`` is rendered
from it so the two cannot drift (``tests/test_docs.py`` compares them). Regenerate with::

    python -m alcycle.reference_docs parameters > docs/parameters.md
    python -m alcycle.reference_docs strategies > docs/strategies.md
    python -m alcycle.reference_docs pipeline > docs/pipeline.md
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib import resources

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")
_COMMENT = re.compile(r"(?:^|\s)#\s?")
_PLACEHOLDER = re.compile(r"(?<!\$)\$[A-Za-z_]")

_PARAMETERS_INTRO = """\
# Parameters

`params.yaml` has one section per DVC stage (plus `seed` and `classes`), loaded into the
typed dataclasses of `src/alcycle/params.py`. An unknown or missing key, or a value of the
wrong type or outside its choices, stops every stage with the key's name.

This page is generated from `src/alcycle/templates/params.yaml`, the file `alcycle init`
writes, by `python -m alcycle.reference_docs parameters > docs/parameters.md`: a key's
meaning is its comment there. Edit the template, not this page. Defaults marked † are
written by `alcycle init` from your images (class folders or `--classes`, a size and
channel count suggested from a sample); the value shown is the shipped MNIST project's.
"""

_STRATEGIES_INTRO = """\
# Query strategies

`alcycle strategies` prints this table from the registry in
`src/alcycle/strategies/__init__.py`; this page is generated from it by
`python -m alcycle.reference_docs strategies > docs/strategies.md`. Set one with
`select.strategy` (and `select.cold_start` for cycle 0). A strategy's entry lists what it
reads; the stages produce that input only when the chosen strategy (or cold start) needs
it. Where that takes a training setting (`train.dropout` for BALD's MC-dropout samples,
`train.loss_prediction.fit` for learning_loss, `pretrain_vit.method` for GEAL), loading
`params.yaml` names it; a switch between strategies that need nothing new from the model
re-runs only `select`. Each row gives what the
strategy needs; what it picks, with its paper; and what it costs, for N items in the pool,
C classes, D embedding dimensions, b the budget, T MC-dropout passes and K knowledge
clusters per image.
"""

_PIPELINE_INTRO = """\
# The pipeline

Generated from each stage's contract and docstring (`src/alcycle/stages/<stage>.py`) and the
file descriptions in `src/alcycle/layout.py` by
`python -m alcycle.reference_docs pipeline > docs/pipeline.md`; `dvc.yaml`, the ignore
files and the files `alcycle commit` commits come from the same contracts
(`src/alcycle/pipeline.py`). Edit a stage's contract, not this page.
"""


@dataclass
class _Row:
    """One key of the template: its dotted name, default as written, and comments."""

    name: str
    default: str
    from_init: bool
    comment: str  # the comment on the key's own line
    detail: list[str] = field(default_factory=list)  # comment-only lines below it

    @property
    def meaning(self) -> str:
        detail = " ".join(self.detail)
        if not (self.comment and detail):
            return self.comment or detail
        # The key's comment is a phrase; wrapped lines below it either go on with it or add to it.
        joined = self.comment.endswith((";", ":", ",")) or detail.startswith("(")
        return f"{self.comment}{' ' if joined else '; '}{detail}"


def _template_rows() -> list[_Row]:
    """Every key of the params template in file order, comments attached to the key above."""
    from alcycle.scaffold import MNIST_CLASSES, render_params

    raw = resources.files("alcycle").joinpath("templates/params.yaml").read_text().splitlines()
    shown = render_params("mnist", "", MNIST_CLASSES, 28, 1, 0).splitlines()
    if len(raw) != len(shown):
        raise RuntimeError("a placeholder of templates/params.yaml renders to several lines")
    rows: list[_Row] = []
    parents: list[tuple[int, str]] = []  # (indent, key) of the sections around the current line
    for template_line, line in zip(raw, shown):
        match = _KEY.match(line)
        if match is None:
            comment = line.strip()
            if comment.startswith("#") and rows:  # a comment-only line continues the key above
                rows[-1].detail.append(comment.lstrip("#").strip())
            continue
        indent = len(match["indent"])
        parents = [(i, k) for i, k in parents if i < indent]
        value, comment = _split_comment(match["rest"])
        name = ".".join([k for _, k in parents] + [match["key"]])
        rows.append(_Row(name, value, bool(_PLACEHOLDER.search(template_line)), comment))
        parents.append((indent, match["key"]))
    return rows


def _split_comment(rest: str) -> tuple[str, str]:
    """``' 0   # seeds training'`` -> ``('0', 'seeds training')``; YAML needs a space before ``#``."""
    found = _COMMENT.search(rest)
    if found is None:
        return rest.strip(), ""
    return rest[:found.start()].strip(), rest[found.end():].strip()


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell: pipes escaped, and ``<``/``>`` outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def _table(rows: list[_Row], sections: set[str]) -> list[str]:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for row in rows:
        default = "" if row.name in sections else f"`{row.default}`" + (" †" if row.from_init else "")
        lines.append(f"| `{row.name}` | {_cell(default)} | {_cell(row.meaning)} |")
    return lines


def parameters_markdown() -> str:
    """``docs/parameters.md``: one table per top-level section of the params template."""
    rows = _template_rows()
    sections = {row.name for row in rows if not row.default}
    top = [row for row in rows if "." not in row.name and row.name not in sections]
    out = [_PARAMETERS_INTRO, "## Top level", "", *_table(top, sections), ""]
    for section in [row for row in rows if "." not in row.name and row.name in sections]:
        out += [f"## `{section.name}`", ""]
        if section.meaning:
            out += [section.meaning[:1].upper() + section.meaning[1:] + ".", ""]
        inside = [row for row in rows if row.name.startswith(section.name + ".")]
        out += [*_table(inside, sections), ""]
    return "\n".join(out)


def strategies_markdown() -> str:
    """``docs/strategies.md``: the registry's own table under a short introduction."""
    from alcycle.strategies import table

    return f"{_STRATEGIES_INTRO}\n{table()}\n"


def pipeline_markdown() -> str:
    """``docs/pipeline.md``: each stage's reads, parameters and writes; each file's meaning and keeper."""
    from alcycle.pipeline import stages, summary

    lines = [_PIPELINE_INTRO, "## Stages: files in → stage → files out", "",
             "| stage | what it does | reads | params | writes |", "|---|---|---|---|---|"]
    for stage in stages():
        reads = ["the dataset (`prepare.path`)"] * stage.reads_dataset + [f"`{d}`" for d in stage.deps]
        writes = ", ".join(f"`{out.path}`" for out in stage.outs)
        params = ", ".join(f"`{p}`" for p in stage.params)
        lines.append(f"| `{stage.name}` | {_cell(summary(stage.module))} | {', '.join(reads)} | {params} | {writes} |")
    lines += ["", "## Files", "", "git keeps what a cycle commits; DVC caches the rest, which git ignores.", "",
              "| file | holds | written by | kept by |", "|---|---|---|---|"]
    meaning = _layout_docs()
    for stage in stages():
        for out in stage.outs:
            keeper = "git" + (" (persist)" if out.persist else "") if out.git else "DVC cache"
            lines.append(f"| `{out.path}` | {_cell(meaning.get(out.path, ''))} | `{stage.name}` | {keeper} |")
    for path, writer in [("params.yaml", "you (`alcycle init` writes it)"),
                         ("data/annotations", "`alcycle import`, `alcycle label remove`, `alcycle oracle`")]:
        lines.append(f"| `{path}` | {_cell(meaning[path])} | {writer} | git |")
    return "\n".join(lines) + "\n"


def _layout_docs() -> dict[str, str]:
    """Each ``Layout`` path (posix, relative) -> its docstring on one line."""
    from alcycle.layout import Layout

    layout, docs = Layout(), {}
    for name, member in vars(Layout).items():
        if isinstance(member, property) and member.__doc__:
            docs[getattr(layout, name).as_posix()] = " ".join(member.__doc__.replace("``", "`").split())
    return docs


def main(argv: list[str]) -> int:
    """Print the reference named by ``argv[0]`` (``parameters``, ``strategies`` or ``pipeline``)."""
    pages = {"parameters": parameters_markdown, "strategies": strategies_markdown, "pipeline": pipeline_markdown}
    if len(argv) != 1 or argv[0] not in pages:
        print(f"usage: python -m alcycle.reference_docs {{{','.join(pages)}}}", file=sys.stderr)
        return 2
    sys.stdout.write(pages[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
