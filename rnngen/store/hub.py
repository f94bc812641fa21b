"""The Hugging Face Hub: `hf:USER/NAME[@REVISION]` checkpoints, and what `rnngen push` uploads. No torch.

A model on the hub is a run folder: `best.safetensors`, `config.json` and `tokenizer.model`, plus a
model card (`README.md`) whose YAML header the hub reads (library, tags, datasets, the validation
bits per character as a model-index result). It is downloaded once into the hub cache
(`snapshot_download`, `HF_HUB_CACHE`) and read from there afterwards, offline too. rnngen never
stores a token: huggingface_hub reads `HF_TOKEN` or the one `huggingface-cli login` saved.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from rnngen import __version__
from rnngen.errors import CheckpointError, RnngenError, param
from rnngen.store.atomic import write_json_atomic
from rnngen.store.checkpoint_format import Checkpoint, read_header, read_numpy, stored_header
from rnngen.store.runs import RunFolder

PREFIX = "hf:"
WEIGHTS, CONFIG, TOKENIZER, CARD = "best.safetensors", "config.json", "tokenizer.model", "README.md"
UPLOADED = (WEIGHTS, CONFIG, TOKENIZER)  # the run's files an upload needs
FILES = (*UPLOADED, CARD)
HUB_PROBE_SECONDS = 3.0
# The hub's repository id rules, in short: one namespace, one name, letters, digits, '-', '_', '.'.
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


class HubError(RnngenError):
    """A hub model cannot be found, downloaded or uploaded."""


def is_hub_ref(checkpoint: str) -> bool:
    """Whether a `--checkpoint` argument names a hub model (`hf:USER/NAME[@REVISION]`)."""
    return checkpoint.startswith(PREFIX)


def hub_reachable() -> bool:
    """One HEAD request to the hub; urllib goes through HTTPS_PROXY/HTTP_PROXY/NO_PROXY as the hub client does."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        # A fresh opener reads the proxy variables now (urlopen's shared one keeps those of its first use).
        opener = urllib.request.build_opener()
        with opener.open(urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_PROBE_SECONDS):
            return True
    except urllib.error.HTTPError:
        return True  # an answer, even an error status, means the hub (or the proxy before it) is there
    except (OSError, ValueError):
        return False


def parse_repo_id(repo_id: str) -> str:
    """`repo_id` checked to be `USER/NAME`."""
    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith("."):
        raise HubError(f"{repo_id!r} is not a hub model id: write USER/NAME, e.g. hf:alice/notes-gru")
    return repo_id


def parse(ref: str) -> tuple[str, str | None]:
    """(repo id, revision or None) of `hf:USER/NAME[@REVISION]`."""
    repo_id, _, revision = ref[len(PREFIX) :].partition("@")
    return parse_repo_id(repo_id), revision or None


def download(ref: str) -> Path:
    """The local folder of hub model `ref`: from the hub cache when it is there (no network), else downloaded
    into it. Offline and uncached fails at once with the fix."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse(ref)
    kwargs = {
        "repo_id": repo_id,
        "revision": revision,
        "allow_patterns": list(FILES),
        "library_name": "rnngen",
        "library_version": __version__,
    }
    try:
        return Path(snapshot_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError:
        pass  # not cached yet
    # The hub client retries an unreachable hub for tens of seconds; the probe `prepare` uses takes at most a few.
    if constants.HF_HUB_OFFLINE or not hub_reachable():
        raise HubError(
            f"{ref} is not in the hub cache ({constants.HF_HUB_CACHE}) and the Hugging Face hub cannot be "
            f"reached{' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''}: run it once with "
            f"network access to download it, or pass a local run folder or .safetensors file"
        )
    try:
        return Path(snapshot_download(**kwargs))
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise HubError(
            f"no model {repo_id} on the hub that this login can read: check the name, or log in "
            f"(`huggingface-cli login` or HF_TOKEN) for a private one"
        ) from exc
    except RevisionNotFoundError as exc:
        raise HubError(f"{repo_id} has no revision {revision!r}: drop @{revision} for the latest") from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise HubError(f"cannot download {ref}: {str(exc).splitlines()[0]}") from exc


def checkpoint_facts(weights: Path) -> tuple[int, int]:
    """(model parameters, training step) of a checkpoint file, from its checked header (no tensor is read)."""
    header = read_header(weights)
    return sum(math.prod(shape) for name, shape in header.shapes.items() if name.startswith("model.")), header.step


def model_card(run: RunFolder, repo_id: str) -> str:
    """The hub model card of `run` (README.md): YAML metadata and a description, from the run's own files."""
    from huggingface_hub import EvalResult, ModelCardData

    config = run.config()
    model, train, corpus = config["model"], config["train"], config["corpus"]
    dataset = corpus["dataset"]
    # Only a hub dataset id links to a dataset page; a local folder or the embedded corpus does not.
    on_hub = bool(dataset) and not dataset.startswith((".", "/", "~")) and "/" in dataset and not Path(dataset).exists()
    bpc = run.best_val_bpc()
    results = (
        []
        if bpc is None
        else [
            EvalResult(
                task_type="text-generation",
                dataset_type=dataset if on_hub else corpus["name"],
                dataset_name=corpus["name"],
                dataset_split="validation",
                metric_type="bpc",
                metric_value=round(bpc, 4),
                metric_name="validation bits per character",
            )
        ]
    )
    data = ModelCardData(
        library_name="rnngen",
        pipeline_tag="text-generation",
        model_name=repo_id,
        tags=["rnngen", "recurrent-neural-network", model["kind"], "text-generation"],
        datasets=[dataset] if on_hub else None,
        eval_results=results or None,
    )
    size = f"{model['layers']} x {model['hidden']} {model['kind'].upper()}"
    params, step = checkpoint_facts(run.file(WEIGHTS))
    source = f"[{dataset}](https://huggingface.co/datasets/{dataset})" if on_hub else f"`{corpus['name']}`"
    settings = ", ".join(
        f"{key} {train[key]}" for key in ("batch_size", "seq_len", "lr", "warmup", "weight_decay", "clip", "seed")
    )
    tokenizer = corpus["tokenizer"]
    evaluated = (
        f"Validation: **{bpc:.4f} bits per character** on the corpus's validation split "
        f"({corpus['val_characters']:,} characters)."
        if bpc is not None
        else "Not evaluated yet."
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id}",
        "",
        (
            f"A {size} recurrent language model ({params:,} parameters, embedding {model['embed']}, vocabulary "
            f"{model['vocab_size']}) trained with rnngen on {source} for {step:,} steps."
        ),
        "",
        evaluated,
        "",
        "## Use",
        "",
        "```bash",
        "pip install rnngen",
        f'rnngen complete --checkpoint hf:{repo_id} "Your prompt"',
        "```",
        "",
        "```python",
        "import rnngen",
        "",
        f'model = rnngen.load("hf:{repo_id}")',
        'print(model.complete("Your prompt", max_tokens=50))',
        "```",
        "",
        "## Training",
        "",
        (
            f"Corpus {corpus['name']}: {corpus['train_tokens']:,} training tokens, "
            f"{corpus['train_characters']:,} characters; tokenizer {tokenizer['type']} "
            f"(sha256 {tokenizer['sha256'][:12]})."
        ),
        f"Training: {settings}.",
        "",
        (
            "Files: `best.safetensors` (weights and configuration; safetensors, no pickle), `config.json`, "
            "`tokenizer.model` (sentencepiece)."
        ),
        "",
    ]
    return "\n".join(lines)


