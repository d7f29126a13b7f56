"""Print where `cmake --install` puts the trestle package for PREFIX, as a
path relative to PREFIX: the directory this interpreter itself imports
packages from for that prefix, so that the install is importable.

    python3 -E -s cmake/trestle_python_dir.py PREFIX

Run at install time (python/CMakeLists.txt), with the prefix the install
really uses (`--prefix` included); DESTDIR is not part of it. Debian's
Python imports /usr/local/lib/python3.X/dist-packages and
/usr/lib/python3/dist-packages, and its default sysconfig scheme adds a
"local/" that is right only for PREFIX=/usr (issue 25: `--prefix
/usr/local` installed into /usr/local/local/...). So the site directories
the interpreter lists under PREFIX come first (the shortest, then the
first listed); a prefix the interpreter does not know gets the standard
lib/pythonX.Y/site-packages, for PYTHONPATH.
"""
import os
import site
import sys
import sysconfig


def main():
    prefix = os.path.abspath(sys.argv[1]).rstrip("/") or "/"
    under = prefix.rstrip("/") + "/"
    known = list(site.getsitepackages()) + list(sys.path)
    found = [os.path.relpath(os.path.abspath(p), prefix) for p in known
             if os.path.basename(p) in ("site-packages", "dist-packages")
             and os.path.abspath(p).startswith(under)]
    if found:
        print(min(found, key=lambda rel: rel.count("/")))
        return
    fallback = sysconfig.get_path("platlib", "posix_prefix",
                                  vars={"base": prefix, "platbase": prefix})
    print(os.path.relpath(fallback, prefix))


if __name__ == "__main__":
    main()
