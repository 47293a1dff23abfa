"""The configuration reference, docs/configuration.md, generated from the comments in conf/.

    python -m electra_lit.config.reference --write     # regenerate docs/configuration.md
    python -m electra_lit.config.reference             # print it
    python -m electra_lit.config.reference --missing   # keys without a meaning, as FILE:LINE: KEY

The YAML files are the single source: a key's meaning is the comment written next to it, so the
reference cannot drift from the configs (tests/test_config_reference.py fails when a key has no
meaning or when docs/configuration.md differs from a fresh generation).

Where a key's meaning comes from, first found wins:

1. its inline comment (``mask_prob: 0.15  # share of ...``), continued by the comment lines right
   below it that are indented deeper than the key;
2. the comment lines directly above it;
3. the same key in a file this one composes in its group (``defaults: [_base]``);
4. for a value that is only an interpolation (``seed: ${seed}``): "same as `seed`";
5. the same key commented elsewhere: in its own group's files, in the entry points, anywhere.

A file's leading comment block describes the file itself (the group option or the entry point),
never its first key. Structure comes from PyYAML (a dependency of omegaconf) with line marks;
comments, which YAML parsers drop, are read from the lines around those marks.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

CONFIG_PACKAGE = "electra_lit.conf"
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
REGENERATE = "python -m electra_lit.config.reference --write"
# Entry-point configs, in the order the reference shows them, with the command that runs each.
ENTRY_POINTS = {
    "pretrain": "electra-pretrain",
    "finetune": "electra-finetune",
    "prepare_data": "electra-prepare-data",
    "train_tokenizer": "electra-tokenizer",
}
# Hydra's instantiation keys: they say how a node is built, so they are no keys needing a meaning.
DIRECTIVES = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
_PACKAGE_LINE = re.compile(r"^#\s*@package\s+(\S+)")
_INTERPOLATION = re.compile(r"^\$\{(\.*[A-Za-z_][\w.]*)\}$")


@dataclass
class Key:
    """One key of a conf file, at its dotted command-line path."""

    path: str
    file: str  # relative to conf/, e.g. "data/_base.yaml"
    line: int  # 1-based
    default: str | None  # the value as YAML flow text; None for a nested mapping
    comment: str = ""  # the file's own comment for this key
    target: str | None = None  # a mapping's _target_: what Hydra instantiates
    partial: bool = False
    meaning: str = ""  # the comment, or one found by the rules in the module docstring

    @property
    def is_leaf(self) -> bool:
        return self.default is not None


@dataclass
class ConfFile:
    """One YAML file of conf/: an entry point, a shared config, a group option or a base."""

    rel: str
    group: str | None  # "data", "hydra/launcher"; None for the files at the top of conf/
    package: str  # where its keys land, dotted; "" for the root
    description: list[str] = field(default_factory=list)  # the leading comment's lines
    defaults: list[tuple[str, str]] = field(default_factory=list)  # (entry as "group=option", comment)
    keys: list[Key] = field(default_factory=list)
    implementation: str | None = None  # the _target_ at the file's package root
    partial: bool = False
    implementation_note: str = ""  # the comment on that _target_ line

    @property
    def name(self) -> str:
        return Path(self.rel).stem

    def key(self, path: str) -> Key | None:
        return next((k for k in self.keys if k.path == path), None)


def _comment_text(line: str) -> str | None:
    """The text of a comment-only line (without "#" and one space), or None for other lines."""
    stripped = line.strip()
    if not stripped.startswith("#"):
        return None
    text = stripped[1:]
    return text[1:] if text.startswith(" ") else text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _trailing_comment(rest: str) -> str:
    rest = rest.strip()
    return rest[1:].strip() if rest.startswith("#") else ""


def _is_block_collection(node: Node) -> bool:
    return isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style


def render_value(node: Node, text: str) -> str:
    """A value as compact YAML flow text, scalars as written (5e-4 stays 5e-4, "0" keeps quotes)."""
    if isinstance(node, ScalarNode):
        source = text[node.start_mark.index : node.end_mark.index]
        return " ".join(source.split()) or "null"
    if isinstance(node, SequenceNode):
        return "[" + ", ".join(render_value(item, text) for item in node.value) + "]"
    pairs = (f"{render_value(k, text)}: {render_value(v, text)}" for k, v in node.value)
    return "{" + ", ".join(pairs) + "}"


class _FileParser:
    """Reads one file's keys, their own comments and its description."""

    def __init__(self, text: str, rel: str):
        self.text, self.rel = text, rel
        self.lines = text.splitlines()
        self.continued: set[int] = set()  # comment lines that continue an inline comment above
        self.header_end = 0
        while self.header_end < len(self.lines) and _comment_text(self.lines[self.header_end]) is not None:
            self.header_end += 1

    def description(self) -> list[str]:
        lines = [_comment_text(line) for line in self.lines[: self.header_end]]
        return [line for line in lines if not _PACKAGE_LINE.match("#" + line)]

    def package_directive(self) -> str | None:
        for line in self.lines[: self.header_end]:
            match = _PACKAGE_LINE.match(line.strip())
            if match:
                return match[1]
        return None

    def inline_comment(self, key: Node, value: Node) -> str:
        """The comment after a key's value, with the comment lines that continue it below."""
        if _is_block_collection(value):  # `name:  # comment`, the children on the lines below
            row = key.end_mark.line
            rest = self.lines[row][key.end_mark.column :].lstrip()
            return _trailing_comment(rest[1:] if rest.startswith(":") else rest)
        row = value.end_mark.line
        comment = _trailing_comment(self.lines[row][value.end_mark.column :])
        if comment:
            below, indent = row + 1, key.start_mark.column
            while below < len(self.lines) and (text := _comment_text(self.lines[below])) is not None:
                if _indent(self.lines[below]) <= indent:  # a comment above the next key
                    break
                comment += " " + text.strip()
                self.continued.add(below)
                below += 1
        return comment

    def comment_above(self, row: int) -> str:
        """The comment lines directly above a key's line, unless they describe the file or
        continue the inline comment of the key before."""
        top = row
        while top > 0 and _comment_text(self.lines[top - 1]) is not None:
            top -= 1
        if top == 0:  # the file's leading comment
            return ""
        return " ".join(_comment_text(self.lines[i]).strip() for i in range(top, row) if i not in self.continued)

    def parse(self, conf: ConfFile) -> None:
        root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        conf.description = self.description()
        if root is None:
            return
        if not isinstance(root, MappingNode):
            raise ValueError(f"conf/{self.rel}: the top level is not a mapping")
        self._walk(root, conf, conf.package, at_root=True)

    def _walk(
        self, mapping: MappingNode, conf: ConfFile, prefix: str, at_root: bool = False
    ) -> tuple[str | None, bool, str]:
        """Adds the mapping's keys under prefix. Returns what its Hydra directives say about the
        mapping itself: its _target_, whether it is _partial_, and the _target_ line's comment."""
        target, partial, target_comment = None, False, ""
        for key_node, value in mapping.value:
            name = key_node.value
            if at_root and name == "defaults":
                conf.defaults = self._defaults(value)
                continue
            if name in DIRECTIVES:
                if name == "_target_":
                    target, target_comment = render_value(value, self.text), self.inline_comment(key_node, value)
                partial = partial or (name == "_partial_" and render_value(value, self.text) == "true")
                continue
            path = f"{prefix}.{name}" if prefix else name
            line = key_node.start_mark.line + 1
            comment = self.inline_comment(key_node, value) or self.comment_above(key_node.start_mark.line)
            if isinstance(value, MappingNode) and not value.flow_style:
                entry = Key(path, self.rel, line, None, comment)
                conf.keys.append(entry)
                entry.target, entry.partial, about = self._walk(value, conf, path)
                entry.comment = entry.comment or about
            else:
                conf.keys.append(Key(path, self.rel, line, render_value(value, self.text), comment))
        if at_root:
            conf.implementation, conf.partial, conf.implementation_note = target, partial, target_comment
        return target, partial, target_comment

    def _defaults(self, node: Node) -> list[tuple[str, str]]:
        entries = []
        for item in node.value if isinstance(node, SequenceNode) else []:
            if isinstance(item, MappingNode) and len(item.value) == 1:
                (group, option), = item.value
                label = f"{group.value.replace(' /', ' ').lstrip('/')}={render_value(option, self.text)}"
            else:
                label = render_value(item, self.text)
            end = item.end_mark
            entries.append((label, "" if node.flow_style else _trailing_comment(self.lines[end.line][end.column :])))
        return entries


