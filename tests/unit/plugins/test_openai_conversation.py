"""The conversation mirror: built from server acknowledgements, replayed as text later."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from realtalk.plugins.openai import ConversationMirror
from realtalk.plugins.openai.conversation import (
    MAX_REPLAYED_IMAGES,
    _Entry,
    _strip_images,
)
from realtalk.plugins.openai.recovery import EARLIER_HEADER, fold_older
from realtalk.protocol import events, validate_client_event
from tests.conformance import check_client_event


def user_audio(item_id: str) -> dict:
    return events.message_item(
        "user", [{"type": "input_audio", "transcript": None}], item_id=item_id, with_object=True
    )


def agent_audio(item_id: str, transcript: str) -> dict:
    return events.message_item(
        "assistant",
        [{"type": "output_audio", "transcript": transcript}],
        item_id=item_id,
        status="completed",
        with_object=True,
    )


def replayed(mirror: ConversationMirror) -> list[dict]:
    items = mirror.replay_items()
    for item in items:
        event = events.conversation_item_create(item)
        check_client_event(event)
        assert validate_client_event(event) is None
    return items


def test_replay_turns_audio_into_text_and_keeps_tools() -> None:
    m = ConversationMirror()
    m.added(user_audio("item_u1"))
    m.set_transcript("item_u1", "what is the weather in Paris")
    m.added(
        events.function_call_item(
            call_id="c1", name="get_weather", arguments='{"city":"Paris"}', item_id="item_f"
        )
    )
    m.added(events.function_call_output_item("c1", '{"temp_c": 18}', item_id="item_o"))
    m.added(agent_audio("item_a1", "It is eighteen degrees."))
    m.added(user_audio("item_u2"))  # never transcribed: cannot be replayed
    items = replayed(m)
    assert [(i["type"], i.get("role")) for i in items] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    assert items[0]["content"] == [{"type": "input_text", "text": "what is the weather in Paris"}]
    assert items[3]["content"] == [{"type": "output_text", "text": "It is eighteen degrees."}]
    assert [i["id"] for i in items] == ["item_u1", "item_f", "item_o", "item_a1"]


def test_truncation_keeps_only_what_was_heard() -> None:
    m = ConversationMirror()
    m.added(agent_audio("item_a", "one two three four five six seven eight nine ten"))
    m.truncated("item_a", audio_end_ms=300, total_ms=1000)
    m.done(agent_audio("item_a", "one two three four five six seven eight nine ten"))
    assert m.transcript("item_a") == "one two three"
    m.truncated("item_a", audio_end_ms=0, total_ms=1000)
    assert replayed(m) == []  # nothing heard: nothing replayed


def test_order_follows_previous_item_id_and_deletes() -> None:
    m = ConversationMirror()
    m.added(events.user_text_item("first", item_id="a"))
    m.added(events.user_text_item("third", item_id="c"), previous_item_id="a")
    m.added(events.user_text_item("second", item_id="b"), previous_item_id="a")
    assert [i["id"] for i in m.replay_items()] == ["a", "b", "c"]
    m.deleted("b")
    assert [i["id"] for i in m.replay_items()] == ["a", "c"]
    assert len(m) == 2 and "b" not in m


def test_unacknowledged_creations_are_replayed_after_the_acknowledged() -> None:
    m = ConversationMirror()
    m.added(events.user_text_item("hello", item_id="a"))
    m.created(events.function_call_output_item("c9", "late result", item_id="out"))
    assert not m.is_acknowledged("out")
    assert [i["id"] for i in replayed(m)] == ["a", "out"]
    m.added(events.function_call_output_item("c9", "late result", item_id="out"))
    assert m.is_acknowledged("out")
    assert [i["id"] for i in m.replay_items()] == ["a", "out"]  # once, not twice


def test_a_reply_cut_by_the_network_replays_what_arrived() -> None:
    m = ConversationMirror()
    m.added(events.message_item("assistant", [], item_id="a", status="in_progress"))
    m.append_transcript("a", "The answer")
    m.append_transcript("a", " is")
    assert replayed(m)[0]["content"] == [{"type": "output_text", "text": "The answer is"}]


def test_only_the_latest_images_are_kept() -> None:
    m = ConversationMirror()
    url = "data:image/jpeg;base64,/9g="
    for i in range(MAX_REPLAYED_IMAGES + 3):
        m.added(events.message_item("user", [events.input_image(url)], item_id=f"img{i}"))
    items = replayed(m)
    assert len(items) == MAX_REPLAYED_IMAGES
    assert items[0]["id"] == "img3"


def test_audio_bytes_are_never_kept() -> None:
    m = ConversationMirror()
    item = events.message_item(
        "user", [{"type": "input_audio", "audio": "AAAA", "transcript": "hi"}], item_id="u"
    )
    m.added(item)
    assert "audio" not in m.item("u")["content"][0]
    assert m.transcript("u") == "hi"


def test_images_inserted_in_the_middle_count_by_position() -> None:
    m = ConversationMirror()
    url = "data:image/jpeg;base64,/9g="
    m.added(events.user_text_item("start", item_id="t"))
    for i in range(MAX_REPLAYED_IMAGES):
        m.added(events.message_item("user", [events.input_image(url)], item_id=f"img{i}"))
    # an image placed before all the others is the oldest: it is the one stripped
    m.added(events.message_item("user", [events.input_image(url)], item_id="early"), "t")
    assert [i["id"] for i in replayed(m)] == ["t"] + [f"img{i}" for i in range(MAX_REPLAYED_IMAGES)]


class _FullWalk(ConversationMirror):
    """The reference: the whole conversation walked after every change (the old O(n) way)."""

    def _images_changed(self, item_id: str, entry: _Entry, *, appended: bool) -> None:
        seen = 0
        for walked in reversed(self._order):
            held = self._entries[walked]
            seen += held.images
            if held.images and seen > MAX_REPLAYED_IMAGES:
                held.item = _strip_images(held.item)
                held.images = 0


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "done", "delete"]),
        st.integers(0, 2),  # images in an added item
        st.integers(0, 40),  # which item (previous, done or deleted)
        st.booleans(),  # add after a chosen item, or at the end
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_image_limit_matches_a_full_walk(ops: list[tuple[str, int, int, bool]]) -> None:
    """Whatever the order of adds, dones and deletes, the latest images kept are the same as
    walking the whole conversation each time."""
    url = "data:image/jpeg;base64,/9g="
    fast, reference = ConversationMirror(), _FullWalk()
    sent: dict[str, dict[str, Any]] = {}
    for n, (op, images, pick, after) in enumerate(ops):
        ids = list(sent)
        chosen = ids[pick % len(ids)] if ids else None
        for mirror in (fast, reference):
            if op == "add":
                content = [events.input_text(f"t{n}")] + [events.input_image(url)] * images
                item = events.message_item("user", content, item_id=f"i{n}")
                sent[item["id"]] = item
                mirror.added(item, chosen if after else None)
            elif op == "done" and chosen is not None:
                mirror.done(sent[chosen])
            elif op == "delete" and chosen is not None:
                mirror.deleted(chosen)
        if op == "delete" and chosen is not None:
            del sent[chosen]
        assert fast.replay_items() == reference.replay_items()


def _new_id(prefix: str) -> str:
    return f"{prefix}_new"


def test_folding_keeps_a_call_with_its_output_and_cuts_the_transcript_at_a_line() -> None:
    items = [events.user_text_item("x" * 50, item_id=f"item_u{i}") for i in range(5)]
    items += [
        events.function_call_item(call_id="c1", name="get_time", arguments="{}", item_id="f1"),
        events.function_call_output_item("c1", '{"time": "10:00"}', item_id="o1"),
        events.assistant_text_item("It is ten.", item_id="a1"),
        events.user_text_item("thanks", item_id="u9"),
    ]
    # keep=3 would start at the call's output: the kept part starts at the next message instead
    folded = fold_older(items, _new_id, keep=3, max_chars=120)
    assert [i.get("id") for i in folded] == ["item_new", "a1", "u9"]
    lines = folded[0]["content"][0]["text"].splitlines()
    assert lines[0] == EARLIER_HEADER
    assert lines[-2:] == [
        "(the assistant called get_time({}))",
        '(the result: {"time": "10:00"})',
    ]
    assert all(line.startswith(("User: ", "(the")) for line in lines[1:])  # whole lines only
    assert len("\n".join(lines[1:])) <= 120
    assert fold_older(items, _new_id, keep=len(items)) == items  # short enough: unchanged
