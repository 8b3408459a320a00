"""Model plugins: concrete :class:`~realtalk.realtime.base.RealtimeBaseModel` implementations.

Each plugin lives in its own sub-package (``realtalk.plugins.openai``) and registers nothing
globally; importing one has no side effects.
"""