def check_upload(run: RunFolder, repo_id: str) -> Checkpoint:
    """Refuse what `rnngen push` must not upload to `repo_id`: a run that lacks a file, a file that is a link, best
    weights that are not finite (`read_numpy`). Returns those weights' checkpoint, whose tokenizer the caller checks
    (`rnngen.data.tokenizer.load_checked`: this layer cannot read a tokenizer)."""
    parse_repo_id(repo_id)
    _require_own_files(run)
    return read_numpy(run.file(WEIGHTS))


def _require_own_files(run: RunFolder) -> None:
    """Refuse a run that lacks a file push uploads, or holds one as a link: its copy would be whatever the link names,
    inside the run or not."""
    missing = [name for name in UPLOADED if not run.file(name).exists() and not run.file(name).is_symlink()]
    if missing:
        raise CheckpointError(
            f"{run.path} has no {', '.join(missing)} yet: push a run that has been evaluated "
            f"at least once (`rnngen runs` shows its best bits per character)"
        )
    for name in UPLOADED:
        if run.file(name).is_symlink():
            raise CheckpointError(
                f"{run.file(name)} is a link to {os.readlink(run.file(name))}: push uploads a run's own files "
                "only; replace the link with a copy of the run's file"
            )


def upload_folder(run: RunFolder, repo_id: str, folder: Path) -> Path:
    """Fill `folder` with what `rnngen push` uploads: the run's best weights, config and tokenizer, and a model card.
    `check_upload` first reads the weights; this refuses links as well, so that it never copies from outside."""
    parse_repo_id(repo_id)
    _require_own_files(run)
    if not _empty_or_pushed_from(folder, run):
        raise RnngenError(
            f"{folder} holds other files than an earlier upload of {run.name}: choose a new or empty folder "
            f"for {param('dry_run')}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, TOKENIZER):
        shutil.copyfile(run.file(name), folder / name)
    # The uploaded weights' own configuration: the run's config.json follows `last`, which may be steps ahead of `best`.
    write_json_atomic(folder / CONFIG, stored_header(run.file(WEIGHTS)))
    (folder / CARD).write_text(model_card(run, repo_id))
    return folder


def _empty_or_pushed_from(folder: Path, run: RunFolder) -> bool:
    """Whether `folder` may be filled for `run`: it is missing or empty, or it holds only what an upload of the
    same run wrote (the same model on the same corpus from the same seed; trained further since, it is the same
    run)."""
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    if not entries:
        return True
    # Plain files only: a link would be followed onto the file it names, a folder cannot be written over.
    if any(entry.is_symlink() or not entry.is_file() for entry in entries):
        return False
    if not {entry.name for entry in entries} <= {WEIGHTS, CONFIG, TOKENIZER, CARD} or not (folder / CONFIG).exists():
        return False
    try:
        earlier = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(earlier, dict):
        return False
    ours = run.config()
    # `earlier` is whatever the folder holds; `ours` passed the format check.
    same_seed = (earlier.get("train") or {}).get("seed") == ours["train"]["seed"]
    return same_seed and all(earlier.get(key) == ours[key] for key in ("model", "corpus"))


def push(folder: Path, repo_id: str, private: bool) -> str:
    """Create (or reuse) the hub model repository `repo_id` and upload `folder` to it; returns its URL."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if get_token() is None:
        raise HubError("no Hugging Face token: run `huggingface-cli login` (or `hf auth login`), or set HF_TOKEN")
    if not hub_reachable():
        raise HubError("cannot reach the Hugging Face hub: check the network (HF_ENDPOINT, HTTPS_PROXY) and push again")
    api = HfApi(library_name="rnngen", library_version=__version__)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id, folder_path=folder, repo_type="model", commit_message=f"Upload with rnngen {__version__}"
        )
    except HfHubHTTPError as exc:
        raise HubError(
            f"the hub refused the upload to {repo_id}: {str(exc).splitlines()[0]} (is the token allowed "
            f"to write there?)"
        ) from exc
    return str(url)
