"""The Tehran Stock Exchange's trading week."""

TRADING_WEEKDAYS = frozenset({5, 6, 0, 1, 2})  # Saturday .. Wednesday (Monday is 0)
