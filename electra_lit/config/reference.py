"""The configuration reference, docs/configuration.md, generated from the schemas and conf/.

    python -m electra_lit.config.reference --write     # regenerate docs/configuration.md
    python -m electra_lit.config.reference             # print it
    python -m electra_lit.config.reference --missing   # keys without a meaning; exit 1 if any
    python -m electra_lit.config.reference --check     # exit 1 if docs/configuration.md is out of date

A typed key (electra_lit.config.schema and the components' config dataclasses) takes its type and
default from its field, and its meaning from the comment at the end of the field's line. The keys
of open nodes (trainer, callbacks, logger, tokenizer, objective, task, hydra) are Lightning's,
a class's or a plugin's: those that conf/ sets take their meaning from the comment after the value
in the YAML file, else the comment lines right above the key, else the same key's comment in
another file of the group, or anywhere. Each group option is listed with its file's leading
comment and the values it sets, read by PyYAML. tests/test_config_reference.py fails while a key
has no meaning or this file is out of date.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import re
import sys
import textwrap
import tokenize
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from importlib import resources
from itertools import groupby
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from omegaconf import OmegaConf
from yaml.nodes import MappingNode, Node, SequenceNode

from electra_lit.config.schema import SCHEMAS

CONFIG_PACKAGE = "electra_lit.conf"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGENERATE = "python -m electra_lit.config.reference --write"
ENTRY_POINTS = {  # config name -> the command that runs it, in the order the reference shows them
    "pretrain": "electra-pretrain",
    "finetune": "electra-finetune",
    "prepare_data": "electra-prepare-data",
    "train_tokenizer": "electra-tokenizer",
}
GROUP_SCHEMA = {"task": "finetune"}  # whose schema types a group's keys; any other group: pretrain's
DIRECTIVES = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")  # how Hydra builds a node
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")
_INTERPOLATION = re.compile(r"^\$\{(\.*[A-Za-z_][\w.]*)\}$")


# ------------------------------------------------------------------------- typed keys
@dataclass
class Key:
    """A typed key: a schema field at its dotted path."""

    path: str
    type: str  # as annotated; "open" for an Any node
    default: Any  # MISSING for a nested config or a required value without default
    doc: str
    where: str  # the field's source line, file:line


def field_docs(cls: type) -> dict[str, tuple[str, int]]:
    """The comment of each field of a dataclass (at the end of its line, or the comment lines right
    above it when the line would be too long) and its line in the source file."""
    docs: dict[str, tuple[str, int]] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        lines, start = inspect.getsourcelines(klass)
        source = textwrap.dedent("".join(lines))
        comments = {
            token.start[0]: token.string.lstrip("#").strip()
            for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT
        }
        source_lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                # the comment at the end of the field's line, else the comment lines right above it
                doc = next((comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments), "")
                above = node.lineno - 1
                while not doc and above >= 1 and source_lines[above - 1].lstrip().startswith("#"):
                    above -= 1
                if not doc:
                    doc = " ".join(comments[n] for n in range(above + 1, node.lineno))
                docs[node.target.id] = (doc, start + node.lineno - 1)
    return docs


def schema_keys(schema: type, prefix: str = "") -> list[Key]:
    """Every key of a schema, nested configs expanded after their own row, in field order."""
    hints, docs = get_type_hints(schema), field_docs(schema)
    where = _relative(Path(inspect.getsourcefile(schema)).resolve())
    keys = []
    for spec in fields(schema):
        if spec.name in DIRECTIVES:
            continue
        nested = hints[spec.name] if is_dataclass(hints[spec.name]) else None
        default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
        default = "???" if default is MISSING else default  # required: the config must give it
        doc, line = docs.get(spec.name, ("", 0))
        type_name = "open" if hints[spec.name] is Any else _type_name(spec.type)
        keys.append(Key(prefix + spec.name, type_name, MISSING if nested else default, doc, f"{where}:{line}"))
        if nested:
            keys += schema_keys(nested, f"{prefix}{spec.name}.")
    return keys


def _type_name(annotation: Any) -> str:
    """An annotation as written: a string under ``from __future__ import annotations``."""
    if isinstance(annotation, str):
        return annotation
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _relative(path: Path) -> str:
    root = Path(__file__).resolve().parents[2]
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


# ------------------------------------------------------------------------- conf/ files
@dataclass
class ConfFile:
    """One YAML file of conf/: its description, what it composes and the values it sets."""

    rel: str  # relative to conf/, e.g. "data/austen.yaml"
    group: str | None  # "data", "hydra/launcher"; None at the top of conf/
    description: list[str]  # the leading comment's lines
    defaults: list[str]  # its defaults list, as group=option
    values: dict[str, Any]  # dotted path -> value; a node with a _target_ as Target
    lines: dict[str, int]  # dotted path -> line
    comments: dict[str, str] = field(default_factory=dict)  # dotted path -> the file's own comment

    @property
    def name(self) -> str:
        return Path(self.rel).stem


@dataclass(frozen=True)
class Target:
    """A node Hydra builds: what its _target_ names."""

    name: str


def _flow(value: Any) -> str:
    """A value as compact YAML flow text."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _comment(text: str) -> str:
    text = text.strip()
    return text[1:].strip() if text.startswith("#") else ""


