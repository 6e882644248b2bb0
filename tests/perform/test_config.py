import dataclasses
from pathlib import Path

import pytest

from perform.config import Config, ConfigError, load_config, parse_set_option

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_toml_matches_the_defaults():
    assert load_config(ROOT / "config.toml") == Config()


def test_file_values_and_overrides_apply(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[clock]\nbpm = 90\n[sampling]\ntemperature = 0.8\n")
    cfg = load_config(path, overrides={"clock": {"bpm": 140}})
    assert cfg.clock.bpm == 140.0 and cfg.sampling.temperature == 0.8
    assert isinstance(cfg.clock.bpm, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.clock.bpm = 100


def test_unknown_key_names_key_file_and_valid_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[clock]\nbmp = 90\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "bmp" in text and str(path) in text and "'bpm'" in text


def test_unknown_table_lists_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[clok]\nbpm = 90\n")
    with pytest.raises(ConfigError, match=r"clok.*valid tables.*clock"):
        load_config(path)


@pytest.mark.parametrize("line, word", [('bpm = "fast"', "float"), ("sync = 1", "bool")])
def test_wrong_type_is_named(tmp_path, line, word):
    path = tmp_path / "c.toml"
    path.write_text(f"[clock]\n{line}\n")
    with pytest.raises(ConfigError, match=word):
        load_config(path)


def test_out_of_range_value_says_what_is_expected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[ports]\nchannel = 17\n")
    with pytest.raises(ConfigError, match=r"ports.channel.*1..16"):
        load_config(path)


def test_a_bad_key_name_lists_the_accepted_forms_and_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[steer]\nkey = "D dorian"\nkey_strength = 1.0\n')
    with pytest.raises(ConfigError, match=r"steer.key = 'D dorian' is not a key; .*\"F# major\".*c.toml"):
        load_config(path)
    path.write_text('[steer]\nkey = "d minor"\nkey_strength = 1\n')
    assert load_config(path).steer.key == "d minor" and load_config(path).steer.key_strength == 1.0


def test_broken_toml_and_missing_file_are_config_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[clock\nbpm = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_set_option_parses_toml_values():
    assert parse_set_option("clock.bpm=140") == ("clock", "bpm", 140)
    assert parse_set_option("perform.mode=duet") == ("perform", "mode", "duet")
    with pytest.raises(ConfigError, match="table.key=value"):
        parse_set_option("bpm=140")
