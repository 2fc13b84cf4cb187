"""Media artifacts (issue #22 item 4): found, checked, strictly decoded, named, capped, and listed in the
change review form; never a crash on hostile data, never base64 in the result or the form."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from airflow_provider_jules import media as md
from airflow_provider_jules import review as rv
from airflow_provider_jules.media import MediaCaps, collect_media, media_lines
from airflow_provider_jules.results import RESULT_KEYS, build_result

Json = dict[str, Any]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR-first-screenshot"
PNG_2 = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR-second-screenshot!"
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg body"
GIF = b"GIF89a" + b"gif body"
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 "
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"video"
ID_1 = "a76b35353eda42d09b1c37aedaa56047"
ID_2 = "db089c7052024cbeb9e37b8c584bc964"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def media(data: object, mime: object = "image/png") -> Json:
    return {"media": {"data": data, "mimeType": mime}}


def activity(aid: object, *artifacts: Json, t: str = "2025-10-03T05:47:49Z") -> Json:
    act: Json = {"progressUpdated": {"title": "Frontend verification"}, "artifacts": list(artifacts)}
    if aid is not None:
        act["id"] = aid
    act["createTime"] = t
    return act


def two_screenshots() -> list[Json]:
    return [
        activity(ID_1, media(b64(PNG)), t="2025-10-03T05:47:49Z"),
        activity(ID_2, media(b64(PNG_2)), t="2025-10-03T05:47:53Z"),
    ]


class Store:
    """A writer that keeps the files in a dict, as ``artifacts_path`` would."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.calls: list[str] = []

    def __call__(self, name: str, data: bytes) -> str:
        self.calls.append(name)
        self.files[name] = data
        return f"file:///artifacts/{name}"


# ------------------------------------------------------------------------------------------ written


def test_two_media_artifacts_are_written_with_their_exact_bytes_and_listed_oldest_first() -> None:
    store = Store()
    entries, dropped = collect_media(two_screenshots(), store)
    assert store.files == {f"{ID_1}-0.png": PNG, f"{ID_2}-0.png": PNG_2}
    assert entries == [
        {
            "activity_id": ID_1,
            "mime_type": "image/png",
            "path": f"file:///artifacts/{ID_1}-0.png",
            "bytes": len(PNG),
        },
        {
            "activity_id": ID_2,
            "mime_type": "image/png",
            "path": f"file:///artifacts/{ID_2}-0.png",
            "bytes": len(PNG_2),
        },
    ]
    assert dropped == 0
    assert all(tuple(e) == md.MEDIA_KEYS for e in entries)


def test_two_media_of_one_activity_get_their_position_in_the_name() -> None:
    store = Store()
    act = activity(ID_1, media(b64(PNG)), {"changeSet": {}}, media(b64(JPEG), "image/jpeg"))
    entries, _ = collect_media([act], store)
    assert [e["path"].rsplit("/", 1)[1] for e in entries] == [f"{ID_1}-0.png", f"{ID_1}-1.jpg"]
    assert store.files[f"{ID_1}-1.jpg"] == JPEG


def test_without_a_writer_nothing_is_decoded_and_every_media_counts_as_dropped(monkeypatch) -> None:
    monkeypatch.setattr(md, "_decode", lambda data: pytest.fail("decoded without a writer"))
    acts = [*two_screenshots(), activity("c1", media("not base64!"))]
    assert collect_media(acts, None) == ([], 3)


def test_build_result_carries_media_and_media_dropped_and_no_base64() -> None:
    session = {"name": "sessions/1", "id": "1", "state": "COMPLETED"}
    store = Store()
    result = build_result(session, two_screenshots(), write_media=store)
    assert tuple(result)[-2:] == ("media", "media_dropped") and tuple(result) == RESULT_KEYS
    assert [m["bytes"] for m in result["media"]] == [len(PNG), len(PNG_2)] and result["media_dropped"] == 0
    text = json.dumps(result)
    assert (
        b64(PNG) not in text
        and b64(PNG_2) not in text
        and "data" not in {k for m in result["media"] for k in m}
    )
    without = build_result(session, two_screenshots())
    assert (without["media"], without["media_dropped"]) == ([], 2)
    assert b64(PNG) not in json.dumps(without)


