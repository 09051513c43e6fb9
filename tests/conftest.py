"""Hypothesis settings profiles for the property tests (``tests/test_properties.py``).

=========  ==============================================================================
profile    behaviour
=========  ==============================================================================
ci         derandomized: the same examples on every run and machine; no example database,
           no deadline, the reproduction blob printed on failure. Loaded when the
           environment variable ``CI`` is set (CI runners set ``CI=true``).
dev        the default elsewhere: random examples, failures replayed first from the local
           database (``.hypothesis/``), no deadline.
thorough   random, ten times the examples (a longer hunt; minutes).
=========  ==============================================================================

``HYPOTHESIS_PROFILE=name`` (or ``pytest --hypothesis-profile=name``) picks a profile
explicitly. A property test asks for ``examples(n)`` (``tests/helpers.py``): ``n`` scaled by
the profile's ``max_examples`` relative to :data:`helpers.BASE_EXAMPLES`, so "ci" and "dev" run
the counts written in the tests and "thorough" ten times them.
"""

from __future__ import annotations

import os

from helpers import BASE_EXAMPLES
from hypothesis import HealthCheck, settings

# parent: hypothesis's own defaults, not whatever it loaded itself on seeing CI in the environment
_COMMON = dict(parent=settings.get_profile("default"), deadline=None,
               suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=BASE_EXAMPLES, derandomize=True, database=None,
                          print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=BASE_EXAMPLES, **_COMMON)
settings.register_profile("thorough", max_examples=10 * BASE_EXAMPLES, **_COMMON)


def _profile() -> str:
    if os.environ.get("HYPOTHESIS_PROFILE"):
        return os.environ["HYPOTHESIS_PROFILE"]
    return "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false") else "dev"


settings.load_profile(_profile())
