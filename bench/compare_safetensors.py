#!/usr/bin/env python3
"""Load the same tensors as a trestle checkpoint with safetensors and torch.

Part of bench/compare_gpu.sh (the GPU machine). Reads the tensor list of a
checkpoint from `trestle inspect PATH --json`, makes random tensors of the
same names, shapes and dtypes (equal shapes and sizes, not equal bytes),
saves them as model.safetensors and model.pt, and times, cold (page cache
dropped) and warm:

  safetensors.torch.load_file(path, device="cuda")
  torch.load(path, map_location="cuda", weights_only=True)

each ending with torch.cuda.synchronize(). `--trestle-json` adds the
results of `trestle bench PATH --device 0 --json` runs to the same table.

  python3 bench/compare_safetensors.py --inspect inspect.json --dir /tmp/cmp \
      --trestle-json warm.json --trestle-json cold.json
"""

import argparse
import json
import os
import statistics
import sys
import time

DTYPES = {  # trestle_dtype_name -> torch dtype name
    "bfloat16": "bfloat16",
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
}


def drop_cache(paths):
    """Drop the page cache of `paths`; returns a sentence saying how."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "page cache dropped with /proc/sys/vm/drop_caches"
    except OSError as e:
        reason = e.strerror
    try:
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        return f"page cache dropped with fadvise (no permission for drop_caches: {reason})"
    except OSError as e:
        return f"page cache NOT dropped ({reason}; fadvise: {e.strerror})"


def make_tensors(torch, inspect):
    """Random tensors with the checkpoint's names, shapes and dtypes."""
    out = {}
    gen = torch.Generator().manual_seed(1)
    for t in inspect["tensors"]:
        name = DTYPES.get(t["dtype"])
        if name is None or t.get("kind", "plain") != "plain":
            continue  # strings, object graph, partitioned: not model weights
        dtype = getattr(torch, name)
        shape = tuple(t["shape"])
        if dtype.is_floating_point and dtype.itemsize >= 2:
            x = torch.empty(shape, dtype=dtype).normal_(0, 0.02, generator=gen)
        else:
            x = torch.randint(0, 2, shape, dtype=torch.uint8, generator=gen).to(dtype)
        out[t["name"]] = x.contiguous()
    return out


def time_loads(torch, load, path, repeat, cold):
    """Seconds of `repeat` loads of `path` (each synchronized), and the cache note."""
    secs, note = [], "warm (not dropped)"
    load(path)  # warm-up: CUDA context, allocator, page cache for warm runs
    torch.cuda.synchronize()
    for _ in range(repeat):
        if cold:
            note = drop_cache([path])
        torch.cuda.empty_cache()
        t0 = time.perf_counter()
        tensors = load(path)
        torch.cuda.synchronize()
        secs.append(time.perf_counter() - t0)
        del tensors
    return secs, note


def trestle_rows(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            j = json.load(f)
        total = j["stats"]["stages"]["total"]["seconds"]  # min, median, max, each
        dest = f"device {j['device']}" if j["destination"] == "device" else "host"
        rows.append({
            "what": f"trestle bench ({dest}, verify on)",
            "cache": "cold" if j["cold"] else "warm",
            "bytes": j["stats"]["bytes"],
            "best": total["min"],
            "median": total["median"],
            "note": j["cache"],
        })
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inspect", required=True, help="`trestle inspect PATH --json` output")
    ap.add_argument("--dir", required=True, help="where to write model.safetensors and model.pt")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trestle-json", action="append", default=[],
                    help="`trestle bench --json` output to add to the table (repeatable)")
    ap.add_argument("--json-out", help="also write the rows as JSON here")
    args = ap.parse_args()

    import torch
    from safetensors.torch import load_file, save_file

    if not torch.cuda.is_available():
        sys.exit("compare_safetensors.py: no CUDA device visible to torch")
    with open(args.inspect) as f:
        inspect = json.load(f)
    tensors = make_tensors(torch, inspect)
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    st_path = os.path.join(args.dir, "model.safetensors")
    pt_path = os.path.join(args.dir, "model.pt")
    save_file(tensors, st_path)
    torch.save(tensors, pt_path)
    del tensors
    print(f"wrote {len(inspect['tensors'])} tensors, {nbytes / 1e9:.2f} GB as "
          f"{st_path} and {pt_path}", file=sys.stderr)

    loaders = [
        ("safetensors.load_file(device=\"cuda\")", st_path,
         lambda p: load_file(p, device="cuda")),
        ("torch.load(map_location=\"cuda\")", pt_path,
         lambda p: torch.load(p, map_location="cuda", weights_only=True)),
    ]
    rows = trestle_rows(args.trestle_json)
    for what, path, load in loaders:
        for cold in (False, True):
            secs, note = time_loads(torch, load, path, args.repeat, cold)
            rows.append({"what": what, "cache": "cold" if cold else "warm", "bytes": nbytes,
                         "best": min(secs), "median": statistics.median(secs), "note": note})

    head = ("method", "cache", "GB", "best s", "best GB/s", "median s", "median GB/s")
    table = [head] + [
        (r["what"], r["cache"], f"{r['bytes'] / 1e9:.2f}", f"{r['best']:.3f}",
         f"{r['bytes'] / r['best'] / 1e9:.2f}", f"{r['median']:.3f}",
         f"{r['bytes'] / r['median'] / 1e9:.2f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    print()
    for note in sorted({r["note"] for r in rows if r["cache"] == "cold"}):
        print(f"cold: {note}")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
