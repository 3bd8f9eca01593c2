"""The user's-error type (:mod:`comixup._errors`): a ValueError (and a TypeError for a value of
the wrong kind) that :func:`~comixup._errors.user_input` makes of a library check's error."""

import pytest

from comixup._checks import check_int, check_number
from comixup._errors import InputError, InputTypeError, as_input_error, user_input


def test_input_errors_are_value_and_type_errors():
    assert issubclass(InputError, ValueError) and not issubclass(InputError, TypeError)
    assert issubclass(InputTypeError, InputError) and issubclass(InputTypeError, TypeError)
    with pytest.raises(ValueError, match="^x bad$"):
        raise InputError("x bad")


def test_as_input_error_keeps_the_kind_and_the_message():
    value = as_input_error(ValueError("alpha must be > 0"), "method 'mixup': ")
    assert type(value) is InputError and str(value) == "method 'mixup': alpha must be > 0"
    kind = as_input_error(TypeError("alpha must be a real number, got str"))
    assert type(kind) is InputTypeError and str(kind) == "alpha must be a real number, got str"
    already = InputError("file.pt is not a valid checkpoint")
    assert as_input_error(already) is already
    assert str(as_input_error(already, "eval: ")) == "eval: file.pt is not a valid checkpoint"


def test_user_input_converts_the_checks_of_a_users_values():
    with pytest.raises(InputError, match="^arch 'x': initial_channels must be >= 1, got 0$") as exc:
        with user_input("arch 'x': "):
            check_int("initial_channels", 0, 1)
    assert type(exc.value) is InputError and isinstance(exc.value.__cause__, ValueError)
    with pytest.raises(InputTypeError, match="alpha must be a real number, got str") as exc:
        with user_input():
            check_number("alpha", "x")
    assert isinstance(exc.value, TypeError) and isinstance(exc.value.__cause__, TypeError)
    original = InputError("passes through")
    with pytest.raises(InputError) as exc:
        with user_input("never added: "):
            raise original
    assert exc.value is original


def test_user_input_leaves_other_exceptions_alone():
    for error in (KeyError("k"), AttributeError("a"), RuntimeError("r"), OSError(2, "gone")):
        with pytest.raises(type(error)) as exc:
            with user_input():
                raise error
        assert exc.value is error
