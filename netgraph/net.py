"""``Net``: what layers and containers have in common — ports, specs, immutability, applying."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NetError
from .shapes import Automatic, PortCoder
from .shared import unify_values
from .solution import Solution
from .solver import Solver

__all__ = ["Net"]


#: ``netgraph.apply.apply_net``, imported by the first call (that module imports this one); an
#: import statement on every call would cost a microsecond
_apply_net: Any = None


class Net:
    """Base of every net: an immutable value with named input and output ports.

    Subclasses set ``_specs`` (port name -> display spec) and implement ``input_ports``,
    ``output_ports``, ``children``, ``_constrain``, ``_specialize`` and ``_emit``.
    """

    _specs: dict[str, Any]

    # ----------------------------------------------------------- immutability
    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use NetReplacePart")

    def _set(self, **attrs: Any) -> None:
        for k, v in attrs.items():
            object.__setattr__(self, k, v)

    def __getstate__(self) -> dict:  # copy, deepcopy, pickle: the caches (plans) stay behind
        return {**self.__dict__, "_cache": {}}

    def __setstate__(self, state: dict) -> None:
        """Copies and unpickled nets stay immutable: their arrays (which ``copy.deepcopy`` and
        ``pickle`` make writeable) are read-only again."""
        self.__dict__.update(state)
        for a in self._arrays().values():
            if a is not None:
                a.flags.writeable = False

    def derive(self, **attrs: Any) -> Net:
        """A copy with attributes ``attrs`` replaced (nets are immutable: a method that changes
        a net returns a derived copy). Caches (compiled plans) are not copied."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._set(_cache={}, **attrs)
        return new

    def cached(self, key: Any, compute: Any) -> Any:
        """``compute()``, computed once per net (nets are immutable; copies start afresh):
        for values derived from a net's structure, e.g. how attention scores its sub-net."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # ------------------------------------------------------------------ ports
    @property
    def input_ports(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def output_ports(self) -> tuple[str, ...]:
        raise NotImplementedError

    def output_key(self, name: str) -> str:
        """Key of output ``name`` among specs and solver ports: ``"out:" + name`` when an input
        has the same name (a recurrent layer's final ``State``), else ``name``."""
        return "out:" + name if name in self.input_ports else name

    def port_shape(self, port: str) -> Any:
        """The inferred shape of ``port`` in the canonical user form."""
        return self._specs.get(port, Automatic)

    def port_coders(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(encoders, decoders)``: input port -> its ``NetEncoder`` and output port -> its
        ``NetDecoder``, for the ports that have one (see :meth:`_find_coders`)."""
        return self.cached("coders", self._find_coders)

    def _find_coders(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The coders given as this net's own port specs (a graph also inherits those of the
        node ports its ports are wired to)."""
        specs = self._user_specs
        encoders = {p: specs[p] for p in self.input_ports if isinstance(specs.get(p), PortCoder)}
        decoders = {p: specs[k] for p in self.output_ports
                    if isinstance(specs.get(k := self.output_key(p)), PortCoder)}
        return encoders, decoders

    # --------------------------------------------------------------- structure
    def children(self) -> dict:
        """Sub-nets addressable by NetExtract (name -> net); empty for plain layers."""
        return {}

    def with_children(self, children: dict) -> Net:
        """A copy with the sub-nets named in ``children`` replaced (the others kept)."""
        raise NetError(f"{type(self).__name__} has no parts to replace")

    def _arrays(self) -> dict[str, np.ndarray | None]:
        """Arrays held directly by this net (name -> array or None when uninitialized)."""
        return {}

    def _constrain(self, S: Solver, path: tuple) -> dict[str, int]:
        """Register this net's ports, rules and sub-nets in ``S``; return port -> type id."""
        raise NotImplementedError

    def _specialize(self, S: Solver, path: tuple) -> Net:
        """A copy whose port specs (and sub-nets) hold the solved shapes."""
        raise NotImplementedError

    def _emit(self, plan: Any, sol: Solution, path: tuple, in_slots: dict[str, Any]) -> dict:
        """Append this net's primitive steps to ``plan``; return output port -> slot."""
        raise NotImplementedError

    def _pinned(self) -> Net:
        """A copy whose own ports are fixed to their inferred shapes, so that it can be used
        (compiled, applied) on its own, as a net extracted from a larger one must be."""
        keys = set(self.input_ports) | {self.output_key(p) for p in self.output_ports}
        specs = {k: v for k, v in self._specs.items() if v is not Automatic and k in keys
                 and not isinstance(self._user_specs.get(k), PortCoder)}  # coders stay
        return self.derive(_user_specs={**self._user_specs, **specs})

    def _solve(self) -> Solver:
        """A solver holding this net's constraints, solved (the one place inference runs)."""
        S = Solver()
        self._constrain(S, ())
        S.solve()
        return S

    def _solution(self) -> Solution:
        """The solved shapes of this net as a whole: solved at most once per net (nets are
        immutable) and shared by compile, initialize, info and summary."""
        return self.cached("solution", lambda: Solution.of(self._solve()))

    def _infer(self) -> Net:
        """Solve shapes for this net as a whole and return the specialized copy (which keeps
        the solution: its constraints are this net's)."""
        S = self._solve()
        new = unify_values(self._specialize(S, ()))  # the uses of a shared array: one value
        new._cache["solution"] = Solution.of(S)
        new.port_coders()  # coders that disagree are an error of construction
        return new

    def _same_shapes_as(self, other: Net) -> Net:
        """``self``, told that it has the structure and array shapes of ``other`` (arrays
        filled or updated in place of theirs), so that it reuses ``other``'s solution."""
        solution = other._cache.get("solution")
        if solution is not None:
            self._cache.setdefault("solution", solution)
        return self

    # ---------------------------------------------------------------- applying
    def __call__(self, data: Any, what: Any = None, *, dtype: Any = np.float32) -> Any:
        """Apply the net to ``data``; see the SPEC's "Applying a net"."""
        global _apply_net
        if _apply_net is None:
            from .apply import apply_net

            _apply_net = apply_net
        return _apply_net(self, data, what, dtype=dtype)

    def summary(self) -> str:
        from .info import summary

        return summary(self)

    def plot(self, **kwargs: Any) -> Any:
        from .plotting import plot

        return plot(self, **kwargs)

    def _describe_ports(self) -> str:
        ins = ", ".join(f"{p}: {self.port_shape(p)!r}" for p in self.input_ports)
        outs = ", ".join(f"{p}: {self.port_shape(p)!r}" for p in self.output_ports)
        return f"{ins} -> {outs}"
