"""The command line's help and text output (issue 23 item 10): every flag has help, each default is named
once, the text table stays aligned, one seed prints no spread and no test, and the default targets'
difference from the dashboard is said."""
from __future__ import annotations

import argparse
from apt_core.cli import build_parser
from apt_core.cli_args import CLI_DEFAULT_TARGETS, DASHBOARD_TARGETS, default_targets_note, format_rows, scenario_from_args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_flag_of_every_command_has_help_and_one_default():
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS:
                assert action.help, f"{name} {'/'.join(action.option_strings)} has no help"
        text = " ".join(sub.format_help().split())
        assert "(default: None)" not in text and "(default: False)" not in text, name
        for action in sub._actions:  # a help text that names its default in words gets no second one
            if action.help and "(default:" in action.help:
                assert sub._get_formatter()._get_help_string(action).count("(default:") == 1, action.option_strings


def _row(phase: str, **extra) -> dict:
    return {"phase": phase, "target_hr": 0.1, "target_hr_sd": 0.0, "test_hr": 0.2, "test_hr_sd": 0.0, "ri": None,
            "ri_undefined_reason": "not-a-defense", "rank_shift_median": 3.0, "seconds": 1.0, **extra}


def test_text_table_columns_stay_aligned_with_a_long_phase_name():
    lines = format_rows([_row("origin"), _row("attack"), _row("remove-cogroup")], seeds=2).splitlines()
    header, rows = lines[0], lines[2:5]
    column = header.index("test HR") + len("test HR")  # right-aligned numbers end under their header's end
    assert all(line[column - 6:column].strip().replace(".", "").isdigit() for line in rows)
    assert len({len(line.split("  ")[0]) for line in rows}) == 1 or len({line.index(" 0.1000") for line in rows}) == 1


def test_one_seed_prints_no_spread():
    one = format_rows([_row("origin"), _row("attack")], seeds=1)
    assert "± sd" not in one and "0.0000" not in one.split("\n")[2].split()[2:3]
    assert "± sd" in format_rows([_row("origin")], seeds=3)


def test_default_targets_are_named_with_the_dashboards():
    args = build_parser(["run"]).parse_args(["run", "--attack", "average"])
    assert scenario_from_args(args).targets == CLI_DEFAULT_TARGETS
    assert f"--targets {DASHBOARD_TARGETS}" in default_targets_note(args)
    chosen = build_parser(["run"]).parse_args(["run", "--attack", "average", "--targets", "unpopular"])
    assert scenario_from_args(chosen).targets == "unpopular" and default_targets_note(chosen) is None
    clean = build_parser(["run"]).parse_args(["run"])  # no attack: the targets do not matter, no note
    scenario_from_args(clean)
    assert default_targets_note(clean) is None