def _package(group: str | None, directive: str | None) -> str:
    group_package = group.replace("/", ".") if group else ""
    if directive is None:
        return group_package
    if directive == "_global_":
        return ""
    return directive.replace("_group_", group_package).strip(".")


def parse_file(path: Path, rel: str) -> ConfFile:
    """One conf file, its keys with their own comments (ConfTree resolves the meanings)."""
    parser = _FileParser(path.read_text(encoding="utf-8"), rel)
    group = str(Path(rel).parent) if Path(rel).parent != Path(".") else None
    conf = ConfFile(rel, group, _package(group, parser.package_directive()))
    parser.parse(conf)
    # An option of a global group that builds its group's node (objective: {_target_: ...}) has
    # that node as its implementation, like a file at the group's package.
    if group and conf.implementation is None:
        own = conf.key(group.replace("/", "."))
        if own is not None and own.target:
            conf.implementation, conf.partial, conf.implementation_note = own.target, own.partial, own.comment
            conf.keys.remove(own)
    return conf


def conf_root() -> Path:
    return Path(str(resources.files(CONFIG_PACKAGE)))


class ConfTree:
    """Every file of a conf/ folder, with each key's meaning resolved."""

    def __init__(self, root: Path | None = None):
        self.root = root or conf_root()
        self.files = {
            path.relative_to(self.root).as_posix(): parse_file(path, path.relative_to(self.root).as_posix())
            for path in sorted(self.root.rglob("*.yaml"))
        }
        for conf in self.files.values():
            for key in conf.keys:
                key.meaning = self._meaning(key, conf)

    # --- structure -----------------------------------------------------------------------
    def primaries(self) -> list[ConfFile]:
        """The files at the top of conf/: entry points first, in ENTRY_POINTS order."""
        top = [conf for conf in self.files.values() if conf.group is None]
        order = list(ENTRY_POINTS)
        return sorted(top, key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name))

    def groups(self) -> dict[str, list[ConfFile]]:
        groups: dict[str, list[ConfFile]] = {}
        for conf in self.files.values():
            if conf.group:
                groups.setdefault(conf.group, []).append(conf)
        return dict(sorted(groups.items()))

    def composed(self, conf: ConfFile) -> list[ConfFile]:
        """The files of conf's own folder that it composes through defaults, transitively."""
        found: list[ConfFile] = []
        pending = [conf]
        while pending:
            current = pending.pop()
            for label, _ in current.defaults:
                if "=" in label or label == "_self_":
                    continue
                folder = f"{current.group}/" if current.group else ""
                other = self.files.get(f"{folder}{label.split('@')[0]}.yaml")
                if other is not None and other is not conf and other not in found:
                    found.append(other)
                    pending.append(other)
        return found

    def is_base(self, conf: ConfFile) -> bool:
        """A base: named _x, or composed by every other option of its group (trainer/default)."""
        if conf.group is None:
            return False
        if conf.name.startswith("_"):
            return True
        others = [c for c in self.groups()[conf.group] if c is not conf and not c.name.startswith("_")]
        return bool(others) and all(conf in self.composed(c) for c in others)

    # --- meanings ------------------------------------------------------------------------
    def _candidates(self, path: str) -> list[ConfFile]:
        """Where to look for another comment of a key: its group's files (bases first), the
        entry points, then everything else."""
        head = path.split(".")[0]
        group_files = [c for c in self.files.values() if c.group == head]
        group_files.sort(key=lambda c: (not self.is_base(c), c.rel))
        rest = [c for c in self.files.values() if c not in group_files and c.group is not None]
        return group_files + self.primaries() + rest

    def _meaning(self, key: Key, conf: ConfFile) -> str:
        if key.comment:
            return key.comment
        for base in self.composed(conf):
            other = base.key(key.path)
            if other is not None and other.comment:
                return other.comment
        if key.default is not None and (match := _INTERPOLATION.match(key.default)):
            return f"same as `{_absolute(match[1], key.path)}`"
        for other_file in self._candidates(key.path):
            other = other_file.key(key.path) if other_file is not conf else None
            if other is not None and other.comment:
                return other.comment
        return ""

    def missing_meanings(self) -> list[Key]:
        """Keys with a value but no meaning by any rule: each needs a comment in its file."""
        return [key for conf in self.files.values() for key in conf.keys if key.is_leaf and not key.meaning]

    def missing_descriptions(self) -> list[ConfFile]:
        """Files without a leading comment saying what they are."""
        return [conf for conf in self.files.values() if not any(line.strip() for line in conf.description)]