def yaml_comments(text: str, package: str) -> tuple[dict[str, str], dict[str, int]]:
    """Each key's own comment in a YAML text, by dotted path under ``package``, and its line: the
    comment after its value (continued by deeper-indented comment lines below it), else the comment
    lines right above it (not the file's leading comment)."""
    lines = text.splitlines()
    used: set[int] = set()
    comments: dict[str, str] = {}
    rows: dict[str, int] = {}

    def own(key: Node, value: Node) -> str:
        block = isinstance(value, (MappingNode, SequenceNode)) and not value.flow_style
        end = key.end_mark if block else value.end_mark
        rest = lines[end.line][end.column :].lstrip()
        inline = _comment(rest[1:] if block and rest.startswith(":") else rest)
        row = end.line + 1
        while (
            inline
            and not block
            and row < len(lines)
            and lines[row].strip().startswith("#")
            and len(lines[row]) - len(lines[row].lstrip()) > key.start_mark.column
        ):
            inline, row = f"{inline} {_comment(lines[row])}", row + 1
            used.add(row - 1)
        if inline:
            return inline
        top = key.start_mark.line
        while top > 0 and lines[top - 1].strip().startswith("#") and top - 1 not in used:
            top -= 1
        if top == 0:
            return ""  # the file's leading comment
        return " ".join(_comment(line) for line in lines[top : key.start_mark.line])

    def walk(node: MappingNode, path: str) -> None:
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else key.value
            comments[dotted], rows[dotted] = own(key, value), key.start_mark.line + 1
            if isinstance(value, MappingNode) and not value.flow_style:
                walk(value, dotted)

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, MappingNode):
        walk(root, package)
    return comments, rows


def _flatten(data: Any, path: str, rows: dict[str, int], out: dict[str, Any]) -> dict[str, Any]:
    """Values by dotted path, as deep as the file's block mappings go (``{a: 1}`` is one value);
    a node with a _target_ is also a value of its own."""
    if not isinstance(data, dict) or not data or (path and not any(f"{path}.{key}" in rows for key in data)):
        out[path] = data
        return out
    if "_target_" in data:
        out[path] = Target(str(data["_target_"]))
    for key, value in data.items():
        if key not in DIRECTIVES:
            _flatten(value, f"{path}.{key}" if path else str(key), rows, out)
    return out


def _defaults_entry(entry: Any) -> str:
    if isinstance(entry, dict):
        ((group, option),) = entry.items()
        return f"{group.lstrip('/')}={'null' if option is None else option}"
    return str(entry)


def read_conf(path: Path, rel: str) -> ConfFile:
    text = path.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.strip().startswith("#"):
            break
        header.append(line.strip()[1:].removeprefix(" "))  # indented lines stay indented: commands
    package_line = next((m[1] for line in header if (m := _PACKAGE.match(f"# {line}"))), None)
    group = str(Path(rel).parent) if Path(rel).parent != Path(".") else None
    package = (group or "").replace("/", ".") if package_line is None else package_line.replace("_global_", "")
    data = OmegaConf.to_container(OmegaConf.create(text), resolve=False) or {}  # 5e-4 as a float, unlike PyYAML
    defaults = [_defaults_entry(entry) for entry in data.pop("defaults", [])]
    comments, rows = yaml_comments(text, package)
    values = _flatten(data, package, rows, {}) if data else {}
    description = [line for line in header if not _PACKAGE.match(f"# {line}")]
    return ConfFile(rel, group, description, defaults, values, rows, comments)


