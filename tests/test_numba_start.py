"""`import gradc` starts Numba's typing and target contexts in a background thread (gradc/jit.py,
initialise_numba_in_background): the first kernel call of a process then does not wait for them, a fork waits
for the thread, and GRADC_PRELOAD=0 turns it off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_REGISTRIES = textwrap.dedent("""
    import json
    import gradc, gradc.jit
    started = gradc.jit._numba_ready is not None
    if started:
        gradc.jit._numba_ready.join()
    from numba.core.registry import cpu_target
    print(json.dumps({"started": started, "typing": len(cpu_target.typing_context._registries),
                      "target": len(cpu_target.target_context._registries)}))
""")


def _run(script: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_initialises_numba_in_the_background_unless_turned_off():
    on = _run(_REGISTRIES)
    off = _run(_REGISTRIES, GRADC_PRELOAD="0")
    assert on["started"] and on["typing"] > 0 and on["target"] > 0
    assert not off["started"] and off["typing"] == off["target"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_fork_right_after_import_compiles_in_the_child():
    # the fork waits for the thread: a child forked while it held Numba's compiler lock would hang at its
    # first compile
    script = textwrap.dedent("""
        import json, os
        import gradc
        pid = os.fork()
        if pid == 0:
            import numba
            os._exit(0 if numba.njit(lambda v: v + 1)(41) == 42 else 1)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"child": os.waitstatus_to_exitcode(status)}))
    """)
    assert _run(script) == {"child": 0}
