"""``hf://owner/name[@revision]``: a model shared on the Hugging Face Hub, by name.

A shared model is a Hub repository in huggingface_hub's layout (``model.safetensors``,
``config.json``, ``README.md``; see :mod:`ecgfounder.models.hub`).  :func:`fetch_pretrained`
downloads its weights file into the standard Hugging Face cache (honouring ``HF_ENDPOINT``,
``HF_HOME``, ``HF_HUB_OFFLINE``) and returns the local path; only the safetensors file is read,
so nothing from the Hub is ever unpickled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CheckpointError, WeightsDownloadError
from .weights import _hub_resolvable, check_advertised

__all__ = ["HF_SCHEME", "WEIGHTS_NAME", "CONFIG_NAME", "CARD_NAME", "parse_hf_reference", "check_revision",
           "fetch_pretrained"]

HF_SCHEME = "hf://"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# a branch, tag or commit id (refs/pr/1 included); huggingface_hub files a revision under refs/REVISION
# of its cache, so ".." segments would write outside it
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)*$")


def parse_hf_reference(ref: str) -> tuple[str, str | None]:
    """``"hf://owner/name@rev"`` (or ``"owner/name"``) → ``("owner/name", "rev" or None)``."""
    text = str(ref)
    body = text[len(HF_SCHEME):] if text.startswith(HF_SCHEME) else text
    repo_id, _, revision = body.partition("@")
    repo_id = repo_id.strip("/")
    if not _REPO_ID.match(repo_id) or ".." in repo_id or (_ and not revision):
        raise CheckpointError(f"{text!r} is not a Hub model reference; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION "
                              "(a branch, tag or commit id).")
    check_revision(revision or None, text)
    return repo_id, (revision or None)


def check_revision(revision: str | None, what: str) -> None:
    """Refuse a revision that is no branch, tag or commit id (``..`` segments, spaces, ...)."""
    if revision is not None and (not _REVISION.match(revision) or ".." in revision or len(revision) > 255):
        raise CheckpointError(f"{what!r}: revision {revision!r} is not a branch, tag or commit id (letters, digits, "
                              "'.', '_', '-', '+' and '/' between names, no '..'); write hf://OWNER/NAME@REVISION.")


def fetch_pretrained(ref: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                     token: str | bool | None = None) -> Path:
    """Download the weights file of the shared model ``ref`` (``hf://owner/name[@revision]``; an
    explicit ``revision`` wins) and return its local path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    repo_id, rev = parse_hf_reference(ref)
    check_revision(revision, f"revision={revision}")
    rev = revision or rev
    where = f"{HF_SCHEME}{repo_id}" + (f"@{rev}" if rev else "")
    try:
        path = Path(hf_hub_download(repo_id=repo_id, filename=WEIGHTS_NAME, revision=rev, cache_dir=cache_dir,
                                    token=token, local_files_only=not _hub_resolvable()))
        check_advertised(path, f"{where} ({WEIGHTS_NAME})", "load it again to download it anew.")
        return path
    except WeightsDownloadError:
        raise
    except LocalEntryNotFoundError:
        from huggingface_hub import constants

        reason = ("HF_HUB_OFFLINE is set (unset it to download) and the model is not in the local Hugging Face cache"
                  if constants.HF_HUB_OFFLINE else
                  "the Hub could not be reached and the model is not in the local Hugging Face cache")
    except RevisionNotFoundError:
        reason = f"the repository has no revision {rev!r}"
    except EntryNotFoundError:
        reason = f"the repository has no {WEIGHTS_NAME}; was it written with save_pretrained/push_to_hub?"
    except RepositoryNotFoundError:
        reason = "no such repository (or it is private: log in with 'hf auth login' or pass token=)"
    except Exception as exc:  # connection and other HTTP errors: one actionable line
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    raise WeightsDownloadError(f"could not download {where} ({reason}). Check the name, the network and HF_ENDPOINT, "
                               f"or download the folder (its {WEIGHTS_NAME} and {CONFIG_NAME}) and load it from there: "
                               "load_model(FOLDER), or model=FOLDER (CLI: --checkpoint FOLDER).")
