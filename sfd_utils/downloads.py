"""Pretrained weights on first use, the way the libraries our users know deliver them.

- Hugging Face hub files (open_clip tags): looked up in the hub's cache first (no request), else
  downloaded by ``huggingface_hub.hf_hub_download`` into that cache (its locks; a dropped connection
  is retried, resuming with a Range request, while the server answers) with a progress bar, and
  checked against the SHA-256 the hub names the file by.
- Files at a URL (torchvision's VGG/AlexNet weights): looked up in torch hub's ``checkpoints``
  folder, else downloaded there with a progress bar, the size checked against Content-Length and the
  SHA-256 prefix in the file name checked as torchvision does; only a complete, verified file is
  ever renamed into place.

Offline is first-class: with ``SFD_OFFLINE=1`` or the standard ``HF_HUB_OFFLINE=1`` no request is
made, and an unreachable server is given up after :data:`CONNECT_TIMEOUT` seconds, without the
hub's retry loop. Either way the error is one line naming the file and how to supply it. Nothing
here changes ``os.environ``: the switches are read, and settings go to the calls that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re
import urllib.error
import urllib.parse
import urllib.request

OFFLINE_ENV = "SFD_OFFLINE"
# Seconds to wait for a server to connect and answer before calling it unreachable (the hub's own
# default is 10 s, then a retry with 60 s).
CONNECT_TIMEOUT = 5.0
# Seconds a running download may stall before it is given up.
READ_TIMEOUT = 30.0
# Where torchvision's weights live; tests point this at a loopback server.
TORCHVISION_URL = "https://download.pytorch.org/models/"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's names end in -<sha256 prefix>.pth
_SHA256 = re.compile(r"[a-f0-9]{64}")


class WeightsUnavailable(FileNotFoundError):
    """A weight file is not on this machine and cannot be downloaded now (offline, unreachable,
    refused as damaged). The message is one line naming the file and how to supply it."""


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline_switch() -> str | None:
    """The switch that has turned downloads off (``"SFD_OFFLINE=1"`` or ``"HF_HUB_OFFLINE=1"``),
    or None. Reads the environment; never writes it."""
    if _on(os.environ.get(OFFLINE_ENV)):
        return f"{OFFLINE_ENV}=1"
    if _on(os.environ.get("HF_HUB_OFFLINE")):
        return "HF_HUB_OFFLINE=1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return "HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else None  # as the hub read it at import


def _reason(err: BaseException) -> str:
    """``Type: first line`` of an error, for one-line messages."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(folder: str, name: str):
    """One download of ``name`` at a time across processes (e.g. the ranks of a torchrun job)."""
    try:
        from filelock import FileLock  # a dependency of torch
    except ImportError:
        yield
        return
    locks = os.path.join(folder, ".locks")
    os.makedirs(locks, exist_ok=True)
    with FileLock(os.path.join(locks, f"{name}.lock")):
        yield


# -- files at a URL (torch hub's checkpoints folder) ------------------------------------------------
def torch_hub_checkpoints() -> str:
    """torch hub's ``checkpoints`` folder ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints)."""
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def torchvision_url(filename: str) -> str:
    """URL of one of torchvision's weight files, e.g. ``vgg19-dcbb9e9d.pth``."""
    return urllib.parse.urljoin(TORCHVISION_URL, filename)


def fetch_url(url: str, key: str, supply: str, folder: str | None = None, progress: bool = True) -> str:
    """The file at ``url`` as ``folder/<its name>`` (default: torch hub's checkpoints folder),
    downloaded on first use; a file already there is used without a request.

    key: the option or flag the file belongs to (starts every message); supply: how a user can give
    the file instead (ends every message). Raises WeightsUnavailable (one line).
    """
    folder = folder or torch_hub_checkpoints()
    name = os.path.basename(urllib.parse.urlparse(url).path)
    dest = os.path.join(folder, name)
    if os.path.isfile(dest):
        return dest
    switch = offline_switch()
    if switch:
        raise WeightsUnavailable(f"{key}: {dest} does not exist and downloads are off ({switch}); {supply}")
    os.makedirs(folder, exist_ok=True)
    with _lock(folder, name):
        if not os.path.isfile(dest):  # another process may have finished it meanwhile
            _download(url, dest, key, supply, progress)
    return dest


