"""Reads the repository's Dockerfile into stages and instructions, so tests check (and replay) the
file itself rather than a copy of what it says.

Covers the syntax the Dockerfile uses: line continuations, comments, ``FROM ... AS``, ``ARG``
defaults, ``ENV k=v ...``, ``COPY [--from=..] src... dest``, ``RUN``, ``USER``, ``WORKDIR`` and the
exec (JSON) form of ``ENTRYPOINT``, ``CMD`` and ``HEALTHCHECK ... CMD``. Anything else in the exec
form's place (a shell-form command) is kept as a string so a test can refuse it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV pairs in order (later ones win); ``$NAME`` references are left as written."""
        values: dict[str, str] = {}
        for ins in self.all("ENV"):
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                values[key] = value
        return values

    def copies(self) -> list[tuple[str | None, list[str], str]]:
        """(from-stage or None, sources, destination) per COPY."""
        result = []
        for ins in self.all("COPY"):
            words = shlex.split(ins.args)
            source_stage = None
            while words and words[0].startswith("--"):
                flag = words.pop(0)
                if flag.startswith("--from="):
                    source_stage = flag.split("=", 1)[1]
            result.append((source_stage, words[:-1], words[-1]))
        return result


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; ValueError for the shell form."""
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not an exec-form array: {args}")
    return value


def logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments (and the syntax directive) may sit inside a continuation
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    args: dict[str, str] = {}
    for line in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
            continue
        stages[-1].instructions.append(Instruction(keyword, rest))
    return stages


def healthcheck_command(stage: Stage) -> list[str]:
    ins = stage.last("HEALTHCHECK")
    if ins is None:
        raise ValueError("no HEALTHCHECK")
    _, _, command = ins.args.partition(" CMD ")
    return exec_form(command.strip())
