"""Conversation bookkeeping: insert-after, delete, retrieve and truncate, without events."""

from __future__ import annotations

import base64

import pytest

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import PCM24K, PCMU, AudioFormat
from realtalk.server.conversation import Conversation, Entry, SpokenSegment, spoken_text
from realtalk.server.errors import RequestError


def text_entry(item_id: str, text: str = "hi") -> Entry:
    return Entry(ev.message_item("user", [ev.input_text(text)], item_id=item_id))


def assistant_audio(item_id: str, transcript: str, ms: int, fmt: AudioFormat = PCM24K) -> Entry:
    item = ev.message_item(
        "assistant", [{"type": "output_audio", "transcript": transcript}], item_id=item_id
    )
    return Entry(item, audio={0: bytearray(fmt.bytes_for_ms(ms))}, audio_format=fmt)


def ids(conversation: Conversation) -> list[str]:
    return [entry.id for entry in conversation]


def test_items_append_and_report_their_predecessor() -> None:
    conversation = Conversation()
    assert conversation.add(text_entry("a")) is None
    assert conversation.add(text_entry("b")) == "a"
    assert conversation.last_id == "b"


def test_insert_after_an_item_and_at_the_root() -> None:
    conversation = Conversation()
    for item_id in "abc":
        conversation.add(text_entry(item_id))
    assert conversation.add(text_entry("x"), previous_item_id="a") == "a"
    assert conversation.add(text_entry("r"), previous_item_id="root") is None
    assert ids(conversation) == ["r", "a", "x", "b", "c"]
    assert conversation.previous_id("b") == "x"


def test_unknown_previous_item_and_duplicate_ids_are_refused() -> None:
    conversation = Conversation()
    conversation.add(text_entry("a"))
    with pytest.raises(RequestError) as unknown:
        conversation.add(text_entry("b"), previous_item_id="nope")
    assert unknown.value.problem.param == "previous_item_id"
    with pytest.raises(RequestError) as duplicate:
        conversation.add(text_entry("a"))
    assert duplicate.value.problem.code == "invalid_value"
    assert ids(conversation) == ["a"]


def test_delete_removes_and_missing_items_get_openai_codes() -> None:
    conversation = Conversation()
    conversation.add(text_entry("a"))
    conversation.add(text_entry("b"))
    assert conversation.delete("a").id == "a"
    assert ids(conversation) == ["b"]
    for action, call in [
        ("delete", lambda: conversation.delete("a")),
        ("retrieve", lambda: conversation.retrieve("a")),
        ("truncate", lambda: conversation.truncate("a", 0, 0)),
    ]:
        with pytest.raises(RequestError) as missing:
            call()
        assert missing.value.problem.code == f"item_{action}_invalid_item_id"
        assert missing.value.problem.param == "item_id"


def test_retrieve_returns_the_audio_and_snapshots_are_independent() -> None:
    conversation = Conversation()
    entry = assistant_audio("a", "Hello there.", 100)
    conversation.add(entry)
    item = conversation.retrieve("a")
    audio = base64.b64decode(item["content"][0]["audio"])
    assert len(audio) == PCM24K.bytes_for_ms(100)
    snapshot = entry.snapshot()
    assert "audio" not in snapshot["content"][0]
    entry.item["content"][0]["transcript"] = "changed"
    assert snapshot["content"][0]["transcript"] == "Hello there."


def test_truncate_cuts_audio_and_keeps_the_words_heard() -> None:
    conversation = Conversation()
    transcript = "One two three four. Five six seven eight."
    entry = assistant_audio("a", transcript, 2000)
    entry.spoken = [
        SpokenSegment(0, 1000, 0, 19),
        SpokenSegment(1000, 2000, 19, len(transcript)),
    ]
    conversation.add(entry)
    conversation.truncate("a", 0, 1500)
    assert entry.audio_ms() == 1500
    assert entry.item["content"][0]["transcript"] == "One two three four. Five six"


def test_truncate_in_g711_counts_one_byte_a_sample() -> None:
    conversation = Conversation()
    entry = assistant_audio("a", "Hi there.", 1000, fmt=PCMU)
    conversation.add(entry)
    conversation.truncate("a", 0, 250)
    assert len(entry.audio[0]) == 2000


def test_truncate_past_the_end_names_both_durations() -> None:
    conversation = Conversation()
    conversation.add(assistant_audio("a", "Hi.", 900))
    with pytest.raises(RequestError) as too_long:
        conversation.truncate("a", 0, 1200)
    problem = too_long.value.problem
    assert (problem.code, problem.param) == ("invalid_value", "audio_end_ms")
    assert problem.message == "Audio content of 900ms is already shorter than 1200ms"


def test_only_assistant_audio_can_be_truncated() -> None:
    conversation = Conversation()
    conversation.add(text_entry("u"))
    conversation.add(Entry(ev.assistant_text_item("Just text.", item_id="t")))
    for item_id in ("u", "t"):
        with pytest.raises(RequestError) as refused:
            conversation.truncate(item_id, 0, 0)
        assert refused.value.problem.code == "unsupported_content_type"
    conversation.add(assistant_audio("a", "Hi.", 500))
    with pytest.raises(RequestError) as bad_index:
        conversation.truncate("a", 1, 0)
    assert bad_index.value.problem.param == "content_index"


@pytest.mark.parametrize(
    ("end_ms", "expected"),
    [(0, ""), (250, "one"), (500, "one two"), (999, "one two three"), (1000, "one two three four")],
)
def test_spoken_text_without_timing_spreads_words_evenly(end_ms: int, expected: str) -> None:
    assert spoken_text("one two three four", [], end_ms, 1000) == expected


