"""The tiers of src/ (README, "Source layout"), checked from the #include
lines: a folder uses only its own tier and the tiers below it, and no two
folders use each other.

The order settled on, lowest first:

    1  core    io, tls, log, config, registry, listener, resolve, util ...
    2  spool   the journal with group commit, state files
    2  maildir maildrops on disk (Maildir), their usage
    3  queue   the qmgr: index per customer, bounces, DSNs
    4  mta, smtp, link, pop3, auth, ctl    protocols and agents
    5  src/kickmaild.c                      wires everything

A public header lives in include/FOLDER/ and is included as "FOLDER/x.h",
so every #include names the folder it reaches into; a header private to a
folder lives in that folder and is included by its bare name from there.
"""
import os
import re
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIERS = {"core": 1, "spool": 2, "maildir": 2, "queue": 3,
         "mta": 4, "smtp": 4, "link": 4, "pop3": 4, "auth": 4, "ctl": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    """(folder, path) of every C file of the daemon and kickq: src/F/*.[ch]
    and include/F/*.h belong to F; src/kickmaild.c to the top."""
    out = []
    for top, tag in (("src", None), ("include", None)):
        base = os.path.join(ROOT, top)
        for folder in sorted(os.listdir(base)):
            p = os.path.join(base, folder)
            if os.path.isdir(p):
                out += [(folder, os.path.join(p, f)) for f in sorted(os.listdir(p))
                        if f.endswith((".c", ".h"))]
            elif folder.endswith((".c", ".h")):
                out.append(("(top)" if top == "src" else "(include)", p))
    return out


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return INCLUDE.findall(f.read())


def edges():
    """{(from folder, to folder): [where]} for every include that crosses folders."""
    found = {}
    for folder, path in sources():
        here = os.path.dirname(path)
        for inc in includes(path):
            if "/" in inc:
                target = inc.split("/")[0]
            elif os.path.exists(os.path.join(here, inc)):
                target = folder             # a private header beside the file
            else:
                target = "(unknown)"
            if target != folder:
                found.setdefault((folder, target), []).append(
                    "%s: \"%s\"" % (os.path.relpath(path, ROOT), inc))
    return found


def test_every_folder_has_a_tier():
    folders = {f for f, _ in sources()} - {"(top)", "(include)"}
    assert folders <= set(TIERS), "give these folders a tier here and in README: %s" % (
        sorted(folders - set(TIERS)))
    loose = [os.path.relpath(p, ROOT) for f, p in sources() if f == "(include)"]
    assert not loose, "public headers belong in include/FOLDER/: %s" % loose


def test_includes_name_an_existing_header():
    bad = []
    for folder, path in sources():
        here = os.path.dirname(path)
        for inc in includes(path):
            if not (os.path.exists(os.path.join(ROOT, "include", inc)) or
                    os.path.exists(os.path.join(here, inc))):
                bad.append("%s: \"%s\"" % (os.path.relpath(path, ROOT), inc))
    assert not bad, "includes that are neither include/FOLDER/x.h nor beside the file: %s" % bad


def test_no_folder_includes_a_folder_above_it():
    up = []
    for (a, b), where in sorted(edges().items()):
        if a == "(top)":
            continue
        if b not in TIERS or TIERS[b] > TIERS[a]:
            up += where
    assert not up, "includes that run up a tier:\n" + "\n".join(up)


def test_no_two_folders_include_each_other():
    e = edges()
    pairs = sorted({tuple(sorted(k)) for k in e if (k[1], k[0]) in e})
    assert not pairs, "folders that include each other: %s\n%s" % (
        pairs, "\n".join(w for a, b in pairs for w in e[(a, b)] + e[(b, a)]))


@pytest.mark.parametrize("text,ok", [
    ('#include "core/log.h"\n', True),
    ('#include "queue/qmgr.h"\n', False),
])
def test_the_check_itself_sees_an_upward_include(tmp_path, monkeypatch, text, ok):
    """A spool file including a queue header must be caught (the check can fail)."""
    src = tmp_path / "src" / "spool"
    src.mkdir(parents=True)
    (src / "x.c").write_text(text)
    for f in ("core/log.h", "queue/qmgr.h"):
        p = tmp_path / "include" / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    if ok:
        test_no_folder_includes_a_folder_above_it()
    else:
        with pytest.raises(AssertionError, match="spool/x.c"):
            test_no_folder_includes_a_folder_above_it()
