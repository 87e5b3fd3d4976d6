"""Hub access before any work: the repo a run pushes to is created (or found) first, and a failure says what to do
(the token is never printed). The one-commit push itself is :meth:`r2kd_hf.R2KDTrainer.push_to_hub`."""

from __future__ import annotations

import os


def hub_access_error(args, error: Exception) -> RuntimeError:
    """What to do when the Hub repo of ``args`` cannot be created or reached (the token is never printed)."""
    repo = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
    return RuntimeError(
        f"push_to_hub is on, but the Hub repo {repo!r} cannot be created or reached ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200]}). Nothing has been trained or written yet. Check HF_ENDPOINT and the "
        "network, log in with `hf auth login` (or pass hub_token), or set push_to_hub false and upload later "
        "with `hf upload`."
    )


def check_hub_access(args) -> str:
    """Create (or find) the Hub repo of ``args`` before any work (the run's own teacher training included)."""
    from huggingface_hub import HfApi

    repo = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
    try:
        url = HfApi(token=args.hub_token).create_repo(repo, exist_ok=True, private=bool(getattr(args, "hub_private_repo", False)))
    except Exception as error:  # noqa: BLE001
        raise hub_access_error(args, error) from None
    return getattr(url, "repo_id", None) or repo
