"""Finding a handler's hooks and a server class's commands, once per type,
for both faces.

aiosmtpd ran ``inspect.getmembers``/``dir`` on every connection (about
170 microseconds each).  The names only depend on the types, so they are
computed once per class and bound per connection with plain ``getattr``.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Dict, Tuple

__all__ = ["bind_prefixed", "class_functions", "ehlo_hook_version"]

# (class, prefix) -> (shape of the class's MRO when computed, names).
_names_cache: Dict[Tuple[type, str], Tuple[Tuple[int, ...], Tuple[str, ...]]] = {}
# (class, prefix) -> (the names tuple it was built from, table).
_tables: Dict[Tuple[type, str], Tuple[Tuple[str, ...], Dict[str, Any]]] = {}
_method_arity: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def _prefixed_names(cls: type, prefix: str) -> Tuple[str, ...]:
    # A hook added to a class after its first connection (mock.patch with
    # create=True, say) changes the size of a class __dict__ in the MRO;
    # that invalidates the cached names, for ~2 microseconds a lookup.
    shape = tuple(len(vars(klass)) for klass in cls.__mro__)
    key = (cls, prefix)
    cached = _names_cache.get(key)
    if cached is not None and cached[0] == shape:
        return cached[1]
    names = tuple(name for name in dir(cls) if name.startswith(prefix))
    _names_cache[key] = (shape, names)
    return names


def class_functions(cls: type, prefix: str) -> Dict[str, Any]:
    """``{name-without-prefix: function}`` for ``cls``'s callables named with
    ``prefix``: a table shared by every instance, so a connection carries no
    dict of bound methods (1.6 KiB each for the 15 SMTP commands)."""
    names = _prefixed_names(cls, prefix)
    cached = _tables.get((cls, prefix))
    if cached is not None and cached[0] is names:
        return cached[1]
    table = {}
    for name in names:
        value = getattr(cls, name, None)
        if callable(value):
            table[name[len(prefix):]] = value
    _tables[(cls, prefix)] = (names, table)
    return table


def bind_prefixed(obj: Any, prefix: str, instance_too: bool = True) -> Dict[str, Any]:
    """``{name-without-prefix: attribute}`` for ``obj``'s callable attributes
    whose names start with ``prefix``, including ones set on the instance
    unless ``instance_too`` is false."""
    names = _prefixed_names(type(obj), prefix)
    instance_vars = getattr(obj, "__dict__", None) if instance_too else None
    if instance_vars:
        names = names + tuple(n for n in instance_vars if n.startswith(prefix) and n not in names)
    bound: Dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name, None)
        if callable(value):
            bound[name[len(prefix):]] = value
    return bound


def ehlo_hook_version(hook: Callable[..., Any]) -> str:
    """"new" for the 5-argument ``handle_EHLO``, "old" for the 4-argument one."""
    function = getattr(hook, "__func__", None)
    arity = None if function is None else _method_arity.get(function)
    if arity is None:
        arity = len(inspect.signature(hook).parameters)
        if function is not None:
            # Cached only for methods: the same function bound or not has
            # a different arity.  Weak, so per-instance functions can go.
            _method_arity[function] = arity
    if arity == 5:
        return "new"
    if arity == 4:
        return "old"
    raise RuntimeError("Unsupported EHLO Hook")
