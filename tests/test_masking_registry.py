"""The process-wide secret registry masks as one longest-first pattern of all its values would,
however many values it holds and wherever they are kept (the automaton or the newest few)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from lowcode_runtime.masking import MASK, MAX_RECENT, SecretRegistry, _encoded_forms

# A small alphabet, so values overlap, nest and share prefixes.
value_strategy = st.text(alphabet="abc/ %", min_size=4, max_size=7)


def one_pattern(values: list[str]) -> re.Pattern[str]:
    """What masking did before the registry kept an automaton: every form, longest first."""
    forms = {form for value in values for form in (value, *_encoded_forms(value))}
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(form) for form in ordered))


@given(
    st.lists(value_strategy, min_size=1, max_size=3 * MAX_RECENT),
    st.lists(st.sampled_from(["a", "b", "c", "/", " ", "%2F", "+", "x"]), max_size=60),
    st.integers(min_value=0),
)
def test_any_registry_masks_as_one_pattern_of_its_values(values, noise, seed):
    registry = SecretRegistry()
    registry.register(*values)
    # The text holds some values whole, between the noise; noise alone may spell others.
    text = "".join(
        piece + (values[(seed + i) % len(values)] if i % 3 == 0 else "")
        for i, piece in enumerate(noise)
    )

    expected = one_pattern(values).sub(MASK, text)

    assert registry.masked(text) == expected
    assert registry.occurs_in(text) == (expected != text)


def test_values_registered_long_ago_and_just_now_are_both_found():
    registry = SecretRegistry()
    old = [f"old-secret-{n:03d}" for n in range(MAX_RECENT + 5)]
    registry.register(*old)  # past the newest few: now in the automaton
    registry.register("newest-secret")

    text = "first old-secret-000, then newest-secret, then old-secret-036"

    assert registry.found_in(text) == {
        "old-secret-000",
        "newest-secret",
        "old-secret-036",
    }
    assert registry.occurs_in("only old-secret-001 here")
    assert registry.occurs_in("only newest-secret here")
    assert not registry.occurs_in("old-secret-1 is not one of them")


def test_the_limit_keeps_the_newest_values():
    registry = SecretRegistry(limit=MAX_RECENT * 4)
    registry.register(*(f"secret-{n:05d}" for n in range(MAX_RECENT * 10)))

    newest = f"secret-{MAX_RECENT * 10 - 1:05d}"

    assert registry.occurs_in(f"x {newest} y")
    assert len(registry._values) == MAX_RECENT * 4


def test_a_cleared_registry_finds_nothing():
    registry = SecretRegistry()
    registry.register(*(f"secret-{n:03d}" for n in range(MAX_RECENT * 2)))
    registry.clear()

    assert not registry.occurs_in("secret-000 secret-063")
    assert registry.found_in("secret-000") == set()


def test_an_answer_is_masked_with_its_projects_secrets_and_the_services_only():
    registry = SecretRegistry()
    registry.register("alpha-secret", owner="p1")
    registry.register("beta-secret", owner="p2")
    registry.register("shared-secret", owner="p1")
    registry.register("shared-secret", owner="p2")
    registry.register("service-secret")
    text = "alpha-secret beta-secret shared-secret service-secret"

    assert registry.masked_for(text, "p1") == f"{MASK} beta-secret {MASK} {MASK}"
    assert registry.masked_for(text, "p2") == f"alpha-secret {MASK} {MASK} {MASK}"
    assert (
        registry.masked_for(text, None)
        == f"alpha-secret beta-secret shared-secret {MASK}"
    )
    assert registry.masked(text) == f"{MASK} {MASK} {MASK} {MASK}", "logs: every one"
