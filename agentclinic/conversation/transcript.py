"""Transcripts of a conversation: read from a file (JSON or the TUI's Markdown), built from an episode record,
and written as Markdown.

JSON: a list of ``{"role": "clinician" | "patient" | "relative" | "interpreter", "text": ...}`` ("doctor"
and "learner" mean the clinician). Markdown: one utterance per line, ``**Clinician:** text`` /
``**Patient:** text``; a line that starts no utterance continues the previous one; lines before the first
utterance are ignored, and so is everything after a line ``---`` that follows the transcript (the
feedback section of an export).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from agentclinic.errors import ScenarioError
from agentclinic.runs.record import EpisodeRecord

Line = tuple[str, str, "int | None"]  # (role, text, the learner's turn for clinician lines)
ROLES = {"clinician": "clinician", "doctor": "clinician", "learner": "clinician", "student": "clinician",
         "patient": "patient", "relative": "relative", "interpreter": "interpreter"}
LABELS = {"clinician": "Clinician", "patient": "Patient", "relative": "Relative", "interpreter": "Interpreter"}
MAX_TRANSCRIPT_BYTES = 1_000_000
MAX_UTTERANCES = 1000
_MARKDOWN = re.compile(r"^\s*\*\*\s*([A-Za-z]+)\s*:?\s*\*\*\s*:?\s*(.*)$")
_OBSERVATION = re.compile(rf"^({'|'.join(label for role, label in LABELS.items() if role != 'clinician')})\s*:\s*",
                          re.I)  # the person's reply in a clinic observation


def read_transcript(path: str | Path) -> list[Line]:
    """The utterances of a transcript file (JSON if it starts with '[' or '{', else Markdown); a ``ScenarioError``
    naming the file and the utterance for anything malformed."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
            raise ScenarioError(f"over {MAX_TRANSCRIPT_BYTES:,} bytes", path=path, code="transcript")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the transcript: {exc.strerror or exc}", path=path, code="transcript") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text: {exc.reason}", path=path, code="transcript") from exc
    return parse_transcript(text, path)


def parse_transcript(text: str, path: str | Path | None = None) -> list[Line]:
    lines = _json(text, path) if text.lstrip().startswith(("[", "{")) else _markdown(text, path)
    if not any(role == "clinician" for role, _ in lines):
        raise ScenarioError("no clinician utterance: nothing to grade", path=path, code="transcript")
    if len(lines) > MAX_UTTERANCES:
        raise ScenarioError(f"{len(lines)} utterances, over the limit of {MAX_UTTERANCES}", path=path,
                            code="transcript")
    return _numbered(lines)


def _json(text: str, path) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno, code="transcript") from exc
    if not isinstance(data, list):
        raise ScenarioError("expected a JSON list of {\"role\", \"text\"} objects", path=path, code="transcript")
    out = []
    for i, entry in enumerate(data):
        where = f"utterance {i}"
        if not isinstance(entry, dict) or set(entry) - {"role", "text", "turn"}:
            raise ScenarioError("expected an object with keys 'role' and 'text'", path=path, field=where,
                                code="transcript")
        role, said = entry.get("role"), entry.get("text")
        if not isinstance(role, str) or role.strip().lower() not in ROLES:
            raise ScenarioError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}", path=path,
                                field=f"{where}.role", code="transcript")
        if not isinstance(said, str):
            raise ScenarioError("'text' must be a string", path=path, field=f"{where}.text", code="transcript")
        out.append((ROLES[role.strip().lower()], said.strip()))
    return out


def _markdown(text: str, path) -> list[tuple[str, str]]:
    out: list[list[str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip() == "---" and out:
            break
        match = _MARKDOWN.match(raw)
        if match:
            role = match.group(1).lower()
            if role not in ROLES:
                raise ScenarioError(f"unknown speaker **{match.group(1)}:**; expected one of: "
                                    f"{', '.join(LABELS.values())}", path=path, line=number, code="transcript")
            out.append([ROLES[role], match.group(2).strip()])
        elif out and raw.strip() and not raw.lstrip().startswith("#"):
            out[-1][1] = f"{out[-1][1]} {raw.strip()}".strip()
    return [(role, said) for role, said in out]


def _numbered(lines: list[tuple[str, str]]) -> list[Line]:
    out, turn = [], 0
    for role, said in lines:
        if role == "clinician":
            turn += 1
            out.append((role, said, turn))
        else:
            out.append((role, said, None))
    return out


def record_lines(record: EpisodeRecord) -> list[Line]:
    """The conversation in an episode record: each learner utterance (an ``ask``) and the reply to it."""
    out: list[Line] = []
    for event in record.events:
        if not event.action or event.action.get("type") != "ask":
            continue
        out.append(("clinician", str(event.action.get("text") or ""), event.turn))
        label = _OBSERVATION.match(event.observation or "")
        if label:
            reply = event.observation[label.end():].split("\nThe consultation is over:")[0].strip()
            out.append((label.group(1).lower(), reply, None))
    return out


def transcript_markdown(record: EpisodeRecord, title: str | None = None) -> str:
    """The record's conversation in the Markdown that ``agentclinic grade`` reads."""
    head = [f"# {title}", ""] if title else []
    return "\n".join([*head, *(f"**{LABELS[role]}:** {text}" for role, text, _ in record_lines(record))]) + "\n"
