"""The catalogue: every installed estimator, task, encoder, dataset and suite, with its parameters.

It reads registered specs and never builds one, so it imports no torch. `mi-harness list` prints it
(as tables, JSON or Markdown); the docs site renders `markdown()` into its catalogue page.
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import annotated_types

from harness import registry
from harness.api import Params, PluginKind, SuiteSpec
from harness.errors import UserError

KINDS: dict[str, PluginKind] = {"estimators": "estimator", "tasks": "task", "encoders": "encoder",
                          "datasets": "dataset", "suites": "suite"}
BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="), (annotated_types.Lt, "lt", "<"),
          (annotated_types.Le, "le", "<="))
SUITE_SECTIONS = ("estimators", "tasks", "encoders", "datasets")


def kind_of(kind: str) -> PluginKind:
    """The registry's kind for a plural ("estimators", as on the command line) or a singular name."""
    if kind in KINDS:
        return KINDS[kind]
    if kind in KINDS.values():
        return typing.cast(PluginKind, kind)
    raise UserError(f"unknown kind {kind!r}; the kinds are {', '.join(KINDS)}.")


def plural(kind: PluginKind) -> str:
    return next(name for name, singular in KINDS.items() if singular == kind)


def entries(kind: str) -> list[dict[str, Any]]:
    """Every entry of one kind, by name: what `entry` gives for each."""
    singular = kind_of(kind)
    return [entry(singular, name) for name in sorted(registry.specs(singular))]


def everything() -> dict[str, list[dict[str, Any]]]:
    """The whole catalogue, keyed by plural kind."""
    return {name: entries(name) for name in KINDS}


def entry(kind: str, name: str) -> dict[str, Any]:
    """One entry's page: name, summary, the plugin providing it, citation, parameters, published numbers.

    A suite has no parameters; its page names its file, seeds and what it runs. An unknown name is a
    UserError that lists the valid ones.
    """
    singular = kind_of(kind)
    spec = registry.get(singular, name)
    page: dict[str, Any] = {"kind": singular, "name": name, "summary": spec.summary,
                            "plugin": registry.owner(singular, name), "cite": spec.cite}
    if isinstance(spec, SuiteSpec):
        return page | suite_contents(spec.path)
    return page | {"parameters": [parameter(spec.params, field) for field in spec.params.model_fields],
                   "published": {where: list(numbers) for where, numbers in spec.published.items()}}


def parameter(params: type[Params], name: str) -> dict[str, Any]:
    """One parameter: its type (with bounds), default (None when required), choices and description."""
    info = params.model_fields[name]
    required = info.is_required()
    bounds = [f"{symbol} {getattr(item, attribute)}" for item in info.metadata
              for kind, attribute, symbol in BOUNDS if isinstance(item, kind)]
    return {"name": name, "type": " ".join([type_name(info.annotation), ", ".join(bounds)]).strip(),
            "required": required, "default": None if required else info.get_default(call_default_factory=True),
            "choices": params.choices(name), "description": info.description or ""}


def type_name(annotation: Any) -> str:
    """'int', 'float | None', 'dict[str, Any]'; a Literal is named by its values' type (the choices are shown apart)."""
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(dict.fromkeys(type(value).__name__ for value in typing.get_args(annotation)))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def suite_contents(path: str) -> dict[str, Any]:
    """A suite file's seeds and, per section, the labels (or names) of what it runs, read without validating."""
    table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    contents: dict[str, Any] = {"file": path, "seeds": table.get("suite", {}).get("seeds", [])}
    for section in SUITE_SECTIONS:
        if items := table.get(section):
            contents[section] = list(dict.fromkeys(str(item.get("label", item.get("name", ""))) for item in items))
    return contents


def default_text(row: dict[str, Any]) -> str:
    return "required" if row["required"] else repr(row["default"])


# Markdown: GitHub tables, every plugin-written text escaped so that it shows literally. A suite's file
# is shown by its name alone: the page may be built on another machine than the one it is read on.

def markdown(kind: str | None = None, name: str | None = None) -> str:
    """The catalogue as Markdown: a section per kind (or one kind's section, or one entry's page)."""
    if name is not None:
        if kind is None:
            raise UserError("name an entry's kind too, e.g. markdown('estimators', 'infonce').")
        return _entry_markdown(entry(kind, name), level=1)
    kinds = [plural(kind_of(kind))] if kind else list(KINDS)
    return "\n".join(_section_markdown(plural_name) for plural_name in kinds)


def _section_markdown(plural_name: str) -> str:
    rows = entries(plural_name)
    heading = f"## {plural_name.capitalize()}\n\n{len(rows)} {plural_name if len(rows) != 1 else kind_of(plural_name)}.\n"
    overview = table(["name", "summary", "plugin"],
                     [[code(row["name"]), text(row["summary"]), code(row["plugin"])] for row in rows])
    pages = [_entry_markdown(row, level=3) for row in rows]
    return "\n".join([heading, overview, *pages])


def _entry_markdown(page: dict[str, Any], level: int) -> str:
    lines = [f"{'#' * level} {text(page['name'])}", "", text(page["summary"]) or "(no summary)", ""]
    facts = [f"- {page['kind']} from plugin {code(page['plugin'])}"]
    if page["cite"]:
        facts.append(f"- cite: {text(page['cite'])}")
    if "file" in page:
        facts.append(f"- file: {code(Path(page['file']).name)}")
        facts.append(f"- seeds: {text(', '.join(map(str, page['seeds']))) or 'none'}")
        facts += [f"- {section}: {text(', '.join(page[section]))}" for section in SUITE_SECTIONS if section in page]
    for where, (mean, std) in page.get("published", {}).items():
        facts.append(f"- published on {text(where)}: {mean} ± {std}")
    lines += [*facts, ""]
    if "parameters" in page:
        described = any(row["description"] for row in page["parameters"])
        lines.append(table(["parameter", "type", "default", "choices", *["description"] * described], [
            [code(row["name"]), text(row["type"]), "required" if row["required"] else code(repr(row["default"])),
             " ".join(code(repr(choice)) for choice in row["choices"]), *[text(row["description"])] * described]
            for row in page["parameters"]]) if page["parameters"] else "No parameters.\n")
    return "\n".join(lines)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub table of cells already escaped (see `text` and `code`)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text(value: str) -> str:
    """Text shown literally in Markdown, in a paragraph or a table cell: markup escaped, on one line.

    Backslash escapes work in GitHub's Markdown and in Python-Markdown (MkDocs) alike; '<', '>' and
    '&' become entities, and '{' is escaped too, which MkDocs' attr_list would otherwise take for attributes.
    """
    value = " ".join(str(value).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for character in "\\`*_[]{}|":
        value = value.replace(character, "\\" + character)
    value = re.sub(r"^([-+#])", r"\\\1", value)  # no list or heading where a line starts
    return re.sub(r"^(\d+)\.", r"\1\\.", value)


def code(value: str) -> str:
    """An inline code span; a value holding '|' or '`' is shown as escaped text instead, since GitHub and
    Python-Markdown disagree on a '|' inside a code span in a table."""
    value = " ".join(str(value).split())
    return text(value) if "|" in value or "`" in value else f"`{value}`"
