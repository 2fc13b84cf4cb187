"""Media artifacts: the screenshots (and other images or videos) Jules attaches to a session's activities,
e.g. to a "Frontend verification" progress update, as ``{"media": {"data": <base64>, "mimeType": ...}}``.

:func:`collect_media` finds them, decodes them and hands the bytes to a writer (the follower's writes them
under ``artifacts_path``, as large patches are); it returns the result's ``media`` entries
(``{activity_id, mime_type, path, bytes}``, :data:`MEDIA_KEYS`) and how many were dropped.
:func:`media_lines` lists them in Markdown for the change review form. Pure functions (no Airflow, no I/O
besides the writer they are given); nothing here raises on API data.

Every byte from the network is hostile:

* the size is computed from the length of the base64 text and checked against the caps **before** it is
  decoded; the text is decoded strictly (standard alphabet, padding, nothing else: no whitespace, no
  URL-safe alphabet) and must re-encode to exactly itself. Anything else is skipped with a warning;
* the file name is never taken from the network: it is ``<activity id>-<n>.<extension>``, the activity id
  only when it is 1 to 64 letters, digits, ``-`` or ``_`` (else a hash of it, or of the data when the
  activity has no id), ``n`` the artifact's
  position among the activity's media (0, 1, ...), so the same artifact gets the same name on every
  retry or resume and is written once;
* the extension comes from the declared type through :data:`EXTENSIONS` and only when the bytes start
  with that format's signature; any other file is ``.bin``. The declared type is kept (lowercased,
  without parameters) only when it looks like a media type, else it reads ``application/octet-stream``.

Caps (:class:`MediaCaps`, an argument of :func:`collect_media`; defaults below): a file over
:data:`DEFAULT_MAX_MEDIA_BYTES` decoded bytes is skipped; the files of one session are kept newest first
while their total stays within :data:`DEFAULT_MAX_SESSION_MEDIA_BYTES` and their number within
:data:`DEFAULT_MAX_MEDIA_FILES` (the result goes to XCom: its ``media`` list stays small). Whatever is not
written, for any reason (no writer, that is no ``artifacts_path``; no, invalid or empty base64; over a
cap), counts in ``media_dropped``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_jules.jsontext import dicts

__all__ = [
    "DEFAULT_MAX_MEDIA_BYTES",
    "DEFAULT_MAX_MEDIA_FILES",
    "DEFAULT_MAX_SESSION_MEDIA_BYTES",
    "EXTENSIONS",
    "MEDIA_KEYS",
    "MediaArtifact",
    "MediaCaps",
    "collect_media",
    "decoded_size",
    "extension_for",
    "find_media",
    "media_lines",
    "media_type",
]

Json = dict[str, Any]

log = logging.getLogger("airflow_provider_jules.results")

#: A media file larger than this (decoded) is skipped: 10 MiB, well above a page screenshot.
DEFAULT_MAX_MEDIA_BYTES = 10 * 1024 * 1024
#: At most this many decoded bytes of media are written for one session: 50 MiB.
DEFAULT_MAX_SESSION_MEDIA_BYTES = 50 * 1024 * 1024
#: At most this many media files are written (and listed in the result) for one session.
DEFAULT_MAX_MEDIA_FILES = 20
#: The keys of each entry of the result's ``media`` list.
MEDIA_KEYS = ("activity_id", "mime_type", "path", "bytes")
#: The file extension of each media type this provider names; any other type is written as ``.bin``.
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",  # not a registered type, but seen in the wild
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
}
UNKNOWN_EXTENSION = ".bin"
OCTET_STREAM = "application/octet-stream"
#: Image types the change review form may show inline (when the written path is an https URL).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"})
#: The media listed in a form; the result lists at most ``max_media_files`` anyway.
MAX_LISTED = 20

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}/[a-z0-9][a-z0-9._+-]{0,63}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# A URL the form may show as a link: https, and none of the characters Markdown would read.
_LINKABLE = re.compile(r"https://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")


def _signature(extension: str, data: bytes) -> bool:
    """Whether ``data`` starts like a file of that extension (magic numbers)."""
    if extension == ".png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if extension == ".jpg":
        return data.startswith(b"\xff\xd8\xff")
    if extension == ".gif":
        return data[:6] in (b"GIF87a", b"GIF89a")
    if extension == ".webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if extension == ".mp4":
        return data[4:8] == b"ftyp"
    return False


# ------------------------------------------------------------------------------------------ reading


def media_type(value: object) -> str:
    """The declared type, lowercased and without parameters, when it looks like ``type/subtype``; else
    ``application/octet-stream``."""
    if not isinstance(value, str):
        return OCTET_STREAM
    base = value.split(";", 1)[0].strip().lower()
    return base if _MEDIA_TYPE.fullmatch(base) else OCTET_STREAM


def extension_for(mime_type: str, data: bytes) -> str:
    """The extension of :data:`EXTENSIONS` for ``mime_type`` when ``data`` carries that format's
    signature; ``.bin`` otherwise."""
    extension = EXTENSIONS.get(mime_type)
    return extension if extension is not None and _signature(extension, data) else UNKNOWN_EXTENSION


def decoded_size(data: str) -> int | None:
    """The number of bytes ``data`` decodes to, from its length alone (nothing is decoded); None when the
    length or the padding cannot be strict base64."""
    if len(data) % 4:
        return None
    padding = len(data) - len(data.rstrip("="))
    if padding > 2:
        return None
    return len(data) // 4 * 3 - padding


def _decode(data: str) -> bytes | None:
    """The bytes of strict, canonical base64 text, or None."""
    if not data.isascii() or not _BASE64.fullmatch(data):
        return None
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Canonical: unused bits of the last group are zero, so the bytes encode back to the same text.
    return decoded if base64.b64encode(decoded).decode("ascii") == data else None


@dataclass(frozen=True)
class MediaArtifact:
    """One ``media`` artifact as found in an activity, not decoded.

    ``activity_id`` is the activity's id when it is safe in a file name (else None); ``stem`` is the file
    name without its extension; ``data`` is the artifact's ``data`` field as sent (base64 when well formed).
    """

    activity_id: str | None
    stem: str
    mime_type: str
    data: object


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:24]


def find_media(activities: Iterable[Json]) -> list[MediaArtifact]:
    """The media artifacts of ``activities`` in their order, the same artifact (same file name) once."""
    found: list[MediaArtifact] = []
    seen: set[str] = set()
    for activity in activities:
        raw_id = activity.get("id")
        safe_id = raw_id if isinstance(raw_id, str) and _SAFE_ID.fullmatch(raw_id) else None
        position = 0
        for artifact in dicts(activity.get("artifacts")):
            media = artifact.get("media")
            if not isinstance(media, dict):
                continue
            data = media.get("data")
            if safe_id is not None:
                base = safe_id
            elif isinstance(raw_id, str) and raw_id:
                base = "id-" + _digest(raw_id)
            else:  # no id at all: named by its content, which is as stable
                base = "media-" + _digest(data if isinstance(data, str) else "")
            stem = f"{base}-{position}"
            position += 1
            if stem in seen:  # the same activity twice (e.g. read over two pages)
                continue
            seen.add(stem)
            found.append(MediaArtifact(safe_id, stem, media_type(media.get("mimeType")), data))
    return found


@dataclass(frozen=True)
class MediaCaps:
    """The size caps of a session's media (defaults: the ``DEFAULT_MAX_*`` constants above).

    ``max_file_bytes``: a larger file (decoded) is skipped; ``max_session_bytes`` and ``max_files``: the
    files of one session are kept newest first while their total and their number stay within these.
    A negative or non-integer cap is a ``ValueError``.
    """

    max_file_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    max_session_bytes: int = DEFAULT_MAX_SESSION_MEDIA_BYTES
    max_files: int = DEFAULT_MAX_MEDIA_FILES

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_session_bytes", "max_files"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    def refusal(self, artifact: MediaArtifact, kept: int, total: int) -> str | None:
        """Why ``artifact`` is not written, given ``kept`` files of ``total`` bytes already written (its
        size computed from the base64 length, nothing decoded); None when it may be decoded."""
        if not isinstance(artifact.data, str):
            return "it has no base64 data"
        size = decoded_size(artifact.data)
        if size is None:
            return "its data is not valid base64"
        if size == 0:
            return "it is empty"
        if size > self.max_file_bytes:
            return f"it has {size:,} bytes, over the cap of {self.max_file_bytes:,} bytes per file"
        if kept >= self.max_files:
            return f"the session already has {self.max_files} media files written"
        if total + size > self.max_session_bytes:
            return (
                f"its {size:,} bytes would take the session over its cap of {self.max_session_bytes:,} bytes"
            )
        return None


def collect_media(
    activities: Iterable[Json], write: Callable[[str, bytes], str] | None, caps: MediaCaps | None = None
) -> tuple[list[Json], int]:
    """The ``media`` entries of the written files (oldest first) and the number of media dropped.

    ``write(file_name, data)`` stores one file and returns its path (a non-empty string); it is called only
    for a file that passed every check, newest first until a session cap is reached. Its own errors
    propagate (like the patch writer's). Without ``write`` nothing is decoded and every media artifact
    counts as dropped.
    """
    caps = caps if caps is not None else MediaCaps()
    found = find_media(activities)
    if write is None:
        return [], len(found)
    kept: list[Json] = []
    dropped = total = 0
    for artifact in reversed(found):  # newest first: the latest screenshots are what a reviewer wants
        why = caps.refusal(artifact, len(kept), total)
        decoded = _decode(artifact.data) if why is None and isinstance(artifact.data, str) else None
        if decoded is None:
            dropped += 1
            why = why or "its data is not valid base64"
            log.warning("Skipping the media %s (%s): %s.", artifact.stem, artifact.mime_type, why)
            continue
        extension = extension_for(artifact.mime_type, decoded)
        if extension == UNKNOWN_EXTENSION and artifact.mime_type in EXTENSIONS:
            log.warning(
                "The media %s says %s but its bytes are not one: written as %s.",
                artifact.stem,
                artifact.mime_type,
                UNKNOWN_EXTENSION,
            )
        path = write(artifact.stem + extension, decoded)
        if not isinstance(path, str) or not path:
            raise TypeError(f"the media writer must return the path of the stored file, got {path!r}")
        total += len(decoded)
        kept.append(
            {
                "activity_id": artifact.activity_id,
                "mime_type": artifact.mime_type,
                "path": path,
                "bytes": len(decoded),
            }
        )
    kept.reverse()
    return kept, dropped


# ------------------------------------------------------------------------------------------ the form


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def media_lines(result: Json) -> list[str]:
    """Markdown lines listing the result's ``media`` (and ``media_dropped``) for a review form; ``[]``
    when the session has none.

    Airflow renders a form's body with react-markdown, without raw HTML: a link or an image is shown only
    for ``http(s)`` URLs (other schemes are blanked). An object storage path (``file://``, ``s3://``, ...)
    is not a browser URL, so it is listed as code to copy; a path that is an ``https`` URL is a link, and
    an image behind it is shown inline (Airflow caps its width). No base64 ever reaches the form.
    """
    media = [m for m in result.get("media") or [] if isinstance(m, dict)]
    dropped = _count(result.get("media_dropped"))
    if not media and not dropped:
        return []
    lines = [f"\n**Screenshots and other media from Jules ({len(media)} kept):**\n"]
    for number, item in enumerate(media[:MAX_LISTED], start=1):
        path = str(item.get("path") or "")
        mime = media_type(item.get("mime_type"))
        size = _count(item.get("bytes"))
        if _LINKABLE.fullmatch(path):
            lines.append(f"- [{_code(path)}]({path}) ({mime}, {size:,} bytes)")
            if mime in INLINE_IMAGE_TYPES:
                lines.append(f"\n  ![Jules's screenshot {number}]({path})\n")
        else:
            lines.append(f"- {_code(path)} ({mime}, {size:,} bytes)")
    if len(media) > MAX_LISTED:
        lines.append(f"- ... and {len(media) - MAX_LISTED} more (see the result's `media`)")
    if dropped:
        lines.append(
            f"\n*{dropped} media not kept: the task has no `artifacts_path`, or they were over the size "
            "caps or not valid base64 (see the task log).*"
        )
    return lines
