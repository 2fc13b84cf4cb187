"""Default source catalogue and generated content (unified diffs, random hex ids) for the simulator."""

from __future__ import annotations

import random

from airflow_provider_jules.simulator.config import SourceSpec

_OWNERS = ("acme", "octo-labs", "dataflow", "northwind", "zephyr-io")
_REPOS = ("api", "web", "etl-pipelines", "infra", "docs", "mobile", "ml-models", "sdk-python")


def default_sources() -> list[SourceSpec]:
    """The default catalogue: 45 GitHub repositories (one with 515 branches, quirk Q21)."""
    sources = [
        SourceSpec("bobalover", "boba", branches=("main",)),
        SourceSpec("bobalover", "boba-web", branches=("main", "develop")),
        SourceSpec("myorg", "myrepo", branches=("main", "develop", "feature/auth", "feature/tests")),
        SourceSpec("myorg", "another-repo", is_private=True, branches=("main",)),
        SourceSpec(
            "bigcorp",
            "monorepo",
            is_private=True,
            branches=("main", *(f"feature/ticket-{i:04d}" for i in range(1, 515))),
        ),
    ]
    n = 0
    for owner in _OWNERS:
        for repo in _REPOS:
            default = "master" if n % 5 == 4 else "main"
            branches: tuple[str, ...] = (default, "develop", f"release/{1 + n % 3}.x")
            sources.append(
                SourceSpec(owner, repo, is_private=n % 3 == 2, default_branch=default, branches=branches)
            )
            n += 1
    return sources


def source_to_json(src: SourceSpec) -> dict[str, object]:
    repo: dict[str, object] = {"owner": src.owner, "repo": src.repo}
    if src.is_private:
        repo["isPrivate"] = True
    if src.default_branch:
        repo["defaultBranch"] = {"displayName": src.default_branch}
    if src.branches:
        repo["branches"] = [{"displayName": b} for b in src.branches]
    return {"name": f"sources/{src.id}", "id": src.id, "githubRepo": repo}


def random_hex(rng: random.Random, n: int) -> str:
    """``n`` hex digits drawn from ``rng`` (ids, commit hashes, plan ids)."""
    return f"{rng.getrandbits(4 * n):0{n}x}"


def new_file_diff(rng: random.Random, path: str, lines: list[str]) -> str:
    head = [
        f"diff --git a/{path} b/{path}",
        "new file mode 100644",
        f"index 0000000..{random_hex(rng, 7)}",
        "--- /dev/null",
        f"+++ b/{path}",
        f"@@ -0,0 +1,{len(lines)} @@",
    ]
    return "\n".join(head + ["+" + line for line in lines]) + "\n"


def modify_diff(rng: random.Random, path: str, context: list[str], added: list[str]) -> str:
    head = [
        f"diff --git a/{path} b/{path}",
        f"index {random_hex(rng, 7)}..{random_hex(rng, 7)} 100644",
        f"--- a/{path}",
        f"+++ b/{path}",
        f"@@ -1,{len(context)} +1,{len(context) + len(added)} @@",
    ]
    return "\n".join(head + [" " + c for c in context] + ["+" + a for a in added]) + "\n"


def file_diff(rng: random.Random, path: str, topic: str, round_no: int) -> str:
    """A realistic one-file unified diff for ``path``."""
    mod = path.rsplit("/", 1)[-1].split(".")[0]
    if path.endswith("README.md"):
        return modify_diff(
            rng,
            path,
            [f"# {topic}", "", "Project description."],
            ["", f"## {mod.replace('_', ' ').title()} (round {round_no})", "", f"See `docs/{topic}.md`."],
        )
    if path.startswith("tests/") and path.endswith(".py"):
        target = mod.removeprefix("test_")
        return new_file_diff(
            rng,
            path,
            [
                f"from app.{target} import run",
                "",
                "",
                f"def test_{target}_returns_ok() -> None:",
                '    assert run() == "ok"',
            ],
        )
    if path.endswith(".py"):
        return new_file_diff(
            rng,
            path,
            [
                f'"""{topic}: {mod}."""',
                "",
                "",
                "def run() -> str:",
                f'    """Entry point added by Jules (round {round_no})."""',
                '    return "ok"',
            ],
        )
    return new_file_diff(rng, path, [f"# {mod}", "", f"Notes about {topic} (round {round_no}).", ""])