def test_the_same_activities_twice_give_the_same_names_and_a_repeated_activity_is_written_once() -> None:
    first, second = Store(), Store()
    acts = two_screenshots()
    assert collect_media(acts, first)[0] == collect_media(acts, second)[0]
    assert first.calls == second.calls
    third = Store()
    entries, dropped = collect_media([*acts, acts[0]], third)  # e.g. the same activity read on two pages
    assert sorted(third.calls) == sorted(first.calls) and len(entries) == 2 and dropped == 0


# ------------------------------------------------------------------------------------------ names and types


@pytest.mark.parametrize(
    ("mime", "data", "extension"),
    [
        ("image/png", PNG, ".png"),
        ("image/jpeg", JPEG, ".jpg"),
        ("image/jpg", JPEG, ".jpg"),
        ("image/gif", GIF, ".gif"),
        ("image/webp", WEBP, ".webp"),
        ("video/mp4", MP4, ".mp4"),
        ("IMAGE/PNG; charset=binary", PNG, ".png"),
        ("image/svg+xml", b"<svg onload=alert(1)>", ".bin"),
        ("text/html", b"<script>alert(1)</script>", ".bin"),
        ("image/png", b"<script>alert(1)</script>", ".bin"),  # the bytes are not a PNG
        ("image/jpeg", PNG, ".bin"),
        (None, PNG, ".bin"),
        ("../../x.png", PNG, ".bin"),
    ],
)
def test_the_extension_comes_from_the_declared_type_only_when_the_bytes_agree(mime, data, extension) -> None:
    store = Store()
    collect_media([activity(ID_1, media(b64(data), mime))], store)
    assert store.calls == [f"{ID_1}-0{extension}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("image/png", "image/png"),
        (" Image/PNG ; q=1", "image/png"),
        ("video/mp4", "video/mp4"),
        ("../../etc/passwd", md.OCTET_STREAM),
        ("image/png`](https://evil.example)", md.OCTET_STREAM),
        ("image", md.OCTET_STREAM),
        ("", md.OCTET_STREAM),
        (12, md.OCTET_STREAM),
        ("a/" + "b" * 100, md.OCTET_STREAM),
    ],
)
def test_the_mime_type_kept_is_a_plain_type_or_octet_stream(value, expected) -> None:
    assert md.media_type(value) == expected


@pytest.mark.parametrize(
    "aid", ["../../../etc/passwd", "a/b", "x" * 65, "id with spaces", "ünïcode", "", 42, None, "..", "a\x00b"]
)
def test_a_file_name_is_never_taken_from_the_network(aid) -> None:
    store = Store()
    entries, _ = collect_media([activity(aid, media(b64(PNG)))], store)
    [name] = store.calls
    assert name.endswith("-0.png") and "/" not in name and "\\" not in name and ".." not in name
    assert name.replace("-", "").replace(".", "").isalnum() and name.isascii()
    assert entries[0]["activity_id"] is None  # only a safe id is echoed into XCom and the form
    again = Store()
    collect_media([activity(aid, media(b64(PNG)))], again)
    assert again.calls == [name]  # stable: a retry writes the same file


# ------------------------------------------------------------------------------------------ hostile data


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        "QUJD\n",  # whitespace: not strict
        " QUJD",
        "QUJ",  # length not a multiple of 4
        "QUI=" + "QUJD",  # padding inside
        "QR==",  # non-canonical: unused bits set
        "-_-_",  # URL-safe alphabet
        "QUJD===",
        "QUJDé" + "===",
        "\uff31\uff35\uff2a\uff24",  # full-width letters QUJD
        "",
        None,
        12345,
        ["QUJD"],
    ],
)
def test_invalid_base64_is_skipped_with_a_warning_and_counted_never_raised(data, caplog) -> None:
    store = Store()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_jules.results"):
        entries, dropped = collect_media([*two_screenshots(), activity("bad", media(data))], store)
    assert (len(entries), dropped) == (2, 1)
    assert not any(name.startswith("bad-") for name in store.calls)
    assert "Skipping the media bad-0" in caplog.text