def _absolute(reference: str, path: str) -> str:
    """An interpolation's target as a dotted path: ${.name} is relative to the key's parent."""
    dots = len(reference) - len(reference.lstrip("."))
    if not dots:
        return reference
    parent = path.split(".")[:-dots]
    return ".".join([*parent, reference[dots:]])


# --- Markdown ------------------------------------------------------------------------------
def _escape(text: str, cell: bool = False) -> str:
    """Markdown-safe prose: <, * and _ outside `code` spans escaped; | too inside table cells."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = re.sub(r"([<*\\])", r"\\\1", parts[i])
        parts[i] = re.sub(r"(?<![\w])_|_(?![\w])", r"\\_", parts[i])
    text = "`".join(parts)
    return text.replace("|", "\\|") if cell else text


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _description(lines: list[str]) -> list[str]:
    """A leading comment as Markdown: prose joined into paragraphs, indented lines as code."""
    out: list[str] = []
    prose: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if prose:
            out.extend([_escape(" ".join(prose)), ""])
            prose.clear()
        if code:
            out.extend(["```bash", *code, "```", ""])
            code.clear()

    for line in lines:
        if line.startswith("  "):
            if prose:
                flush()
            code.append(line.strip())
        elif not line.strip():
            flush()
        else:
            if code:
                flush()
            prose.append(line.strip())
    flush()
    return out


def _key_table(keys: list[Key]) -> list[str]:
    rows = []
    for key in keys:
        if key.target:
            default = f"implemented by {_code(key.target)}" + (" (partial)" if key.partial else "")
        elif key.is_leaf:
            default = _code(key.default)
        elif key.comment:
            default = ""
        else:
            continue  # a nesting level without a comment of its own: its keys have rows
        rows.append(f"| {_code(key.path)} | {default} | {_escape(key.meaning, cell=True)} |")
    if not rows:
        return ["Sets no keys.", ""]
    return ["| key | default | meaning |", "|---|---|---|", *rows, ""]


def _file_section(conf: ConfFile, heading: str, level: str, note: str = "") -> list[str]:
    out = [f"{level} {heading}", "", f"`conf/{conf.rel}`", ""]
    out += _description(conf.description)
    if note:
        out += [note, ""]
    if conf.implementation:
        partial = " (partial: called later with the remaining arguments)" if conf.partial else ""
        about = f": {_escape(conf.implementation_note)}" if conf.implementation_note else "."
        out += [f"Implementation: {_code(conf.implementation)}{partial}{about}", ""]
    if conf.defaults:
        out.append("Composes:")
        out.append("")
        for label, comment in conf.defaults:
            out.append(f"- {_code(label)}" + (f": {_escape(comment)}" if comment else ""))
        out.append("")
    out += _key_table(conf.keys)
    return out


def _chosen_by(tree: ConfTree, group: str) -> list[str]:
    """Which option of a group is picked by default, and where: entry points, other groups' options."""
    found: dict[str, list[str]] = {}
    for conf in [*tree.primaries(), *(c for c in tree.files.values() if c.group)]:
        for label, _ in conf.defaults:
            if label.startswith("override ") or "=" not in label:
                continue
            name, option = label.split("=", 1)
            if name == group:
                where = ENTRY_POINTS.get(conf.name, conf.name) if conf.group is None else f"{conf.group}={conf.name}"
                found.setdefault("none" if option == "null" else option, []).append(where)
    return [f"{option if option == 'none' else _code(option)} ({', '.join(where)})" for option, where in found.items()]


