"""The README's examples, run as written (issue 25: its own Python example
failed).

Every ```python block of README.md runs, in README order, in one scratch
directory where this module has written the checkpoints the examples name
with trestle's bundle writer: run/ckpt-3 (a small model under model/, an
optimizer slot, a step, a state file) and bert_tf/bert_model.ckpt (Google's
BERT naming, with Adam slots and pre-training heads). A ```sh block runs
(bash, the built CLI first on PATH) when the line before it is
`<!-- readme-test: run -->`. `<!-- readme-test: skip REASON -->` skips a
block; `<!-- readme-test: gpu -->` runs it only where torch sees a GPU.

After the blocks, the BERT recipe is checked beyond what its own asserts
say: the CLI and Python conversions made the same file, and every
parameter of the loaded module is its checkpoint tensor, byte for byte,
kernels transposed.
"""
import hashlib
import os
import re
import subprocess

import numpy as np
import pytest

import trestle
from trestle import _trestle
from conftest import CLI, SOURCE_DIR, has_cuda_device

README = os.path.join(SOURCE_DIR, "README.md")
MARK = re.compile(r"<!-- readme-test: (run|gpu|skip)(?: (.*))? -->$")
# The BERT the README's module is built for: hidden, intermediate, layers,
# vocab, positions, token types.
H, I, L, V, P, T = 8, 32, 2, 64, 16, 2


def readme_blocks():
    """[(line, language, mark, reason, source)] of README's fenced blocks
    that are python, or sh marked to run."""
    lines = open(README, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"```(\w+)$", lines[i])
        if not fence:
            i += 1
            continue
        start, lang = i, fence.group(1)
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = MARK.match(lines[k].strip()) if k >= 0 else None
        kind = mark.group(1) if mark else None
        if lang == "python" or (lang == "sh" and kind == "run"):
            blocks.append((start + 1, lang, kind, mark.group(2) if mark else None,
                           "\n".join(lines[start + 1:j]) + "\n"))
        i = j + 1
    return blocks


BLOCKS = readme_blocks()


def write(prefix, tensors, shards=1):
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    w = _trestle.Writer(prefix, num_shards=shards)
    for i, (name, value) in enumerate(tensors.items()):
        w.add(name, trestle.as_dtype(value.dtype).as_datatype_enum, value.shape,
              np.ascontiguousarray(value).tobytes(), shard=i % shards)
    w.finish()