class ConfTree:
    """conf/'s files, the schemas' keys, and each key's meaning."""

    def __init__(self, root: Path | None = None, schemas: dict[str, type] | None = None):
        self.root = root or Path(str(resources.files(CONFIG_PACKAGE)))
        self.files = {
            p.relative_to(self.root).as_posix(): read_conf(p, p.relative_to(self.root).as_posix())
            for p in sorted(self.root.rglob("*.yaml"))
        }
        self.schema_classes = schemas or SCHEMAS
        self.schemas = {name: schema_keys(schema) for name, schema in self.schema_classes.items()}

    def groups(self) -> dict[str, list[ConfFile]]:
        groups: dict[str, list[ConfFile]] = {}
        for conf in self.files.values():
            if conf.group:
                groups.setdefault(conf.group, []).append(conf)
        return dict(sorted(groups.items()))

    def typed(self, conf: ConfFile) -> dict[str, Key]:
        """The schema keys that a file's values are checked against."""
        entry = conf.name if conf.group is None else GROUP_SCHEMA.get(conf.group, "pretrain")
        return {key.path: key for key in self.schemas.get(entry, self.schemas.get("pretrain", []))}

    def meaning(self, path: str, conf: ConfFile) -> str:
        """A key's meaning where ``conf`` sets it (module docstring: where it comes from)."""
        own = conf.comments.get(path) or conf.comments.get(f"{path}._target_", "")
        typed = self.typed(conf).get(path)
        if own or typed:
            return own or typed.doc
        same_group = sorted(
            (c for c in self.files.values() if c.group == conf.group and c is not conf),
            key=lambda c: (c.name not in conf.defaults and not c.name.startswith("_"), c.rel),
        )
        for other in [*same_group, *self.files.values()]:
            if other.comments.get(path):
                return other.comments[path]
        value = conf.values.get(path)
        if isinstance(value, str) and (match := _INTERPOLATION.match(value)):
            return f"same as `{_absolute(match[1], path)}`"
        return ""

    def missing(self) -> list[str]:
        """Schema fields without a comment, files without a description, values without a meaning."""
        problems = [f"{key.where}: {key.path}" for keys in self.schemas.values() for key in keys if not key.doc]
        for conf in self.files.values():
            if not any(line.strip() for line in conf.description):
                problems.append(f"conf/{conf.rel}:1: no leading comment saying what the file is")
            problems += [
                f"conf/{conf.rel}:{conf.lines.get(path, 1)}: {path}"
                for path, value in conf.values.items()
                if not isinstance(value, Target) and not self.meaning(path, conf)
            ]
        return sorted(set(problems))


def _absolute(reference: str, path: str) -> str:
    """An interpolation's target as a dotted path: ${.name} is relative to the key's parent."""
    dots = len(reference) - len(reference.lstrip("."))
    return reference if not dots else ".".join([*path.split(".")[:-dots], reference[dots:]])