def test_junk_around_media_artifacts_is_ignored() -> None:
    acts: list[Any] = [
        {"id": "x", "artifacts": "nope"},
        {"id": "y", "artifacts": [None, 3, {"media": "junk"}, {"media": None}, {"bashOutput": {}}]},
        *two_screenshots(),
    ]
    store = Store()
    entries, dropped = collect_media([a for a in acts if isinstance(a, dict)], store)
    assert (len(entries), dropped) == (2, 0)


# ------------------------------------------------------------------------------------------ caps


def test_a_file_over_the_per_file_cap_is_skipped_before_it_is_decoded(monkeypatch, caplog) -> None:
    decoded: list[int] = []
    real = md._decode

    def watch(data: str) -> bytes | None:
        decoded.append(len(data))
        return real(data)

    monkeypatch.setattr(md, "_decode", watch)
    big = b64(PNG + b"x" * 1000)
    store = Store()
    caps = MediaCaps(max_file_bytes=len(PNG_2))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_jules.results"):
        entries, dropped = collect_media([*two_screenshots(), activity("big", media(big))], store, caps)
    assert decoded == [len(b64(PNG_2)), len(b64(PNG))]  # the big one was never decoded
    assert [e["activity_id"] for e in entries] == [ID_1, ID_2] and dropped == 1
    assert "over the cap of" in caplog.text


def test_a_file_exactly_at_the_per_file_cap_is_kept() -> None:
    store = Store()
    entries, dropped = collect_media(
        two_screenshots(), store, MediaCaps(max_file_bytes=max(len(PNG), len(PNG_2)))
    )
    assert (len(entries), dropped) == (2, 0)


def test_the_session_cap_keeps_the_newest_media() -> None:
    acts = [activity(f"m{i}", media(b64(PNG)), t=f"2025-10-03T05:47:4{i}Z") for i in range(4)]
    store = Store()
    entries, dropped = collect_media(acts, store, MediaCaps(max_session_bytes=2 * len(PNG) + 1))
    assert [e["activity_id"] for e in entries] == ["m2", "m3"] and dropped == 2
    assert sum(e["bytes"] for e in entries) <= 2 * len(PNG) + 1


def test_the_file_count_cap_keeps_the_newest_media() -> None:
    acts = [activity(f"m{i}", media(b64(PNG))) for i in range(5)]
    entries, dropped = collect_media(acts, Store(), MediaCaps(max_files=3))
    assert [e["activity_id"] for e in entries] == ["m2", "m3", "m4"] and dropped == 2


def test_the_default_caps() -> None:
    caps = MediaCaps()
    assert (caps.max_file_bytes, caps.max_session_bytes, caps.max_files) == (10 * 2**20, 50 * 2**20, 20)
    assert (md.DEFAULT_MAX_MEDIA_BYTES, md.DEFAULT_MAX_SESSION_MEDIA_BYTES, md.DEFAULT_MAX_MEDIA_FILES) == (
        10 * 2**20,
        50 * 2**20,
        20,
    )


@pytest.mark.parametrize("field", ["max_file_bytes", "max_session_bytes", "max_files"])
@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_a_bad_cap_is_a_value_error(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        MediaCaps(**{field: value})


def test_decoded_size_is_computed_from_the_length_alone() -> None:
    for data in (b"", b"a", b"ab", b"abc", b"abcd", PNG):
        assert md.decoded_size(b64(data)) == len(data)
    assert md.decoded_size("abc") is None and md.decoded_size("a===") is None


def test_a_writer_that_returns_no_path_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="media writer must return"):
        collect_media(two_screenshots(), lambda name, data: None)  # type: ignore[arg-type,return-value]


def test_a_writer_error_propagates() -> None:
    def broken(name: str, data: bytes) -> str:
        raise OSError("bucket gone")

    with pytest.raises(OSError, match="bucket gone"):
        collect_media(two_screenshots(), broken)


# ------------------------------------------------------------------------------------------ the form


def form_result(**overrides: Any) -> Json:
    base: Json = {
        "session_id": "1",
        "title": "Restyle the page",
        "url": "https://jules.google.com/session/1",
        "pull_request_url": None,
        "change_set": {
            "files_changed": ["a.css"],
            "patch_bytes": 10,
            "patch": "diff --git a/a.css b/a.css\n",
        },
        "media": [],
        "media_dropped": 0,
    }
    base.update(overrides)
    return base