def _download(url: str, dest: str, key: str, supply: str, progress: bool) -> None:
    name = os.path.basename(dest)
    match = _HASH_IN_NAME.search(name)
    prefix = match.group(1) if match else None
    tmp = f"{dest}.{os.getpid()}.partial"
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "sfd-basicsr"})
        try:
            response = urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT)
        except (urllib.error.URLError, OSError) as err:
            raise WeightsUnavailable(
                f"{key}: {name} is not in {os.path.dirname(dest)} and {url} cannot be reached "
                f"({_reason(getattr(err, 'reason', err))}); {supply}"
            ) from None
        total = int(response.headers.get("Content-Length") or 0) or None
        with response, open(tmp, "wb") as out:
            _allow_slow_reads(response)
            try:
                got, sha256 = _stream(response, out, total, name, progress)
            except OSError as err:  # http.client.IncompleteRead, timeouts, resets
                raise WeightsUnavailable(
                    f"{key}: the download of {url} broke off ({_reason(err)}); nothing was kept, run again to retry, "
                    f"or {supply}"
                ) from None
        if total is not None and got != total:
            raise WeightsUnavailable(
                f"{key}: the download of {url} broke off after {got} of {total} bytes; nothing was kept, run "
                f"again to retry, or {supply}"
            )
        if prefix and not sha256.startswith(prefix):
            raise WeightsUnavailable(
                f"{key}: the file downloaded from {url} has SHA-256 {sha256[:16]}..., not the {prefix}... its "
                f"name promises; it was deleted. {supply[:1].upper()}{supply[1:]}"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _stream(response, out, total: int | None, name: str, progress: bool) -> tuple[int, str]:
    """Copy the body to ``out`` with a progress bar; (bytes, hex SHA-256)."""
    from tqdm import tqdm

    digest, got = hashlib.sha256(), 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress) as bar:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            got += len(chunk)
            bar.update(len(chunk))
    return got, digest.hexdigest()


def _allow_slow_reads(response) -> None:
    """The connect timeout also bounds every read; once the server answered, give reads longer."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(READ_TIMEOUT)


# -- Hugging Face hub files ----------------------------------------------------------------------------
def hub_cache_folder(cache_dir: str | None = None) -> str:
    """The hub cache folder: ``cache_dir``, else what huggingface_hub resolves (HF_HUB_CACHE,
    HF_HOME/hub, ~/.cache/huggingface/hub)."""
    if cache_dir:
        return cache_dir
    try:
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    except ImportError:
        home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~/.cache"), "huggingface")
        return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


def cached_hub_file(repo_id: str, filenames: list[str], cache_dir: str | None = None) -> str | None:
    """The first of ``filenames`` of ``repo_id`` (main revision) in the hub cache, without a request."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect (the hub sends large files to its CDN) already says the file exists


def _probe_hub(url: str, key: str, what: str, where: str, supply: str) -> bool:
    """Whether the hub has the file at ``url`` (HEAD, at most :data:`CONNECT_TIMEOUT` seconds, no
    retry). A plain request: huggingface_hub's own first call may spend 3 s more fetching its agent
    list from a silent endpoint. Raises WeightsUnavailable when the hub cannot be reached or refuses."""
    headers = {"User-Agent": "sfd-basicsr", "Accept-Encoding": "identity"}
    try:
        from huggingface_hub import get_token

        token = get_token()  # HF_TOKEN or the saved login; no request
    except ImportError:
        token = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers, method="HEAD")
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=CONNECT_TIMEOUT):
            return True
    except urllib.error.HTTPError as err:
        if 300 <= err.code < 400:
            return True
        code = err.headers.get("X-Error-Code", "")
        if err.code == 404 and code == "EntryNotFound":
            return False
        raise WeightsUnavailable(
            f"{key}: {what} are not in {where} and {url} answered {err.code} {code or err.reason}; {supply}"
        ) from None
    except (urllib.error.URLError, OSError) as err:  # refused, DNS, timeout, proxy
        raise WeightsUnavailable(
            f"{key}: {what} are not in {where} and {url} cannot be reached "
            f"({_reason(getattr(err, 'reason', err))}); {supply}"
        ) from None


