"""The setuptools step of ``make native`` (run by ``scripts/build_native.py`` in ``src``).

    python native_setup.py PLAN.json

The plan names the modules for mypyc, the hand-written C extensions, the shared library's
group name and the build folders. mypyc writes its C first; ``fix_weakref_slots`` then mends
it before anything is compiled.

Why the mend (mypy 2.4.1): a compiled class whose base is an interpreted class (every bundled
plugin ``Handler``, whose base ``PluginHandler`` stays interpreted for third-party plugins; a
``Generic`` class; a closure object) gets a ``__dict__`` and a ``__weakref__`` slot, and mypyc
treats the weak-reference list like an owned reference: its traverse visits it, its clear
``Py_CLEAR``s it, and nothing calls ``PyObject_ClearWeakRefs``. A weak reference to such an
object then outlives it and reads freed memory (a crash), and the collector counts a reference
the object does not own. The mend makes traverse skip the slot and clear hand it to
``PyObject_ClearWeakRefs`` (what CPython's own dealloc does), so that weak references die with
their object and their callbacks run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# the weak-reference slot of a class with a __dict__: right after the dict, after the struct
_SLOT = r"\*\(\(PyObject \*\*\)\(\(char \*\)self \+ sizeof\(PyObject \*\) \+ sizeof\((\w+)\)\)\)"
_VISIT = re.compile(r"Py_VISIT\(" + _SLOT + r"\);")
_CLEAR = re.compile(r"Py_CLEAR\(" + _SLOT + r"\);")


def fix_weakref_slots(code: str) -> tuple[str, int]:
    """``code`` with every weak-reference slot left out of traverse and cleared as weak
    references are; also how many places changed."""
    code, visits = _VISIT.subn("/* the weak-reference list is not a reference */", code)

    def clear(found: re.Match[str]) -> str:
        slot = f"*((PyObject **)((char *)self + sizeof(PyObject *) + sizeof({found[1]})))"
        return f"if ({slot} != NULL) PyObject_ClearWeakRefs((PyObject *)self);"

    code, clears = _CLEAR.subn(clear, code)
    return code, visits + clears


def main(plan_path: str) -> int:
    from mypyc.build import mypycify
    from setuptools import Extension, setup  # type: ignore[import-untyped]

    plan = json.loads(Path(plan_path).read_text())
    extensions = mypycify(
        ["--config-file", plan["config"], *plan["modules"]],
        opt_level="3",
        group_name=plan["group"],
        target_dir=plan["c_dir"],
    )
    mended = 0
    for source in Path(plan["c_dir"]).rglob("*.c"):
        code, count = fix_weakref_slots(source.read_text())
        if count:
            source.write_text(code)
            mended += count
    print(f"weak-reference slots mended: {mended}")
    extensions += [Extension(name, [c], extra_compile_args=["-O2"]) for name, c in plan["c"]]
    build = ["build_ext", "--inplace", "--build-temp", plan["tmp_dir"]]
    setup(
        name="meshgate-native",
        ext_modules=extensions,
        script_args=[*build, "--build-lib", plan["lib_dir"]],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
