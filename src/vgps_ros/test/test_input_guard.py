"""check_instruction: the instruction text every node takes in is bounded and printable."""

import pytest

from vgps_ros.input_guard import MAX_INSTRUCTION_CHARS, MessageError, check_instruction


@pytest.mark.parametrize("text", ["put carrot on plate", "x" * MAX_INSTRUCTION_CHARS,
                                  "mettez la carotte sur l'assiette é", ""])
def test_ordinary_instructions_pass_unchanged(text):
    assert check_instruction(text) == text


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("x" * (MAX_INSTRUCTION_CHARS + 1), "characters > 512"),
        ("a" * 1_000_000, "1000000 characters"),
        ("put carrot\x00 on plate", "control character '\\x00' at index 10"),
        ("put carrot\non plate", "control character '\\n'"),
        ("\x1b[2Jput carrot", "control character '\\x1b' at index 0"),
        ("carrot\x7f", "control character '\\x7f'"),
        (b"put carrot on plate", "must be a str, got bytes"),
        (None, "must be a str"),
    ],
)
def test_long_or_control_character_instructions_are_rejected(text, detail):
    with pytest.raises(MessageError, match="bad_instruction") as err:
        check_instruction(text)
    assert err.value.kind == "bad_instruction" and detail in err.value.detail


def test_the_bound_can_be_set():
    assert check_instruction("abc", max_chars=3) == "abc"
    with pytest.raises(MessageError):
        check_instruction("abcd", max_chars=3)
