"""A volume schedule as the console's form gives it and as the daemon's control socket takes it:
what each accepts, and the one clear refusal for what it does not."""

from __future__ import annotations

import datetime as dt

import pytest
from support.communes import write_sang_moc

from broadcastd.config import load_config
from broadcastd.console.drafts import FormError
from broadcastd.console.volumeschedule import MAX_ENTRIES, ScheduleDraft, parse_schedule
from broadcastd.controller import requests
from broadcastd.controller.requests import RequestError, VolumeSchedule, parse_request


@pytest.fixture
def config(tmp_path):
    return load_config(write_sang_moc(tmp_path), probe_media=False).config


def test_the_forms_rows_become_one_ordered_schedule_and_back(config):
    rows = {"hamlet": ["na-lay"], "at": ["20:00", "", "05:30"], "at_level": ["30", "", "75"]}
    draft = parse_schedule(rows, config)
    assert draft == ScheduleDraft(("na-lay",), (("05:30", 75), ("20:00", 30)))
    # the confirmation page carries it as one field, and sends exactly that
    assert draft.fields() == {"hamlet": "na-lay", "schedule": "05:30=75 20:00=30", "configured": ""}
    assert parse_schedule({k: [v] for k, v in draft.fields().items()}, config) == draft
    assert draft.payload() == {
        "cmd": "volume-schedule",
        "hamlets": "na-lay",
        "schedule": {"05:30": 75, "20:00": 30},
    }
    every = parse_schedule({"hamlet": ["all"], "configured": ["1"]}, config)
    assert every.payload()["schedule"] is None
    assert every.hamlets == ("ban-chuong", "na-lay")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"at": ["25:00"], "at_level": ["40"]}, "A time of day is HH:MM"),
        ({"at": ["6:00"], "at_level": ["40"]}, "A time of day is HH:MM"),
        ({"at": ["06:00"], "at_level": ["101"]}, "The volume is a whole number"),
        ({"at": ["06:00"], "at_level": ["-1"]}, "The volume is a whole number"),
        ({"at": ["06:00", "06:00"], "at_level": ["40", "50"]}, "is given twice"),
        ({"at": [""], "at_level": [""]}, "Give at least one time"),
        ({"node": ["bc-01"], "at": ["06:00"], "at_level": ["40"]}, "for whole hamlets"),
        (
            {"at": [f"{h:02d}:00" for h in range(24)] + ["23:30"], "at_level": ["50"] * 25},
            "At most %(limit)s times",
        ),
    ],
)
def test_a_form_that_is_no_schedule_is_refused_with_its_reason(config, fields, message):
    with pytest.raises(FormError) as refused:
        parse_schedule({"hamlet": ["na-lay"], **fields}, config)
    assert message in refused.value.message


def test_the_daemon_takes_what_the_console_sends_and_refuses_the_rest():
    assert MAX_ENTRIES == requests.MAX_SCHEDULE, "the console offers what the daemon takes"
    raw = {"cmd": "volume-schedule", "hamlets": "na-lay", "schedule": {"20:00": 30}}
    assert parse_request(raw) == VolumeSchedule("na-lay", {dt.time(20): 30})
    assert parse_request({**raw, "schedule": None}) == VolumeSchedule("na-lay", None)
    for schedule, message in (
        ({}, "1 to 24 entries"),
        ([30], "1 to 24 entries"),
        ({"24:00": 30}, "a time of day is HH:MM, got: '24:00'"),
        ({"20:00": 101}, "schedule.20:00: a level is a whole number from 0 to 100, got: 101"),
        ({"20:00": True}, "a level is a whole number"),
    ):
        with pytest.raises(RequestError, match=message):
            parse_request({**raw, "schedule": schedule})
