"""Diffs: where a session's patches are, and which files a unified diff touches.

Change sets are cumulative: the patch of a session is the *last* non-empty ``gitPatch.unidiffPatch``, looking
at the activities' artifacts first (oldest to newest) and then at ``session.outputs``
(:func:`change_sets`, :func:`last_patch`). :func:`patch_files` reads the file names of a git or plain
unified diff, C-quoted paths included. Pure functions; nothing here raises on API data.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_jules.jsontext import as_dict, dicts, utf8

__all__ = ["change_sets", "last_patch", "patch_files"]

Json = dict[str, Any]

# ------------------------------------------------------------------------------ patches of a session


def change_sets(session: Json, activities: list[Json]) -> list[Json]:
    """Every change set, in precedence order: activity artifacts oldest first, then session outputs."""
    found: list[Json] = []
    for activity in activities:
        for artifact in dicts(activity.get("artifacts")):
            change_set = artifact.get("changeSet")
            if isinstance(change_set, dict):
                found.append(change_set)
    for output in dicts(session.get("outputs")):
        change_set = output.get("changeSet")
        if isinstance(change_set, dict):
            found.append(change_set)
    return found


def _non_empty_patch(git_patch: Json) -> str | None:
    patch = git_patch.get("unidiffPatch")
    return patch if isinstance(patch, str) and patch.strip() else None


def last_patch(sets: list[Json]) -> tuple[str | None, Json | None]:
    """The last non-empty patch among ``sets`` (see :func:`change_sets`) and the change set holding it."""
    for change_set in reversed(sets):
        patch = _non_empty_patch(as_dict(change_set.get("gitPatch")))
        if patch is not None:
            return patch, change_set
    return None, None


# ------------------------------------------------------------------------------------ diff file names

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(path: str) -> str:
    """Undo git's C-style quoting of a path (``"a/t\\303\\251st"``)."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
        out.extend(utf8(ch))
        i += 1
    return out.decode("utf-8", errors="replace")


def _header_path(raw: str, prefix: str) -> str | None:
    """Path of a ``---``/``+++`` line (``None`` for /dev/null), without the ``a/``/``b/`` prefix."""
    raw = raw.split("\t", 1)[0] if not raw.startswith('"') else raw
    path = _unquote(raw.strip())
    if not path or path == "/dev/null":
        return None
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else path


def _git_header_paths(rest: str) -> list[str]:
    """Paths of ``diff --git a/X b/Y`` (``rest`` is ``a/X b/Y``); empty when ambiguous."""
    if rest.startswith('"'):
        m = re.match(r'^("(?:[^"\\]|\\.)*")\s+(.+)$', rest)
        if not m:
            return []
        first, second = _unquote(m.group(1)), _unquote(m.group(2).strip())
    elif rest.endswith('"'):
        m = re.match(r'^(\S+)\s+("(?:[^"\\]|\\.)*")$', rest)
        if not m:
            return []
        first, second = m.group(1), _unquote(m.group(2))
    else:
        half = (len(rest) - 1) // 2
        if len(rest) % 2 == 1 and rest[half] == " " and rest[2:half] == rest[half + 3 :]:
            first, second = rest[:half], rest[half + 1 :]  # a/P b/P, spaces in P allowed
        elif rest.count(" b/") == 1:
            first, second = rest.split(" b/")
            second = "b/" + second
        else:
            return []
    paths = []
    for path, prefix in ((first, "a/"), (second, "b/")):
        if path.startswith(prefix) and len(path) > len(prefix):
            paths.append(path[len(prefix) :])
    return paths


def patch_files(patch: str) -> list[str]:
    """Sorted unique file paths touched by a unified diff (git or plain).

    Uses ``diff --git`` headers, ``rename``/``copy`` lines and the ``---``/``+++`` file headers outside
    hunks (a removed line ``-- x`` inside a hunk is not a header); ``/dev/null`` is skipped, so added and
    deleted files appear once under their real path. A rename lists both the old and the new path.
    """
    files: set[str] = set()
    old_left = new_left = 0
    for raw_line in patch.split("\n"):
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag in (" ", ""):
                old_left, new_left = old_left - 1, new_left - 1
                continue
            if tag == "-":
                old_left -= 1
                continue
            if tag == "+":
                new_left -= 1
                continue
            if tag == "\\":
                continue
            old_left = new_left = 0  # malformed counts: leave the hunk
        if line.startswith("diff --git "):
            files.update(_git_header_paths(line[len("diff --git ") :]))
        elif line.startswith("--- "):
            path = _header_path(line[4:], "a/")
            if path:
                files.add(path)
        elif line.startswith("+++ "):
            path = _header_path(line[4:], "b/")
            if path:
                files.add(path)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            path = _unquote(line.split(" ", 2)[2].strip())
            if path:
                files.add(path)
        elif line.startswith("@@"):
            m = _HUNK.match(line)
            if m:
                old_left = int(m.group(1)) if m.group(1) is not None else 1
                new_left = int(m.group(2)) if m.group(2) is not None else 1
    return sorted(files)