def generate(tree: ConfTree | None = None) -> str:
    """docs/configuration.md's text."""
    tree = tree or ConfTree()
    primaries, groups = tree.primaries(), tree.groups()
    primary_heading = {
        c.name: f"{ENTRY_POINTS[c.name]} ({c.name}.yaml)" if c.name in ENTRY_POINTS else f"{c.name}.yaml"
        for c in primaries
    }
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from the comments in conf/; do not edit. -->",
        "",
        f"Generated by `{REGENERATE}` from the comments in `conf/`; do not edit: change the comment",
        "in the YAML file and regenerate (tests/test_config_reference.py fails while this file is out of",
        "date, or while a key has no comment).",
        "",
        "Keys are written as you type them on the command line (`electra-pretrain data.batch_size=64`);",
        "an option of a group is picked with `group=option` (`electra-pretrain trainer=gpu`). `???` marks",
        "a value you must give; `${key}` takes the value of another key. `implemented by` names the class",
        "or function that Hydra builds from a node (its `_target_`).",
        "",
        "Entry points: " + ", ".join(f"[{heading}](#{_slug(heading)})" for heading in primary_heading.values()),
        "",
        "Config groups: " + ", ".join(f"[{g}](#{_slug('Group: ' + g)})" for g in groups),
        "",
        "## Entry points",
        "",
    ]
    for conf in primaries:
        users = [ENTRY_POINTS.get(c.name, c.name) for c in primaries if conf in tree.composed(c)]
        note = f"Composed by {', '.join(users)}." if users else ""
        out += _file_section(conf, primary_heading[conf.name], "###", note)
    out += ["## Config groups", ""]
    for group, files in groups.items():
        bases = [c for c in files if tree.is_base(c)]
        options = [c for c in files if not c.name.startswith("_")]
        out += [f"### Group: {group}", ""]
        out.append(f"Pick one with `{group}=OPTION`: " + ", ".join(_code(c.name) for c in options) + ".")
        chosen = _chosen_by(tree, group)
        out += ["", "Default: " + ("; ".join(chosen) if chosen else "none: add it on the command line") + ".", ""]
        for base in bases:
            users = [c.name for c in options if base in tree.composed(c) and c is not base]
            selectable = f"; also an option itself: `{group}={base.name}`" if not base.name.startswith("_") else ""
            note = f"Composed by {', '.join(_code(u) for u in users)}{selectable}."
            out += _file_section(base, f"{group}: shared by every option ({base.name}.yaml)", "####", note)
        for conf in options:
            if conf not in bases:
                out += _file_section(conf, f"{group}={conf.name}", "####")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", nargs="?", const=str(DOC_PATH), metavar="PATH",
                        help=f"write the reference to PATH (default: {DOC_PATH}) instead of printing it")
    parser.add_argument("--missing", action="store_true",
                        help="list the keys without a meaning and the files without a description; exit 1 if any")
    args = parser.parse_args(argv)
    tree = ConfTree()
    if args.missing:
        problems = [f"conf/{k.file}:{k.line}: {k.path}" for k in tree.missing_meanings()]
        problems += [f"conf/{c.rel}:1: no leading comment describing the file" for c in tree.missing_descriptions()]
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
