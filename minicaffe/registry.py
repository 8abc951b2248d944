"""Name → class registries (layers, regularizers, solvers, lr policies) with helpful errors."""
import difflib


class Registry:
    """A dict of names to classes filled by a decorator; lookups of unknown names list the
    known ones and suggest the closest."""

    def __init__(self, what):
        self.what = what
        self._items = {}

    def register(self, name):
        def deco(cls):
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.what} '{name}' registered twice "
                                 f"({self._items[name].__module__} and {cls.__module__})")
            self._items[name] = cls
            cls.registered_name = name
            return cls
        return deco

    def get(self, name):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name):
        known = sorted(self._items)
        msg = f"unknown {self.what} '{name}' (known: {', '.join(known)})"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        return msg

    def __contains__(self, name):
        return name in self._items

    def names(self):
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())


def import_submodules(package_name, package_path):
    """Import every module of a package so their registration decorators run."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
