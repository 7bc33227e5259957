"""The compiled engine's weak references: ``scripts/native_setup.py`` mends mypyc's
weak-reference slots (traverse skips them, clear calls ``PyObject_ClearWeakRefs``), so a weak
reference to a compiled object whose base is interpreted dies with it, callback and all,
instead of reading freed memory."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

_SETUP = Path(__file__).resolve().parents[2] / "scripts" / "native_setup.py"
_spec = importlib.util.spec_from_file_location("native_setup", _SETUP)
assert _spec is not None
assert _spec.loader is not None
native_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native_setup)

GENERATED = """\
static int
x___Handler_traverse(x___HandlerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->_conf);
    Py_VISIT(*((PyObject **)((char *)self + sizeof(x___HandlerObject))));
    Py_VISIT(*((PyObject **)((char *)self + sizeof(PyObject *) + sizeof(x___HandlerObject))));
    return 0;
}
static int
x___Handler_clear(x___HandlerObject *self)
{
    Py_CLEAR(self->_conf);
    Py_CLEAR(*((PyObject **)((char *)self + sizeof(x___HandlerObject))));
    Py_CLEAR(*((PyObject **)((char *)self + sizeof(PyObject *) + sizeof(x___HandlerObject))));
    return 0;
}
"""


def test_the_mend_skips_the_slot_in_traverse_and_clears_it_as_weak_references() -> None:
    mended, count = native_setup.fix_weakref_slots(GENERATED)
    assert count == 2
    slot = "*((PyObject **)((char *)self + sizeof(PyObject *) + sizeof(x___HandlerObject)))"
    assert f"Py_VISIT({slot})" not in mended
    assert f"Py_CLEAR({slot})" not in mended
    assert f"if ({slot} != NULL) PyObject_ClearWeakRefs((PyObject *)self);" in mended
    # the attributes and the __dict__ slot are visited and cleared as before
    dict_slot = "*((PyObject **)((char *)self + sizeof(x___HandlerObject)))"
    assert f"Py_VISIT({dict_slot});" in mended
    assert f"Py_CLEAR({dict_slot});" in mended
    assert "Py_CLEAR(self->_conf);" in mended
    assert native_setup.fix_weakref_slots(mended) == (mended, 0)  # nothing left to mend


PROBE = textwrap.dedent(
    """
    import gc, weakref
    import meshgate._native as native
    from meshgate.proxy.filters.testing import make_handler
    from meshgate.plugins._auth import SecretIndex
    died = []
    things = [make_handler("key-auth"), make_handler("rate-limiting", {"second": 5}),
              make_handler("prometheus")]
    things.append(SecretIndex())
    refs = [weakref.ref(t, died.append) for t in things]
    held = weakref.WeakSet(things)
    del things
    gc.collect()
    assert all(r() is None for r in refs), "a weak reference outlived its object"
    assert len(died) == len(refs) and len(held) == 0
    print(native.engine, len(died))
    """
)


def test_weak_references_to_compiled_objects_die_with_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MESHGATE_PURE_PYTHON"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr  # a crash (-11) or an assertion above
    engine, died = done.stdout.split()
    assert died == "4"
    assert engine in ("compiled", "interpreted")
