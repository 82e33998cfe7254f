"""Trace ids that do not collide: `PR-4823` in two repositories is two pull requests, so
the client qualifies a trace by where it runs when the agent names none."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# AgentWallet's trace id alphabet (anything else is left out).
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/#@+-]")
_PULL_REF = re.compile(r"^refs/pull/(\d+)/")


def ci_trace_id(environ: Mapping[str, str] | None = None) -> str:
    """The trace of the CI job this runs in, or "":

    - `AGENTWALLET_TRACE_ID`, when set (any other CI, or a task of your own);
    - GitHub Actions: `owner/repo#123` for a pull request, else `owner/repo@run-<id>`;
    - GitLab CI: `group/project#123` for a merge request, else
      `group/project@pipeline-<id>`.
    """
    env = os.environ if environ is None else environ
    if explicit := env.get("AGENTWALLET_TRACE_ID", "").strip():
        return _safe(explicit)
    if env.get("GITHUB_ACTIONS") == "true" and (repo := env.get("GITHUB_REPOSITORY")):
        pull = _PULL_REF.match(env.get("GITHUB_REF", ""))
        if pull:
            return _safe(f"{repo}#{pull.group(1)}")
        if run := env.get("GITHUB_RUN_ID"):
            return _safe(f"{repo}@run-{run}")
    if env.get("GITLAB_CI") == "true" and (project := env.get("CI_PROJECT_PATH")):
        if merge_request := env.get("CI_MERGE_REQUEST_IID"):
            return _safe(f"{project}#{merge_request}")
        if pipeline := env.get("CI_PIPELINE_ID"):
            return _safe(f"{project}@pipeline-{pipeline}")
    return ""


def _safe(trace_id: str) -> str:
    return _UNSAFE.sub("-", trace_id)[:128]