def test_order_survives_deletes_and_inserts_at_both_ends() -> None:
    conversation = Conversation()
    for item_id in "abcd":
        conversation.add(text_entry(item_id))
    conversation.delete("a")  # the first
    conversation.delete("d")  # the last
    conversation.delete("b")  # now the first again
    assert ids(conversation) == ["c"]
    assert conversation.previous_id("c") is None
    assert conversation.last_id == "c"
    assert conversation.add(text_entry("r"), previous_item_id="root") is None
    assert conversation.add(text_entry("z")) == "c"
    assert conversation.add(text_entry("m"), previous_item_id="r") == "r"
    assert ids(conversation) == ["r", "m", "c", "z"]
    assert [conversation.previous_id(i) for i in ids(conversation)] == [None, "r", "m", "c"]
    conversation.delete("z")
    assert conversation.last_id == "c"
    assert len(conversation) == 3


def test_equal_looking_entries_are_distinct_items() -> None:
    """Entries compare by identity: two items with the same content are still two items."""
    first, second = text_entry("a"), text_entry("a")
    assert first != second
    conversation = Conversation()
    conversation.add(first)
    with pytest.raises(RequestError):
        conversation.add(second)


def test_a_replayed_conversation_keeps_its_order() -> None:
    """A reconnecting client creates every item after the one before it."""
    conversation = Conversation()
    previous = None
    for n in range(3000):
        entry = text_entry(f"item_{n}")
        assert conversation.add(entry, previous_item_id=previous) == previous
        previous = entry.id
    assert ids(conversation) == [f"item_{n}" for n in range(3000)]


def held(conversation: Conversation) -> list[str]:
    return [e.id for e in conversation if e.audio.get(0) and not e.released_ms]


def test_only_the_most_recent_audio_items_keep_their_bytes() -> None:
    conversation = Conversation(keep_audio_items=3)
    for n in range(6):
        conversation.add(assistant_audio(f"a{n}", "One two three four.", 400 + n))
        conversation.add(text_entry(f"t{n}"))
    assert held(conversation) == ["a3", "a4", "a5"]
    old = conversation.get("a1")
    assert old is not None and len(old.audio[0]) == 0
    assert old.audio_ms() == 401  # the duration outlives the bytes
    item = conversation.retrieve("a1")
    assert "audio" not in item["content"][0]
    assert item["content"][0]["transcript"] == "One two three four."
    recent = conversation.retrieve("a5")
    assert len(base64.b64decode(recent["content"][0]["audio"])) == PCM24K.bytes_for_ms(405)


def test_user_audio_is_bounded_too() -> None:
    conversation = Conversation(keep_audio_items=2)
    for n in range(4):
        item = ev.message_item(
            "user", [{"type": "input_audio", "transcript": None}], item_id=f"u{n}"
        )
        conversation.add(Entry(item, audio={0: bytearray(4800)}, audio_format=PCM24K))
    assert held(conversation) == ["u2", "u3"]
    first = conversation.get("u0")
    assert first is not None and first.audio_ms() == PCM24K.ms_for_bytes(4800)


def test_truncating_an_item_whose_audio_was_released_uses_its_duration() -> None:
    conversation = Conversation(keep_audio_items=1)
    conversation.add(assistant_audio("old", "one two three four", 1000))
    conversation.add(assistant_audio("new", "Hi.", 300))
    old = conversation.get("old")
    assert old is not None and old.released_ms == {0: 1000}
    with pytest.raises(RequestError) as too_long:
        conversation.truncate("old", 0, 1001)
    assert (
        too_long.value.problem.message == "Audio content of 1000ms is already shorter than 1001ms"
    )
    conversation.truncate("old", 0, 500)
    assert old.audio_ms() == 500
    assert old.item["content"][0]["transcript"] == "one two"
    with pytest.raises(RequestError):
        conversation.truncate("old", 0, 600)  # now 500 ms long


def test_audio_beyond_the_duration_budget_is_released_but_the_newest_stays() -> None:
    conversation = Conversation(keep_audio_items=8, keep_audio_ms=1000)
    conversation.add(assistant_audio("a", "A.", 600))
    conversation.add(assistant_audio("b", "B.", 600))
    conversation.add(assistant_audio("c", "C.", 5000))  # the newest: kept whatever its length
    assert held(conversation) == ["b", "c"]
    conversation.add(assistant_audio("d", "D.", 500))
    assert held(conversation) == ["d"]  # c alone is over the budget once it is not the newest
    conversation.add(assistant_audio("e", "E.", 100))
    assert held(conversation) == ["d", "e"]


def test_a_reply_still_being_voiced_keeps_its_audio() -> None:
    """The server writes a reply's audio into its entry as it is voiced: never released then."""
    conversation = Conversation(keep_audio_items=1)
    streaming = assistant_audio("live", "Still talking.", 200)
    streaming.item["status"] = "in_progress"
    conversation.add(streaming)
    for n in range(3):
        conversation.add(assistant_audio(f"x{n}", "Hi.", 100))
    assert "live" in held(conversation)
    store = streaming.audio[0]
    store += bytes(PCM24K.bytes_for_ms(100))
    streaming.item["status"] = "completed"
    conversation.add(assistant_audio("later", "Hi.", 100))
    assert held(conversation) == ["later"]
    assert streaming.audio_ms() == 300


def test_a_deleted_audio_item_no_longer_counts() -> None:
    conversation = Conversation(keep_audio_items=2)
    for item_id in "abc":
        conversation.add(assistant_audio(item_id, "Hi.", 100))
    conversation.delete("c")
    conversation.add(text_entry("t"))
    conversation.add(assistant_audio("d", "Hi.", 100))
    assert held(conversation) == ["b", "d"]


def test_limits_must_keep_something() -> None:
    with pytest.raises(ValueError):
        Conversation(keep_audio_items=0)