def fetch_hub_file(
    repo_id: str, filenames: list[str], key: str, what: str, supply: str, cache_dir: str | None = None
) -> str:
    """The first of ``filenames`` that ``repo_id`` has, from the hub cache or downloaded into it.

    what: the weights in words (messages); key, supply: as for :func:`fetch_url`. The hub is asked
    (HEAD, :data:`CONNECT_TIMEOUT`) which file exists before ``hf_hub_download`` fetches it, so an
    unreachable hub fails in seconds instead of entering huggingface_hub's retry loop. A downloaded file
    whose SHA-256 differs from the one the hub names it by is deleted and refused.
    """
    found = cached_hub_file(repo_id, filenames, cache_dir)
    if found:
        return found
    where = f"the Hugging Face cache {hub_cache_folder(cache_dir)}"
    switch = offline_switch()
    if switch:
        raise WeightsUnavailable(
            f"{key}: {what} ({' or '.join(filenames)} of {repo_id}) are not in {where} and downloads are off "
            f"({switch}); {supply}"
        )
    from huggingface_hub import hf_hub_download, hf_hub_url

    chosen = url = None
    for name in filenames:
        url = hf_hub_url(repo_id, name)  # HF_ENDPOINT as huggingface_hub read it
        if _probe_hub(url, key, what, where, supply):
            chosen = name
            break
    if chosen is None:
        raise WeightsUnavailable(f"{key}: {what}: {repo_id} has none of {filenames}; {supply}")
    extra = {"tqdm_class": _progress_class()} if "tqdm_class" in inspect.signature(hf_hub_download).parameters else {}
    try:
        path = hf_hub_download(
            repo_id, chosen, cache_dir=cache_dir, etag_timeout=CONNECT_TIMEOUT, library_name="sfd-basicsr", **extra
        )
    except Exception as err:
        raise WeightsUnavailable(
            f"{key}: the download of {what} from {url} failed ({_reason(err)}); nothing was kept, run again to "
            f"retry, or {supply}"
        ) from None
    _check_hub_blob(path, url, key, supply)
    return path


def _progress_class():
    """A progress bar that shows in logs too (the hub's own shows only on a terminal, so a training
    started with its output in a log file would download hundreds of MB without a sign); it still
    honours HF_HUB_DISABLE_PROGRESS_BARS."""
    from tqdm import tqdm

    try:
        from huggingface_hub.utils import are_progress_bars_disabled

        off = are_progress_bars_disabled()
    except ImportError:
        off = False

    class DownloadBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = off
            super().__init__(*args, **kwargs)

    return DownloadBar


def _check_hub_blob(path: str, url: str, key: str, supply: str) -> None:
    """The hub stores a large file under its SHA-256 (``blobs/<sha256>``): compare, and on a mismatch
    delete the blob and its snapshot link so that no later run uses it."""
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if not _SHA256.fullmatch(expected):
        return  # a small (git) file: its name is a git hash, not a SHA-256
    actual = sha256_file(blob)
    if actual == expected:
        return
    for p in (path, blob):
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)
    raise WeightsUnavailable(
        f"{key}: the file downloaded from {url} has SHA-256 {actual[:16]}..., not the {expected[:16]}... the hub "
        f"names it by; it was deleted. {supply[:1].upper()}{supply[1:]}"
    )
