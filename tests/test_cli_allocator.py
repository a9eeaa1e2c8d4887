"""Training commands restart under tcmalloc where it is installed (detente.cli.allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from detente.cli.allocator import LIBRARY, OPT_OUT, find_tcmalloc, preload_env

LIB = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def test_preload_env_puts_tcmalloc_first_and_keeps_what_was_preloaded():
    assert preload_env({"HOME": "/h"}, LIB) == {"HOME": "/h", "LD_PRELOAD": LIB}
    assert preload_env({"LD_PRELOAD": "/x/libfoo.so"}, LIB) == {"LD_PRELOAD": f"{LIB}:/x/libfoo.so"}


@pytest.mark.parametrize("environ", [{"LD_PRELOAD": f"/opt/{LIBRARY}"}, {OPT_OUT: "system"}])
def test_preload_env_is_none_when_tcmalloc_is_preloaded_or_refused(environ):
    assert preload_env(environ, LIB) is None


PROBE = """
from detente.cli.allocator import exec_under_tcmalloc
exec_under_tcmalloc(["train", "--help"])
print("tcmalloc" in open("/proc/self/maps").read())
"""


@pytest.mark.skipif(find_tcmalloc() is None, reason=f"{LIBRARY} is not installed")
@pytest.mark.parametrize(("opt_out", "expected"), [(None, "True"), ("system", "False")])
def test_a_training_command_restarts_once_with_tcmalloc_mapped(tmp_path: Path, opt_out, expected):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", OPT_OUT)}
    if opt_out:
        env[OPT_OUT] = opt_out
    out = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.split() == [expected]  # printed once: the restart did not loop
