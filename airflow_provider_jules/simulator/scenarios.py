"""Scenarios: what a session will do, chosen by the prompt's ``sim:key=value`` markers, as a script of steps.

:func:`choose_scenario` reads the markers (``sim:scenario=``, ``sim:steps=``, ``sim:questions=``, ``sim:pr=``,
``sim:media=``, ``sim:pr_host=``, ``sim:title=full``); :func:`initial_script` and :func:`resume_script`
write the timed steps the state machine (:mod:`.lifecycle`) plays back. The session's title, topic and
planned files come from its prompt here too. Every random draw comes from the session's own seeded RNG, in a
fixed order: the same seed, the same session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_jules.simulator.clock import US
from airflow_provider_jules.simulator.config import SCENARIOS, SimulatorConfig
from airflow_provider_jules.simulator.errors import bad_request
from airflow_provider_jules.simulator.session import PR_HOST, Session, Step

_MARKER = re.compile(r"sim:([A-Za-z_]+)=(\S+)")
#: The most "Frontend verification" activities ``sim:media=N`` asks for.
MAX_MEDIA_STEPS = 20
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class ScenarioChoice:
    """The scenario settings a prompt asks for (markers), with the configured defaults for the rest."""

    scenario: str
    steps: int
    questions: int
    pr_enabled: bool
    full_title: bool  # sim:title=full: the whole prompt is the title
    media: int | None = None  # sim:media=N: N "Frontend verification" activities (None: one when steps >= 5)
    #: sim:pr_host=HOST: the pull request's URL is https://HOST/<owner>/<repo>/pull/<n> (a test knob: Jules
    #: itself opens pull requests on github.com only), e.g. a look-alike host or a GitHub Enterprise one.
    pr_host: str = PR_HOST


def choose_scenario(prompt: str, config: SimulatorConfig) -> ScenarioChoice:
    """Read the prompt's markers (400 INVALID_ARGUMENT for an unknown scenario or a bad number)."""
    markers = {k.lower(): v for k, v in _MARKER.findall(prompt)}
    scenario = markers.get("scenario", config.scenario)
    if scenario not in SCENARIOS:
        raise bad_request(f"Unknown simulator scenario {scenario!r}; expected one of {list(SCENARIOS)}.")
    try:
        steps = max(1, min(1000, int(markers.get("steps", config.default_steps))))
        questions = max(1, min(20, int(markers.get("questions", 1))))
        media = max(0, min(MAX_MEDIA_STEPS, int(markers["media"]))) if "media" in markers else None
    except ValueError as exc:
        raise bad_request(f"Invalid simulator marker: {exc}") from None
    pr_enabled = _BOOL.get(markers.get("pr", "true").lower(), True)
    pr_host = markers.get("pr_host", PR_HOST)
    if len(pr_host) > 253:
        raise bad_request("Invalid simulator marker: pr_host is longer than 253 characters.")
    full_title = markers.get("title") == "full"
    return ScenarioChoice(scenario, steps, questions, pr_enabled, full_title, media, pr_host)


def strip_markers(prompt: str) -> str:
    return " ".join(_MARKER.sub("", prompt).split())


def title_from_prompt(prompt: str, full: bool) -> str:
    """The title Jules gives a session created without one: the prompt's first line, capitalised, cut."""
    if full:
        return prompt
    text = strip_markers(prompt.strip().splitlines()[0] if prompt.strip() else "")
    if not text:
        return "Untitled session"
    if len(text) > 80:
        text = text[:77].rsplit(" ", 1)[0] + "..."
    return text[0].upper() + text[1:]


def topic(s: Session) -> str:
    """Up to three words of the prompt, joined by ``_``: names the files the change touches."""
    words = re.findall(r"[A-Za-z]+", strip_markers(s.prompt).lower())
    return "_".join(words[:3]) or "change"


_FAILED_FILE = re.compile(r"^- DAG file: ([\w./-]+\.py)$", re.MULTILINE)


def session_files(s: Session) -> list[str]:
    """The files the planned change touches: for a fix request (the JulesFixNotifier's prompt names the
    failed DAG's file) that file and its test; otherwise three or four files named after the prompt."""
    failed = _FAILED_FILE.search(s.prompt)
    if failed:
        path = failed.group(1)
        return [path, f"tests/test_{path.rsplit('/', 1)[-1]}"]
    name = topic(s)
    mod = name.split("_")[0] or "feature"
    return [f"src/app/{mod}.py", f"tests/test_{mod}.py", "README.md", f"docs/{name}.md"][
        : 3 + s.rng.randrange(2)
    ]


