"""The live view's clocks and progress text (xtrc.live)."""

from __future__ import annotations

import time

from xtrc.live import duration, progress_text


def test_durations_are_hours_minutes_seconds_with_days_past_a_day() -> None:
    assert duration(0) == "0:00:00"
    assert duration(59.6) == "0:01:00"
    assert duration(3599) == "0:59:59"
    assert duration(3600 + 61) == "1:01:01"  # %M:%S wrapped here
    assert duration(23 * 3600 + 59 * 60 + 59) == "23:59:59"
    assert duration(25 * 3600 + 61) == "1d 01:01:01"  # %H:%M:%S wrapped here
    assert duration(400 * 86400) == "400d 00:00:00"
    assert duration(None) == ""


def test_progress_text_says_step_total_phase_and_eta() -> None:
    now = time.time()
    record = {"step": 40, "total": 120, "phase": 1, "phases": 2, "eta_seconds": 4000, "updated": now}
    assert progress_text(record, now) == "step 40/120 (phase 1/2), ETA 1:06:40"
    assert progress_text({**record, "phases": 1, "step": 120}, now) == "step 120/120"
    assert progress_text({**record, "updated": now - 600}, now).endswith("(0:10:00 ago)")
    assert progress_text(None) == "" and progress_text({}) == ""


def test_progress_text_says_which_language_is_evaluated_and_how_many_are_left() -> None:
    now = time.time()
    record = {"state": "evaluating", "task": "xnli", "language": "de", "languages_done": 3, "languages_total": 40,
              "examples": 1500, "eta_seconds": 130.0, "updated": now}
    assert progress_text(record, now) == "eval xnli de (3/40 languages), ETA 0:02:10"
    assert progress_text({**record, "eta_seconds": None}, now) == "eval xnli de (3/40 languages)"
    assert progress_text({**record, "languages_done": 40}, now) == "eval done (40/40 languages, 1,500 examples)"
    assert progress_text({**record, "updated": now - 120}, now).endswith("(0:02:00 ago)")