def bert_tensors(rng):
    """Google's BERT checkpoint names and shapes (run_pretraining.py), small."""
    t = {}

    def dense(scope, n_in, n_out):
        t[f"{scope}/kernel"] = rng.standard_normal((n_in, n_out))
        t[f"{scope}/bias"] = rng.standard_normal(n_out)

    def norm(scope):
        t[f"{scope}/gamma"] = rng.standard_normal(H)
        t[f"{scope}/beta"] = rng.standard_normal(H)

    t["bert/embeddings/word_embeddings"] = rng.standard_normal((V, H))
    t["bert/embeddings/position_embeddings"] = rng.standard_normal((P, H))
    t["bert/embeddings/token_type_embeddings"] = rng.standard_normal((T, H))
    norm("bert/embeddings/LayerNorm")
    for n in range(L):
        layer = f"bert/encoder/layer_{n}"
        for part in ("query", "key", "value"):
            dense(f"{layer}/attention/self/{part}", H, H)
        dense(f"{layer}/attention/output/dense", H, H)
        norm(f"{layer}/attention/output/LayerNorm")
        dense(f"{layer}/intermediate/dense", H, I)
        dense(f"{layer}/output/dense", I, H)
        norm(f"{layer}/output/LayerNorm")
    dense("bert/pooler/dense", H, H)
    dense("cls/predictions/transform/dense", H, H)
    t["cls/predictions/output_bias"] = rng.standard_normal(V)
    t["cls/seq_relationship/output_weights"] = rng.standard_normal((2, H))
    t = {k: v.astype(np.float32) for k, v in t.items()}
    for name in list(t):
        t[f"{name}/adam_m"] = np.zeros_like(t[name])
        t[f"{name}/adam_v"] = np.ones_like(t[name])
    t["global_step"] = np.array(1000, dtype=np.int64)
    return t


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The directory the README's examples run in, with their checkpoints,
    and what each block left: {"hashes": [(line, sha256 of bert.safetensors)],
    "namespaces": {line: globals of a python block}}."""
    d = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(25)
    write(str(d / "run" / "ckpt-3"), {
        "model/dense/kernel": rng.standard_normal((4, 3)).astype(np.float32),
        "model/dense/bias": rng.standard_normal(3).astype(np.float32),
        "model/dense/kernel/.OPTIMIZER_SLOT/optimizer/m": np.zeros((4, 3), np.float32),
        "global_step": np.array(3, dtype=np.int64)}, shards=2)
    (d / "run" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n'
                                          'all_model_checkpoint_paths: "ckpt-3"\n')
    write(str(d / "bert_tf" / "bert_model.ckpt"), bert_tensors(rng))
    return {"dir": d, "hashes": [], "namespaces": {}}


def test_readme_has_the_examples_this_suite_expects():
    langs = [(lang, kind) for _, lang, kind, _, _ in BLOCKS]
    assert langs.count(("sh", "run")) >= 1 and langs.count(("python", None)) >= 6


@pytest.mark.parametrize("line,lang,kind,reason,source", BLOCKS,
                         ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_block_runs_as_written(workdir, monkeypatch, line, lang, kind, reason, source):
    if kind == "skip":
        pytest.skip(reason or "marked skip in README.md")
    if kind == "gpu" and not has_cuda_device():
        pytest.skip("needs a CUDA device visible to torch")
    monkeypatch.chdir(workdir["dir"])
    if lang == "sh":
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(CLI)) + os.pathsep +
                   os.environ.get("PATH", ""))
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", source], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, f"README.md:{line} failed:\n{source}\n{r.stderr}"
    else:
        namespace = {"__name__": f"readme_{line}"}
        exec(compile(source, f"README.md:{line}", "exec"), namespace)
        workdir["namespaces"][line] = namespace
    out = workdir["dir"] / "bert.safetensors"
    if out.exists():
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        if not workdir["hashes"] or workdir["hashes"][-1][1] != digest:
            workdir["hashes"].append((line, digest))


def test_the_bert_recipe_loads_every_tensor_byte_for_byte(workdir):
    loaded = [ns for ns in workdir["namespaces"].values() if "bert" in ns]
    if not loaded:
        pytest.skip("the recipe's blocks did not run")
    # The CLI's file and Python's, written one after the other, are one file.
    assert len(workdir["hashes"]) == 1, workdir["hashes"]
    bert = loaded[-1]["bert"]
    reader = trestle.load_checkpoint(str(workdir["dir"] / "bert_tf"))
    params = dict(bert.state_dict())
    checked = set()
    for name in reader.get_variable_to_shape_map():
        if name.endswith(("/adam_m", "/adam_v")) or name == "global_step" or \
                name.startswith("cls/"):
            continue
        hf = name.removeprefix("bert/")
        hf = re.sub(r"layer_(\d+)", r"layer.\1", hf).replace("/", ".")
        hf = re.sub(r"(kernel|gamma)$", "weight", hf)
        hf = re.sub(r"beta$", "bias", hf)
        hf = re.sub(r"_embeddings$", "_embeddings.weight", hf)
        want = reader.get_tensor(name)
        if name.endswith("/kernel"):
            want = want.T
        got = params[hf].detach().numpy()
        assert got.shape == want.shape and got.tobytes() == np.ascontiguousarray(want).tobytes(), \
            name
        checked.add(hf)
    assert checked == set(params), set(params) ^ checked
