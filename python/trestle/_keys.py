"""Naming the result's keys: ``keys=`` of restore() and convert().

Two directions of renaming exist, and they are easy to confuse:

* ``rename=`` (as TensorFlow's and the CLI's ``--rename``) maps the *names
  you ask for* (ops) to the *checkpoint keys* they are read from. It needs
  ``ops``: without them every tensor is asked for by its own key, and a
  rename would have nothing to map.
* ``keys=`` maps the names of the *result* (the restored dict's keys, the
  converted file's tensor names) to the names you want, whether or not ops
  are given. It is the CLI's ``convert --key``/``--key-regex``.

``keys`` is a callable ``name -> new name``, or a mapping whose entries are
applied in order, each to the name the entries before it left (as the
CLI's key rules, and sed): a str key ending in '/' replaces that prefix
(``{"model/": ""}`` drops it), another str key renames that exact name, and
a compiled ``re.Pattern`` key replaces every match (``re.sub``: the value
may use ``\\1`` groups, or be a callable). Each entry must match some name.
"""

import re

__all__ = ["apply_keys"]


def _apply_mapping(mapping, names):
    used = {k: False for k in mapping}
    out = []
    for name in names:
        for k, v in mapping.items():
            if isinstance(k, re.Pattern):
                new, n = k.subn(v, name)
                if n:
                    used[k] = True
                    name = new
            elif k.endswith("/"):
                if name.startswith(k):
                    used[k] = True
                    name = v + name[len(k):]
            elif name == k:
                used[k] = True
                name = v
        out.append(name)
    for k, was in used.items():
        if not was:
            shown = k.pattern if isinstance(k, re.Pattern) else k
            raise ValueError(f"keys: {shown!r} matches no tensor")
    return out


def _check_mapping(mapping):
    for k, v in mapping.items():
        if isinstance(k, re.Pattern):
            if not isinstance(v, str) and not callable(v):
                raise TypeError(f"keys: the value of pattern {k.pattern!r} must be a str or a "
                                "callable(match)")
        elif isinstance(k, str) and k:
            if not isinstance(v, str):
                raise TypeError(f"keys: the value of {k!r} must be a str")
        else:
            raise TypeError("keys: mapping keys must be non-empty str (a name, or a prefix "
                            "ending in '/') or compiled re.Pattern")


def check_keys(keys):
    """keys' type, before any file is opened."""
    if keys is None or callable(keys):
        return
    if not hasattr(keys, "items"):
        raise TypeError("keys must be a mapping or a callable(name) -> name")
    _check_mapping(keys)


def apply_keys(keys, names):
    """The new names of `names` (a list) by `keys`; a name the callable
    does not return as a str, or two names made one, raise."""
    if keys is None:
        return list(names)
    if callable(keys):
        out = []
        for name in names:
            new = keys(name)
            if not isinstance(new, str):
                raise TypeError(f"keys({name!r}) returned {type(new).__name__}, not str")
            out.append(new)
    else:
        out = _apply_mapping(keys, names)
    seen = {}
    for old, new in zip(names, out):
        if new in seen:
            raise ValueError(f"keys: tensors {seen[new]} and {old} would both be named {new}")
        seen[new] = old
    return out
