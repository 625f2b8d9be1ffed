"""botocore's signing clock, stopped: the tests and the vector scripts recompute Sluice's
signatures with botocore for the very second Sluice signed (or a fixed one)."""

from __future__ import annotations

import datetime
import types
from unittest import mock

import botocore.auth


def stopped_clock(when: datetime.datetime):
    """A context manager stopping botocore's signing clock at `when` (naive UTC). Newer botocore
    reads get_current_datetime(), 1.29 (Debian 12) datetime.datetime.utcnow()."""
    if hasattr(botocore.auth, "get_current_datetime"):
        return mock.patch.object(botocore.auth, "get_current_datetime", return_value=when)

    class Stopped(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

    return mock.patch.object(botocore.auth, "datetime", types.SimpleNamespace(datetime=Stopped))
