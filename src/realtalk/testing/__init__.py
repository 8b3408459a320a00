"""Testing voice agents: a real server, a spoken test user, and expectations that tell a story.

See ``docs/testing.md``. The pieces:

- :class:`AgentTest` starts an agent against the local server (scripted engines by default,
  ``backend="local"`` for the offline models, ``"openai"`` with a key) and drives it turn by turn:
  :meth:`~AgentTest.send_text`, :meth:`~AgentTest.speak` (Piper), :meth:`~AgentTest.play_wav`,
  :meth:`~AgentTest.silence`, each with ``barge_in_ms=`` to cut the agent off.
- Each turn is a :class:`TurnResult`; ``turn.expect`` walks its events
  (``next_event().is_function_call(name=...)``, ``no_more_events()``, ``within_budget(...)``).
- :meth:`AgentTest.when` writes rules for the scripted engine.
- :class:`Judge` (non-deterministic) asks an LLM whether a reply meets a criterion.
- The pytest plugin (``realtalk.testing.pytest_plugin``) gives the ``agent_test`` fixture.
"""

from realtalk.testing.audio import WavInputError, load_wav
from realtalk.testing.expect import EventAssert, ExpectationFailed, Expectations, TurnResult
from realtalk.testing.harness import AgentTest, Backend, TurnTimeout
from realtalk.testing.judge import Judge, Verdict
from realtalk.testing.leaks import LeakError
from realtalk.testing.story import Event

__all__ = [
    "AgentTest",
    "Backend",
    "Event",
    "EventAssert",
    "ExpectationFailed",
    "Expectations",
    "Judge",
    "LeakError",
    "TurnResult",
    "TurnTimeout",
    "Verdict",
    "WavInputError",
    "load_wav",
]