def test_the_change_form_lists_the_written_media_as_paths_and_holds_no_base64() -> None:
    store = Store()
    session = {"name": "sessions/1", "id": "1", "state": "COMPLETED", "title": "Restyle the page"}
    result = build_result(session, two_screenshots(), write_media=store)
    body = rv.change_markdown(result, round_number=1, max_rounds=3)
    assert "Screenshots and other media from Jules (2 kept)" in body
    assert f"- `file:///artifacts/{ID_1}-0.png` (image/png, {len(PNG):,} bytes)" in body
    assert f"- `file:///artifacts/{ID_2}-0.png` (image/png, {len(PNG_2):,} bytes)" in body
    assert "](file://" not in body  # not a browser URL: never a link or an image
    for data in (PNG, PNG_2):
        assert b64(data) not in body and b64(data)[:16] not in body
    subject = rv.subject_for("change", result, round_number=1, max_rounds=3)
    form = rv.build_form(body, result, [rv.APPROVE], {}, subject=subject)
    assert b64(PNG) not in form.body and b64(PNG) not in form.subject


def test_the_change_form_says_how_many_media_were_not_kept() -> None:
    session = {"name": "sessions/1", "id": "1", "state": "COMPLETED"}
    result = build_result(session, two_screenshots())  # no artifacts_path: no writer
    body = rv.change_markdown(result, round_number=1, max_rounds=3)
    assert "(0 kept)" in body and "2 media not kept" in body and "artifacts_path" in body
    assert b64(PNG) not in body and b64(PNG_2) not in body


def test_a_form_without_media_is_unchanged() -> None:
    assert media_lines(form_result()) == []
    plain = rv.change_markdown(form_result(), round_number=1, max_rounds=3)
    assert "media" not in plain.lower()


def test_an_https_path_is_a_link_and_an_image_is_shown_inline() -> None:
    url = "https://storage.example.com/jules/d/r/t/1-media/a-0.png"
    video = "https://storage.example.com/jules/d/r/t/1-media/a-1.mp4"
    lines = media_lines(
        form_result(
            media=[
                {"activity_id": "a", "mime_type": "image/png", "path": url, "bytes": 10},
                {"activity_id": "a", "mime_type": "video/mp4", "path": video, "bytes": 20},
            ]
        )
    )
    text = "\n".join(lines)
    assert f"[`{url}`]({url}) (image/png, 10 bytes)" in text and f"![Jules's screenshot 1]({url})" in text
    assert f"[`{video}`]({video}) (video/mp4, 20 bytes)" in text and f"]({video})\n" not in text.replace(
        f"[`{video}`]({video})", ""
    )
    assert "![Jules's screenshot 2]" not in text  # a video is a link, not an image


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/x.png) ![tracker](https://evil.example/t.png",
        "https://host/with space.png",
        "javascript:alert(1)",
        "http://plain.example/x.png",
        "s3://aws_default@bucket/jules/a-0.png",
    ],
)
def test_a_path_that_is_not_a_plain_https_url_is_shown_as_code_only(path) -> None:
    entry = {"activity_id": None, "mime_type": "image/png", "path": path, "bytes": 1}
    text = "\n".join(media_lines(form_result(media=[entry])))
    assert f"- `{path}` (image/png, 1 bytes)" in text
    assert "](" not in text.replace(path, "") and "![" not in text.replace(path, "")


def test_a_path_with_backticks_stays_one_code_span() -> None:
    entry = {"activity_id": None, "mime_type": "image/png", "path": "file:///tmp/x`y``z.png", "bytes": 1}
    text = "\n".join(media_lines(form_result(media=[entry])))
    assert "- ```file:///tmp/x`y``z.png``` (image/png, 1 bytes)" in text


def test_hostile_values_in_a_result_do_not_break_the_listing() -> None:
    lines = media_lines(
        form_result(
            media=[{"mime_type": "text/html<script>", "path": None, "bytes": "many"}, "junk"],
            media_dropped=True,
        )
    )
    text = "\n".join(lines)
    assert "(application/octet-stream, 0 bytes)" in text and "<script>" not in text and "not kept" not in text
