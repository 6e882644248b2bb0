"""A picture of the jam: --record jam.mid writes jam.png, `perform --out F.mid --png` writes F.png; a
valid PNG (read back here with zlib alone) with the player and the instrument in their colours."""
import struct
import zlib

import mido
import numpy as np
import pytest

import perform.cli as cli
from perform.pianoroll import (INSTRUMENT_COLOUR, PLAYER_COLOUR, encode_png, layout_for,
                               spans_from_messages, spans_from_notes)
from perform.record import Recorder
from perform.errors import MidiFileError
from perform.tokens import Note, Vocab

from fakes import FakeGenerator


def read_png(path) -> np.ndarray:
    """Parse an 8-bit RGB PNG (filter 0 rows, as perform writes): checks the signature, every
    chunk's CRC and the IHDR, returns (height, width, 3) uint8."""
    data = path.read_bytes() if hasattr(path, "read_bytes") else path
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind}"
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert not raw[:, 0].any()                                  # filter type 0 on every row
    return raw[:, 1:].reshape(height, width, 3)


def colour_at(img, lay, steps, pitch):
    return tuple(int(c) for c in img[lay.y(pitch) + 1, lay.x(steps) + 1])


def test_encode_png_round_trips_any_picture():
    img = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    assert np.array_equal(read_png(encode_png(img)), img)


def test_recording_writes_a_piano_roll_with_the_player_and_the_instrument_in_two_colours(tmp_path):
    rec = Recorder(tmp_path / "jam.mid", steps_per_beat=4)
    rec.add("player", 0.0, mido.Message("note_on", note=60, velocity=90))
    rec.add("player", 4.0, mido.Message("note_off", note=60))
    rec.add("instrument", 8.0, mido.Message("note_on", note=67, velocity=80))
    rec.add("instrument", 12.0, mido.Message("note_off", note=67))
    rec.write([(0.0, 120.0)])
    assert (tmp_path / "jam.mid").is_file() and not list(tmp_path.glob("*.tmp"))
    img = read_png(tmp_path / "jam.png")
    lay = layout_for([(0, 4, 60), (8, 12, 67)], 4, 4)
    assert img.shape == (lay.height, lay.width, 3) and lay.width == 16 * 4   # one bar, 4 px a step
    assert colour_at(img, lay, 1, 60) == PLAYER_COLOUR
    assert colour_at(img, lay, 9, 67) == INSTRUMENT_COLOUR
    assert colour_at(img, lay, 9, 60) not in (PLAYER_COLOUR, INSTRUMENT_COLOUR)   # after the note
    assert colour_at(img, lay, 1, 67) not in (PLAYER_COLOUR, INSTRUMENT_COLOUR)
    player_px = np.all(img == PLAYER_COLOUR, axis=2).sum()
    assert player_px == (4 * 4 - 1) * 3                          # 4 steps wide, 3 of 4 rows high


def test_the_picture_holds_pedalled_notes_as_long_as_they_sounded():
    msgs = [(0.0, mido.Message("note_on", note=60, velocity=90)),
            (1.0, mido.Message("control_change", control=64, value=127)),
            (2.0, mido.Message("note_off", note=60)),
            (8.0, mido.Message("control_change", control=64, value=0)),
            (9.0, mido.Message("note_on", note=62, velocity=90))]
    assert spans_from_messages(msgs, end_steps=10.0) == [(0.0, 8.0, 60), (9.0, 10.0, 62)]


def test_recording_to_a_png_name_is_refused(tmp_path):
    with pytest.raises(MidiFileError, match="name the recording FILE.mid"):
        Recorder(tmp_path / "jam.png", 4)


@pytest.fixture
def fake_model(monkeypatch):
    def load(cfg):
        return FakeGenerator(lambda s: [(72, 2, 80)] if s % 4 == 0 else []), "FakeProvider", Vocab()
    monkeypatch.setattr(cli, "load_generator", load)


def write_prime(path, pitches):
    track = mido.MidiTrack()
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=90, time=0))
        track.append(mido.Message("note_off", note=p, time=480))
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(str(path))


def test_render_with_png_draws_the_prime_then_the_answer(tmp_path, fake_model):
    prime = tmp_path / "prime.mid"
    write_prime(prime, [48, 50, 52, 53])                         # 4 quarter notes: steps 0..15
    out = tmp_path / "song.mid"
    assert cli.main(["--out", str(out), "--bars", "1", "--prime", str(prime), "--png"]) == 0
    img = read_png(tmp_path / "song.png")
    prime_spans = spans_from_notes([Note(4 * i, p, 4, 90) for i, p in enumerate([48, 50, 52, 53])])
    # The fake plays on its steps 16, 20, ...: the prime took steps 0..12 (up to its last onset),
    # so the answer's notes are at its steps 3, 7, 11, 15, drawn from step 13 on.
    answer = spans_from_notes([Note(s, 72, 2, 80) for s in (3, 7, 11, 15)], offset_steps=13)
    lay = layout_for(prime_spans + answer, 4, 4)
    assert colour_at(img, lay, 12, 53) == PLAYER_COLOUR          # the prime's last note
    for step in (16, 20, 24, 28):
        assert colour_at(img, lay, step, 72) == INSTRUMENT_COLOUR
        assert colour_at(img, lay, step - 2, 72) not in (PLAYER_COLOUR, INSTRUMENT_COLOUR)


@pytest.mark.parametrize("argv, message", [
    (["--png"], "--png is for offline rendering; add --out FILE.mid"),
    (["--out", "x.png", "--png"], "--png writes the .png beside it: use --out FILE.mid"),
    (["--velocity", "loud"], "steer.velocity = 'loud' is not a velocity policy; expected \"auto\""),
])
def test_bad_picture_and_velocity_options_exit_2_saying_how_to_fix_them(argv, message, capsys, fake_model):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_velocity_option_reaches_the_config():
    args = cli.build_parser().parse_args(["--velocity", "fixed 90"])
    assert cli.config_from_args(args).steer.velocity == "fixed 90"