def _delay(s: Session, lo: float, hi: float) -> int:
    return int((lo + (hi - lo) * s.rng.random()) * US)


def _progress_plan(s: Session, n: int, first_file: int) -> list[Step]:
    """``n`` progress steps: install, edits, then (for longer runs) a failing test run, media and a review.

    ``sim:media=N`` (``s.media``) replaces the one media step of a longer run by ``N`` media steps (each a
    "Frontend verification" activity with one ``media`` artifact) just before the review, or at the end.
    """
    steps: list[Step] = []
    edit = first_file
    for i in range(n):
        data: dict[str, Any]
        if i == 0:
            data = {
                "kind": "bash",
                "command": "pip install -e .",
                "output": "Successfully installed app-0.1.0",
            }
        elif n >= 4 and i == n - 1:
            data = {"kind": "review"}
        elif n >= 5 and i == n - 2 and s.media is None:
            data = {"kind": "media"}
        elif n >= 6 and i == n - 3:
            data = {"kind": "bash", "command": "pytest -q", "output": "1 failed, 3 passed", "exit_code": 1}
        else:
            data = {"kind": "edit", "file": edit}
            edit += 1
        steps.append(Step(_delay(s, 10, 25), "progress", data))
    if s.media:
        media = [Step(_delay(s, 5, 15), "progress", {"kind": "media", "index": k}) for k in range(s.media)]
        at = len(steps) - 1 if steps and steps[-1].data.get("kind") == "review" else len(steps)
        steps[at:at] = media
    return steps


def _with_questions(s: Session, progress: list[Step]) -> list[Step]:
    """Scenario ``user_feedback``: the session's questions spread over the work."""
    k = max(1, len(progress) // 2)
    questions = [
        Step(_delay(s, 5, 10), "question", {"text": f"Question {q + 1}: should I also update the docs?"})
        for q in range(s.questions)
    ]
    merged: list[Step] = []
    for i, p in enumerate(progress):
        merged.append(p)
        if questions and (i + 1) % k == 0:
            merged.append(questions.pop(0))
    merged.extend(questions)
    return merged


def _scenario_work(s: Session, progress: list[Step]) -> list[Step]:
    """The work between the plan and the completion, as the session's scenario shapes it."""
    if s.scenario == "user_feedback":
        return _with_questions(s, progress)
    if s.scenario == "unknown_state":
        progress.insert(1, Step(_delay(s, 5, 10), "unknown"))
        progress.insert(2, Step(_delay(s, 5, 10), "progress", {"kind": "odd"}))
    elif s.scenario == "stuck":
        progress = [*progress[: max(1, len(progress) // 2)], Step(_delay(s, 5, 10), "stuck")]
    elif s.scenario == "failure":
        progress = [*progress[: max(1, len(progress) // 2)], Step(_delay(s, 10, 20), "fail")]
    elif s.scenario == "no_changes":
        progress = [p for p in progress if p.data.get("kind") != "edit"] or progress[:1]
    return progress


def initial_script(s: Session) -> list[Step]:
    """The first round: planning, the plan (approved automatically unless approval is required), the work."""
    script: list[Step] = []
    if s.scenario == "unknown_state":
        script.append(Step(_delay(s, 0.5, 1.0), "system", {"description": "Session started"}))
    script.append(Step(_delay(s, 2, 4), "state", {"state": "PLANNING"}))
    script.append(Step(_delay(s, 10, 15), "plan"))
    if not s.require_approval:
        script.append(Step(_delay(s, 1.5, 2.5), "approve"))
    script.extend(_scenario_work(s, _progress_plan(s, s.steps, 0)))
    script.append(Step(_delay(s, 15, 25), "complete"))
    return script


def resume_script(s: Session) -> list[Step]:
    """A follow-up round (a message after the session finished): one more file, then complete again."""
    s.files.append(f"docs/follow_up_{s.rounds}.md")
    return [
        Step(_delay(s, 5, 10), "progress", {"kind": "bash", "command": "git status", "output": "clean"}),
        Step(_delay(s, 10, 20), "progress", {"kind": "edit", "file": len(s.files) - 1}),
        Step(_delay(s, 10, 20), "complete"),
    ]