# ------------------------------------------------------------------------- Markdown
def _escape(text: str) -> str:
    """Markdown-safe table text: <, *, _ and | outside `code` spans escaped."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([<*\\])", r"\\\1", parts[i])
        parts[i] = re.sub(r"(?<![\w])_|_(?![\w])", r"\\_", parts[i])
    return "`".join(parts).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`` {text} ``".replace("|", "\\|") if "`" in text else f"`{text}`".replace("|", "\\|")


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _paragraphs(lines: list[str]) -> list[str]:
    """A leading comment as Markdown: prose joined, indented lines as a shell block."""
    out: list[str] = []
    for indented, chunk in groupby(lines, key=lambda line: line.startswith("  ")):
        chunk = [line.strip() for line in chunk]
        out += ["```bash", *chunk, "```", ""] if indented else [_escape(" ".join(chunk)), ""]
    return out


def _schema_table(keys: list[Key]) -> list[str]:
    rows = [
        f"| {_code(k.path)} | {_code(k.type)} | {_code(_flow(k.default)) if k.default is not MISSING else ''} "
        f"| {_escape(k.doc)} |"
        for k in keys
    ]
    return ["| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]


def _value_cell(value: Any) -> str:
    return f"implemented by {_code(value.name)}" if isinstance(value, Target) else _code(_flow(value))


def _values_table(tree: ConfTree, conf: ConfFile) -> list[str]:
    if not conf.values:
        return ["Sets no keys.", ""]
    rows = [
        f"| {_code(path)} | {_value_cell(value)} | {_escape(tree.meaning(path, conf))} |"
        for path, value in conf.values.items()
    ]
    return ["| key | value | meaning |", "|---|---|---|", *rows, ""]


def _file_section(tree: ConfTree, conf: ConfFile, heading: str) -> list[str]:
    out = [heading, "", f"`conf/{conf.rel}`", "", *_paragraphs(conf.description)]
    if conf.defaults:
        out += ["Composes: " + ", ".join(_code(entry) for entry in conf.defaults) + ".", ""]
    return out + _values_table(tree, conf)


def _chosen_by(tree: ConfTree, group: str) -> str:
    found = {}
    for name, command in ENTRY_POINTS.items():
        conf = tree.files.get(f"{name}.yaml")
        for entry in conf.defaults if conf else []:
            if entry.startswith(f"{group}="):
                found.setdefault(entry.split("=", 1)[1], []).append(command)
    return (
        "; ".join(f"{_code(option)} ({', '.join(where)})" for option, where in found.items())
        or "none: add it on the command line"
    )


def generate(tree: ConfTree | None = None) -> str:
    """docs/configuration.md's text."""
    tree = tree or ConfTree()
    headings = {
        name: f"{command} ({name}.yaml)" for name, command in ENTRY_POINTS.items() if f"{name}.yaml" in tree.files
    }
    groups = tree.groups()
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from the schemas and conf/; do not edit. -->",
        "",
        f"Generated by `{REGENERATE}`; do not edit. A typed key's type, default and meaning come from",
        "its schema field (`electra_lit/config/schema.py` and the config dataclasses next to each component);",
        "the keys of open nodes (`trainer`, `callbacks`, `logger`, `tokenizer`, `objective`, `task`, `hydra`)",
        "from the comments in `conf/`. Hydra refuses a key the schema lacks, or a value of the wrong type.",
        "",
        "Keys are written as you type them on the command line (`electra-pretrain data.max_seq_length=256`);",
        "an option of a group is picked with `group=option` (`electra-pretrain trainer=gpu`). `???` marks a",
        "value you must give; `${key}` takes the value of another key; `implemented by` names the class or",
        "function Hydra builds from a node (its `_target_`).",
        "",
        "Entry points: " + ", ".join(f"[{h}](#{_slug(h)})" for h in headings.values()),
        "",
        "Config groups: " + ", ".join(f"[{g}](#{_slug('Group: ' + g)})" for g in groups),
        "",
        "## Entry points",
        "",
    ]
    for name, heading in headings.items():
        schema = tree.schema_classes.get(name)
        out += _file_section(tree, tree.files[f"{name}.yaml"], f"### {heading}")
        if schema is not None:
            about = (inspect.getdoc(schema) or "").replace("``", "`")
            out += [f"Schema: `{schema.__module__}.{schema.__qualname__}`: {_escape(about)}", ""]
            out += _schema_table(tree.schemas.get(name, []))
    for conf in (c for c in tree.files.values() if c.group is None and c.name not in ENTRY_POINTS):
        out += _file_section(tree, conf, f"### {conf.name}.yaml")
    out += ["## Config groups", ""]
    for group, files in groups.items():
        options = [c.name for c in files if not c.name.startswith("_")]
        out += [
            f"### Group: {group}",
            "",
            f"Pick one with `{group}=OPTION`: " + ", ".join(map(_code, options)) + ".",
            "",
            f"Default: {_chosen_by(tree, group)}.",
            "",
        ]
        for conf in files:
            heading = (
                f"{group}: shared by every option ({conf.rel.split('/')[-1]})"
                if conf.name.startswith("_")
                else f"{group}={conf.name}"
            )
            out += _file_section(tree, conf, f"#### {heading}")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write",
        nargs="?",
        const=str(DOC_PATH),
        metavar="PATH",
        help=f"write the reference to PATH (default: {DOC_PATH}) instead of printing it",
    )
    parser.add_argument(
        "--missing",
        action="store_true",
        help="list the keys without a meaning and the files without a description; exit 1 if any",
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if {DOC_PATH.name} differs from a fresh generation"
    )
    args = parser.parse_args(argv)
    tree = ConfTree()
    if args.check:
        stale = not DOC_PATH.is_file() or DOC_PATH.read_text(encoding="utf-8") != generate(tree)
        print(
            f"{DOC_PATH} is out of date: run `{REGENERATE}`" if stale else f"{DOC_PATH} is up to date", file=sys.stderr
        )
        return 1 if stale else 0
    if args.missing:
        problems = tree.missing()
        print("\n".join(problems) or "every key has a meaning")
        return 1 if problems else 0
    text = generate(tree)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
