"""Pretrained weights on first use, tested on the real download code against a loopback server.

The server (tests/hub_server.py) speaks the Hugging Face hub's resolve endpoints and serves plain
file URLs; every scenario runs in a fresh interpreter (tests/download_client.py) with HF_ENDPOINT,
HF_HOME and TORCH_HOME pointing at the server and a temporary folder, as a user's run would. Nothing
here reaches the internet.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
import torch
from hub_server import LoopbackServer, SilentServer, closed_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = os.path.join(ROOT, "tests", "download_client.py")
VGG19 = "vgg19-dcbb9e9d.pth"
# Variables the scenarios set themselves (the test session runs with SFD_OFFLINE=1, see conftest).
OWN_VARS = ("SFD_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE")
OWN_VARS += ("TORCH_HOME", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


@pytest.fixture(scope="module")
def tiny_clip_bytes() -> bytes:
    """Random weights of the tiny CLIP (tiny-rn) as an open_clip checkpoint file's bytes."""
    import open_clip

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(open_clip.create_model("tiny-rn").state_dict(), buf)
    return buf.getvalue()


@pytest.fixture
def server():
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_client(steps: list, home: str, endpoint: str | None, **env) -> tuple[dict, str]:
    """Run ``steps`` in a fresh interpreter; (result, stderr). ``home`` holds HF_HOME and TORCH_HOME."""
    full = {k: v for k, v in os.environ.items() if k not in OWN_VARS}
    full.update(HF_HOME=os.path.join(home, "hf"), TORCH_HOME=os.path.join(home, "torch"), OMP_NUM_THREADS="1")
    full["PYTHONPATH"] = os.pathsep.join([ROOT, full.get("PYTHONPATH", "")])
    if endpoint:
        full["HF_ENDPOINT"] = endpoint
    full.update(env)
    proc = subprocess.run(
        [sys.executable, CLIENT, json.dumps(steps)], env=full, cwd=home, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"client: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][7:]), proc.stderr


def hub_files(home: str, repo: str) -> dict[str, list[str]]:
    """Files of one repo in the hub cache: complete blobs, partial blobs, snapshot entries."""
    base = os.path.join(home, "hf", "hub", f"models--{repo.replace('/', '--')}")
    blobs = glob.glob(os.path.join(base, "blobs", "*"))
    return {
        "blobs": [b for b in blobs if not b.endswith(".incomplete")],
        "partial": [b for b in blobs if b.endswith(".incomplete")],
        "snapshots": glob.glob(os.path.join(base, "snapshots", "*", "*")),
    }


def assert_one_line_error(step: dict, *words: str) -> None:
    assert not step["ok"], step
    assert step["file_not_found"], step  # CLIPWeightsNotFound / WeightsUnavailable are FileNotFoundErrors
    assert "\n" not in step["error"], step["error"]
    for word in words:
        assert word in step["error"], (word, step["error"])


def test_tag_downloads_on_first_use_then_comes_from_the_cache(server, tiny_clip_bytes, tmp_path):
    repo = "sfd-test/tiny-rn-loopback"
    server.serve_hub_file(repo, "open_clip_pytorch_model.bin", tiny_clip_bytes)  # no .safetensors: the probe falls back
    server.serve_hub_file("other-lib/model", "weights.bin", b"another library's file")
    trunk = b"pretend torchvision weights"
    trunk_name = f"trunk-{sha256(trunk)[:8]}.pth"  # torchvision's naming: the SHA-256 prefix in the name
    server.serve_file(f"/models/{trunk_name}", trunk)
    url_step = ["url", [server.url + "/models/", trunk_name]]
    home = str(tmp_path)

    steps = [["disc", "loopback"], ["hub_other", ["other-lib/model", "weights.bin"]], url_step]
    first, err = run_client(steps, home, server.url)
    disc, other, url = first["steps"]
    assert disc["ok"], disc
    assert disc["clip_pretrained"] == "loopback"  # provenance: the tag, the resolved file, its SHA-256
    assert disc["clip_weights_file"].startswith(os.path.join(home, "hf", "hub", "models--sfd-test--tiny-rn-loopback"))
    assert disc["clip_weights_sha256"] == sha256(tiny_clip_bytes)
    assert disc["clip_weights_size"] == len(tiny_clip_bytes)
    assert "open_clip_pytorch_model.bin" in err and "100%" in err  # the progress bar, also without a terminal
    assert server.count(repo, "GET") == 1
    assert server.count(f"{repo}/resolve/main/open_clip_model.safetensors", "HEAD") == 1  # asked first, as open_clip
    # Another library in the same process still downloads (the plugin no longer sets HF_HUB_OFFLINE).
    assert other["ok"], other
    assert other["sha256"] == sha256(b"another library's file")
    # A file at a URL: into torch hub's checkpoints folder, hash prefix checked, with progress.
    assert url["ok"], url
    assert url["path"] == os.path.join(home, "torch", "hub", "checkpoints", trunk_name)
    assert open(url["path"], "rb").read() == trunk and trunk_name in err
    assert first["environ_changed"] == []

    server.requests.clear()
    vgg = os.path.join(home, "torch", "hub", "checkpoints", VGG19)
    with open(vgg, "wb") as f:  # as torchvision (or a user) left it there
        f.write(b"VGG19")
    steps = [["disc", "loopback"], ["iqa", "loopback"], url_step, ["vgg", server.url + "/models/"]]
    second, _ = run_client(steps, home, server.url)
    assert all(s["ok"] for s in second["steps"]), second
    assert second["steps"][0]["clip_weights_sha256"] == sha256(tiny_clip_bytes)
    assert 0.0 <= second["steps"][1]["q"] <= 1.0
    assert second["steps"][2]["path"] == url["path"] and second["steps"][3]["path"] == vgg
    assert server.requests == []  # a new run: from the caches, without a single request
    assert second["environ_changed"] == []


def test_damaged_downloads_are_refused_and_nothing_is_kept(server, tiny_clip_bytes, tmp_path):
    home = str(tmp_path)
    half = len(tiny_clip_bytes) // 2
    server.serve_hub_file(
        "sfd-test/tiny-rn-badhash", "open_clip_model.safetensors", tiny_clip_bytes, etag=sha256(b"other")
    )
    cut = {"drop_after": half, "dead_after_drop": True}  # half the file, then the server is gone
    server.serve_hub_file("sfd-test/tiny-rn-dropped", "open_clip_pytorch_model.bin", tiny_clip_bytes, **cut)
    resumed = server.serve_hub_file(  # half the file, then the server answers again
        "sfd-test/tiny-rn-resumed", "open_clip_pytorch_model.bin", tiny_clip_bytes, drop_after=half
    )
    good_vgg = b"pretend VGG19 weights"
    server.serve_file("/models/vgg19-0000aaaa.pth", good_vgg)  # name promises another hash
    server.serve_file("/models/cut-" + sha256(good_vgg)[:8] + ".pth", good_vgg, drop_after=5)
    steps = [
        ["disc", "badhash"],
        ["disc", "dropped"],
        ["disc", "resumed"],
        ["url", [server.url + "/models/", "vgg19-0000aaaa.pth"]],
        ["url", [server.url + "/models/", "cut-" + sha256(good_vgg)[:8] + ".pth"]],
    ]
    result, _ = run_client(steps, home, server.url)
    badhash, cut_hub, resumed_hub, badhash_url, cut_url = result["steps"]
    assert_one_line_error(badhash, "clip_pretrained:", "SHA-256", "deleted", "sfd-test/tiny-rn-badhash")
    assert hub_files(home, "sfd-test/tiny-rn-badhash") == {"blobs": [], "partial": [], "snapshots": []}
    assert_one_line_error(cut_hub, "clip_pretrained:", "failed", "tiny-rn-dropped", "nothing was kept", "`clip_pretr")
    assert hub_files(home, "sfd-test/tiny-rn-dropped") == {"blobs": [], "partial": [], "snapshots": []}
    # A connection dropped while the server still answers: the hub tries again (with a Range request
    # from the last whole 10 MB chunk it holds, so here from the start) and the whole file is verified.
    assert resumed_hub["ok"], resumed_hub
    assert resumed_hub["clip_weights_sha256"] == sha256(tiny_clip_bytes)
    assert server.count(resumed, "GET") == 2
    assert_one_line_error(badhash_url, "test.key:", "SHA-256", "0000aaaa", "deleted", "Supply it by hand")
    assert_one_line_error(cut_url, "test.key:", "broke off", "nothing was kept", "supply it by hand")
    assert os.listdir(os.path.join(home, "torch", "hub", "checkpoints")) == [".locks"]  # no file, no partial file
    assert result["environ_changed"] == []


@pytest.mark.parametrize("switch", ["SFD_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_switch_makes_no_request(switch, server, tiny_clip_bytes, tmp_path):
    server.serve_hub_file("sfd-test/tiny-rn-loopback", "open_clip_pytorch_model.bin", tiny_clip_bytes)
    server.serve_file(f"/models/{VGG19}", b"never fetched")
    steps = [["disc", "loopback"], ["vgg", server.url + "/models/"], ["resolve", ["RN50", "openai"]]]
    result, _ = run_client(steps, str(tmp_path), server.url, **{switch: "1"})
    tagged, vgg, rn50 = result["steps"]
    assert_one_line_error(tagged, "clip_pretrained:", "downloads are off", f"{switch}=1", "`clip_pretrained: /path")
    assert_one_line_error(vgg, "perceptual_opt:", VGG19, "downloads are off", f"{switch}=1", "vgg_weights")
    assert_one_line_error(rn50, "RN50/openai", "timm/resnet50_clip.openai", "open_clip_model.safetensors")
    assert all(s["seconds"] < 10 for s in result["steps"]), result  # no network wait at all
    assert server.requests == []
    assert result["environ_changed"] == []


def test_unreachable_servers_fail_in_one_attempt(tmp_path):
    """A hub that accepts connections and never answers costs one attempt of CONNECT_TIMEOUT seconds,
    not the hub's retry loop (10 s, then 60 s); a refused URL fails at once."""
    silent = SilentServer().start()
    try:
        port = closed_port()
        steps = [["resolve", ["tiny-rn", "loopback"]], ["url", [f"http://127.0.0.1:{port}/models/", VGG19]]]
        result, _ = run_client(steps, str(tmp_path), silent.url)
        hub, url = result["steps"]
        assert_one_line_error(hub, "clip_pretrained:", "cannot be reached", "sfd-test/tiny-rn-loopback")
        asked = [line for line in silent.request_lines if "/resolve/" in line]  # huggingface_hub may also ask
        assert len(asked) == 1, f"{silent.request_lines} in {hub['seconds']} s"  # for its agent list, once a day
        assert_one_line_error(url, "test.key:", "cannot be reached", f"127.0.0.1:{port}", "supply it by hand")
    finally:
        silent.stop()


def test_plugin_leaves_os_environ_untouched(tiny_clip_files, tmp_path):
    """In this process too: CLIP from a file and a tag (offline error), SFD-IQA, the VGG lookup."""
    from sfd_arch.clip_backbone import CLIPWeightsNotFound, resolve_clip_weights
    from sfd_arch.sfd_discriminator_arch import SFDDiscriminator
    from sfd_metric.sfd_iqa import SFDIQA
    from sfd_utils.photos import load_photo

    before = dict(os.environ)
    disc = SFDDiscriminator(clip_model="tiny-rn", clip_pretrained=tiny_clip_files["tiny-rn"], feat_mid_channels=8)
    torch.save(disc.state_dict(), tmp_path / "net_d.pth")
    SFDIQA.from_checkpoint(str(tmp_path / "net_d.pth"), tile=64, device="cpu").score(load_photo("chelsea")[:96, :96])
    with pytest.raises(CLIPWeightsNotFound, match="downloads are off"):
        resolve_clip_weights("RN50", "openai", cache_dir=str(tmp_path))
    assert dict(os.environ) == before


def rn50_safetensors(path: str) -> bytes:
    """Random weights in the real open_clip RN50 layout (fp16, about 200 MB), built without
    initialising the network (meta device)."""
    import open_clip
    from safetensors.torch import save_file

    cfg = open_clip.get_model_config("RN50")
    with torch.device("meta"):
        model = open_clip.model.CLIP(**cfg, quick_gelu=True)
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for key, meta in model.state_dict().items():
        if not meta.is_floating_point():
            tensors[key] = torch.zeros(meta.shape, dtype=meta.dtype)
        elif key.endswith("running_var"):
            tensors[key] = torch.ones(meta.shape, dtype=torch.float16)
        else:
            tensors[key] = (torch.randn(meta.shape, generator=gen) * 0.02).to(torch.float16)
    save_file(tensors, path)
    with open(path, "rb") as f:
        return f.read()


def test_rrdb_x4_recipe_discriminator_downloads_openai_rn50(server, tmp_path):
    """Done-when of issue 22: the RRDB x4 recipe's network_d (RN50, clip_pretrained: openai) builds from a
    fresh cache through the loopback hub, with progress; a second build makes no request."""
    body = rn50_safetensors(str(tmp_path / "served.safetensors"))
    server.serve_hub_file("timm/resnet50_clip.openai", "open_clip_model.safetensors", body)
    recipe = os.path.join(ROOT, "options", "train_SFD_RRDB_x4.yml")
    home = str(tmp_path / "user")
    os.makedirs(home)

    first, err = run_client([["rn50_recipe", recipe]], home, server.url)
    step = first["steps"][0]
    assert step["ok"], step
    assert step["clip_model"] == "RN50" and step["clip_pretrained"] == "openai"
    assert step["clip_weights_file"].endswith("open_clip_model.safetensors")
    assert step["clip_weights_sha256"] == sha256(body)
    assert "open_clip_model.safetensors" in err and "100%" in err
    assert server.count("timm/resnet50_clip.openai", "GET") == 1

    server.requests.clear()
    second, _ = run_client([["rn50_recipe", recipe]], home, server.url)
    assert second["steps"][0]["ok"] and second["steps"][0]["clip_weights_sha256"] == sha256(body)
    assert server.requests == []
    assert first["environ_changed"] == [] and second["environ_changed"] == []


def test_startup_checks_fetch_or_name_the_vgg_file(tmp_path, monkeypatch):
    """Offline (the test session's SFD_OFFLINE=1), a recipe whose VGG19 is not here stops at start-up
    naming the key, the file and the switch: SFDPerceptualLoss and BasicSR's own PerceptualLoss."""
    from sfd_utils.downloads import WeightsUnavailable
    from sfd_utils.options_check import check_options

    monkeypatch.chdir(tmp_path)  # no experiments/pretrained_models/ here
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for loss in ("SFDPerceptualLoss", "PerceptualLoss"):
        opt = {"train": {"perceptual_opt": {"type": loss, "vgg_type": "vgg19", "layer_weights": {"conv5_4": 1}}}}
        with pytest.raises(WeightsUnavailable) as err:
            check_options(opt, datasets=False)
        msg = str(err.value)
        assert msg.startswith(("perceptual_opt:", "train.perceptual_opt:")) and "SFD_OFFLINE=1" in msg, msg
        assert os.path.join(str(tmp_path), "hub", "checkpoints", VGG19) in msg and "\n" not in msg


def test_demo_never_downloads_unless_asked(tmp_path, monkeypatch):
    """`make demo` uses RN50/openai only from the cache (no request), else the stand-in; with
    SFD_CLIP_WEIGHTS=openai it fetches the tag like a recipe."""
    import sfd_arch.clip_weights as clip_weights
    from sfd_tools.demo import run as demo

    fetched = []
    monkeypatch.delenv("SFD_OFFLINE")  # as on a user's machine with internet
    monkeypatch.delenv("SFD_CLIP_WEIGHTS", raising=False)
    monkeypatch.setattr(clip_weights, "cached_hub_file", lambda *a, **k: None)  # nothing cached
    monkeypatch.setattr(clip_weights, "fetch_hub_file", lambda *a, **k: fetched.append(a[0]) or str(tmp_path / "w"))
    monkeypatch.setattr(demo, "write_random_calibrated_rn50", lambda path: path)
    assert demo.choose_clip_weights(str(tmp_path)) == (demo.RANDOM_CLIP_FILE, True)
    assert fetched == []
    monkeypatch.setenv("SFD_CLIP_WEIGHTS", "openai")
    assert demo.choose_clip_weights(str(tmp_path)) == ("openai", False)
    assert fetched == ["timm/resnet50_clip.openai"]
