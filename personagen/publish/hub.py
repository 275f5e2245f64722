"""Push an exported panel to the Hugging Face Hub (one commit); the token comes from $HF_TOKEN only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.library import Library
from personagen.options import stage_options
from personagen.publish.export import PublishOptions, build_panel, validate_repo_id, write_panel_folder


def hub_token() -> str:
    """The Hub token from the HF_TOKEN environment variable; BadInput when it is unset."""
    tok = os.environ.get("HF_TOKEN", "").strip()
    if not tok:
        raise BadInput("HF_TOKEN is not set: export a Hub write token in HF_TOKEN to push (or use --out DIR)")
    return tok


def _check_no_secret(folder: Path, token: str) -> None:
    needle = token.encode()
    for p in folder.rglob("*"):
        if p.is_file() and needle in p.read_bytes():
            raise PersonagenError(f"refusing to push: {p.name} contains the Hub token")


def publish_panel(lib: Library | str | os.PathLike, repo: str, options: PublishOptions | None = None,
                  **deprecated: Any) -> dict[str, Any]:
    """Export `lib` and push it to dataset repo `repo` in a single commit; returns repo/commit info.

    options: a `PublishOptions` (None: the defaults; keyword arguments instead are deprecated, one release).
    Everything is validated (repo id, token, weights, licences) before any request is made. The endpoint
    is huggingface_hub's (honours $HF_ENDPOINT).
    """
    o = stage_options(PublishOptions, options, deprecated, "publish_panel")
    calibration, private, revision, templates = o.calibration, o.private, o.revision, o.templates
    commit_message = o.commit_message
    if o.overwrite:
        raise BadInput("overwrite True: applies to a local export (export_panel); a push adds a commit",
                       field="overwrite")
    validate_repo_id(repo)
    token = hub_token()
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    panel = build_panel(lib, calibration)

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    from personagen.locking import pid_tag, remove_stale

    remove_stale(Path(tempfile.gettempdir()).glob("personagen-publish.pid*"))  # left by a killed push
    with tempfile.TemporaryDirectory(prefix=f"personagen-publish{pid_tag()}") as tmp:
        folder = Path(tmp)
        files = write_panel_folder(panel, folder, repo=repo, templates=templates)
        _check_no_secret(folder, token)
        try:
            url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo, branch=revision, repo_type="dataset", exist_ok=True)
            info = api.upload_folder(
                repo_id=repo, folder_path=folder, repo_type="dataset", revision=revision,
                commit_message=commit_message or f"personagen: publish panel (calibration {panel['calibration']})",
            )
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            msg = str(e).splitlines()[0].replace(token, "***")
            if status in (401, 403):
                raise BadInput(f"repo {repo}: Hub refused the token ({status}): {msg}", field="repo") from None
            raise PersonagenError(f"Hub push to {repo} failed: {msg}") from None
    return {"repo": repo, "url": str(url), "revision": revision or "main", "commit": info.oid,
            "commit_url": info.commit_url, "private": private, "calibration": panel["calibration"],
            "n_personas": panel["personas"].height, "n_responses": panel["responses"].height,
            "files": files, "left_out": panel["left_out"]}
