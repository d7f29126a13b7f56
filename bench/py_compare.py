#!/usr/bin/env python3
"""The Python side of bench/py_compare.sh: times, best of REPEAT, in one
process after `import trestle`:

  trestle restore --all --host --quiet       the CLI, a whole process, run
                                             alternately with the next line so
                                             both see the same machine load
  trestle.restore(path)                      one pipeline pass, numpy views
  trestle.restore(path, framework="torch")   the same, torch tensors
  load_checkpoint(path).get_tensor(name)     once per tensor, as converters
                                             written for tf.train do
  trestle.convert(path, out, sync=False)     into a safetensors file

Each restore's arrays are dropped before the next, so every run gets fresh
memory, as a new process of `trestle restore` does. Prints one line each.
"""
import gc
import glob
import os
import subprocess
import sys
import time

import trestle


def best(fn, repeat, before=None):
    """Best wall time of `repeat` calls of fn; `before` runs untimed first."""
    times = []
    for _ in range(repeat):
        gc.collect()
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    path, out, repeat, cli = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    nbytes = sum(os.path.getsize(f) for f in glob.glob(path + ".data-*"))

    def line(label, secs):
        print(f"{label:<44} {secs:8.3f} s  {nbytes / secs / 1e9:6.2f} GB/s", flush=True)

    cli_t, py_t = [], []
    for _ in range(repeat):
        cli_t.append(best(lambda: subprocess.run([cli, "restore", path, "--all", "--host",
                                                  "--quiet"], check=True), 1))
        py_t.append(best(lambda: trestle.restore(path, progress=False), 1))
    line("trestle restore --all --host (process)", min(cli_t))
    line("trestle.restore (numpy)", min(py_t))
    print(f"{'  trestle.restore / trestle restore':<44} {min(py_t) / min(cli_t):8.2f} x", flush=True)
    try:
        import torch  # noqa: F401
        line("trestle.restore (torch)",
             best(lambda: trestle.restore(path, framework="torch", progress=False), repeat))
    except ImportError:
        print("trestle.restore (torch)                      n/a: torch not installed")

    def per_tensor():   # kept, as a converter keeps them, so memory is fresh
        reader = trestle.load_checkpoint(path)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    line("get_tensor per tensor (tf.train style)", best(per_tensor, repeat))
    def remove_output():   # as for the CLI: a new file each time, untimed
        if os.path.exists(out):
            os.unlink(out)
        os.sync()
    line("trestle.convert -> safetensors (no sync)",
         best(lambda: trestle.convert(path, out, sync=False), repeat, remove_output))


if __name__ == "__main__":
    main()
