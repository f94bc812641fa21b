"""The static page of `rnngen export --format web`: the model completes prompts in the visitor's browser.

The folder holds the page (`index.html`, `complete.js`, from `rnngen/export/page/`), the model (`model.onnx`,
`model.json`, `tokenizer.model`) and, under `vendor/`, ONNX Runtime Web and a browser build of sentencepiece, both
from npm. Nothing is fetched from elsewhere when the page is viewed: the folder works offline, from any static host,
and nothing the visitor types leaves the browser.

The npm packages are not shipped inside rnngen (ONNX Runtime Web's WebAssembly alone is 15 MB): the first web
export installs the pinned versions with npm into a cache folder (`npm_cache`), and every later export copies
the few files the page needs from there. Without npm, or without the registry, the export stops with one line
naming the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from rnngen.errors import RnngenError

ORT_WEB = ("onnxruntime-web", "1.31.1")
SENTENCEPIECE_JS = ("@sctg/sentencepiece-js", "1.3.3")
PACKAGES = (ORT_WEB, SENTENCEPIECE_JS)
# What the page loads, from each package's folder -> its name under vendor/. ONNX Runtime's WebAssembly-only ES
# module finds its .mjs and .wasm beside itself; the sentencepiece module holds its WebAssembly inline.
VENDORED = {
    ORT_WEB: {
        "dist/ort.wasm.min.mjs": "ort.wasm.min.mjs",
        "dist/ort-wasm-simd-threaded.mjs": "ort-wasm-simd-threaded.mjs",
        "dist/ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm",
    },
    SENTENCEPIECE_JS: {"dist/index.js": "sentencepiece.js", "LICENSE": "LICENSE-sentencepiece-js"},
}
PAGE = Path(__file__).with_name("page")
NPM_TIMEOUT = 600  # seconds for the one install: ONNX Runtime Web is a 40 MB download


def npm_cache() -> Path:
    """Where the pinned npm packages are installed once: $XDG_CACHE_HOME/rnngen (else ~/.cache/rnngen)/npm-VERSIONS."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnngen"
    return root / ("npm-" + "-".join(f"{name.replace('/', '+')}{version}" for name, version in PACKAGES))


def _specs() -> str:
    return " and ".join(f"{name}@{version}" for name, version in PACKAGES)


def _installed(cache: Path) -> bool:
    modules = cache / "node_modules"
    return all((modules / package[0] / source).is_file() for package, files in VENDORED.items() for source in files)


def npm_packages() -> Path:
    """The folder whose node_modules holds the pinned packages, installed with npm into `npm_cache` when missing
    (into a temporary folder renamed into place, so that an interrupted or concurrent install leaves no half)."""
    cache = npm_cache()
    if _installed(cache):
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise RnngenError(
            f"a web export needs {_specs()} from npm, installed once into {cache}: install Node.js with its npm "
            "(e.g. apt-get install npm) and export again"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".npm-", dir=cache.parent))
    try:
        command = [npm, "install", "--prefix", str(staging), "--no-save", "--ignore-scripts", "--no-audit", "--no-fund"]
        try:
            done = subprocess.run(
                command + [f"{name}@{version}" for name, version in PACKAGES],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0 or not _installed(staging):
            said = (done.stderr or done.stdout).strip().splitlines()[-1:] if done is not None else ["timed out"]
            raise RnngenError(
                f"npm could not install {_specs()} into {cache} ({' '.join(said) or 'no message'}): check that the "
                "npm registry can be reached (npm ping) and export again"
            )
        if cache.exists() and not _installed(cache):  # a folder someone emptied in part: installed again
            shutil.rmtree(cache, ignore_errors=True)
        try:
            staging.rename(cache)
        except OSError:  # another export installed them meanwhile
            if not _installed(cache):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


def write_page(folder: Path, packages: Path) -> None:
    """The page and its scripts into `folder` (which holds the model already), the npm files under vendor/ with a
    note of where each comes from and its license."""
    for source in PAGE.iterdir():
        shutil.copyfile(source, folder / source.name)
    vendor = folder / "vendor"
    vendor.mkdir()
    notes = []
    for package, files in VENDORED.items():
        installed = packages / "node_modules" / package[0]
        for source, name in files.items():
            shutil.copyfile(installed / source, vendor / name)
        about = json.loads((installed / "package.json").read_text())
        notes.append(
            f"{', '.join(files.values())}: npm package {about['name']} {about['version']}, "
            f"license {about.get('license', 'see its package')}, {about.get('homepage', '')}".rstrip(", ")
        )
    (vendor / "NOTICE.txt").write_text("\n".join(notes) + "\n")
