"""PortWatch on a fake port list: a watched port that disappears is reported once, and once again
when a port of that exact name is back (no MIDI system needed; test_reliability_jack.py does it
through JACK)."""

from perform.watch import PortWatch


def test_vanishing_and_returning_ports_are_reported_once_each():
    listed = {"inputs": ["keys:out", "other:out"], "outputs": ["synth:in"]}
    events = []
    watch = PortWatch(lambda: (list(listed["inputs"]), list(listed["outputs"])), "synth:in",
                      ["keys:out"], on_lost=lambda k, n: events.append(("lost", k, n)),
                      on_back=lambda k, n: events.append(("back", k, n)))
    watch.check()
    assert events == []
    listed["outputs"] = ["synth:in 2"]                  # a similar name is not the port
    listed["inputs"] = ["other:out"]
    watch.check()
    watch.check()
    assert events == [("lost", "output", "synth:in"), ("lost", "input", "keys:out")]
    listed["outputs"] = ["synth:in"]
    watch.check()
    assert events[2:] == [("back", "output", "synth:in")]
    listed["inputs"] = ["keys:out"]
    watch.check()
    assert events[3:] == [("back", "input", "keys:out")]


def test_a_failing_listing_is_retried_not_fatal():
    calls = []

    def lister():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("server busy")
        return [], []

    lost = []
    watch = PortWatch(lister, "synth:in", [], on_lost=lambda k, n: lost.append(n),
                      on_back=lambda k, n: None, poll_s=0.01).start()
    import time
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.close()
    assert watch.errors == 1 and lost == ["synth:in"]
